"""Deterministic Explorium AgentSource simulator: business match and bulk enrichments.

Answers ``POST /v1/businesses/match``, ``/v1/businesses/firmographics/bulk_enrich``
and ``/v1/businesses/technographics/bulk_enrich`` in Explorium's shapes, with
values drawn from generators seeded by SHA-256 of the domain (never Python's
salted `hash()`), so every run and process sees the same world:

* about 6% of domains are unknown to Explorium (``business_id: null``);
* business ids are 32 hex characters, as Explorium's, derived from the domain;
* head count and revenue follow the size every simulator shares
  (`shared.size_quantile`), with noise, reported in Explorium's range buckets;
* technographics overlap BuiltWith's simulated stack (most of its live
  technologies) plus back-office tools a web crawler cannot see; about 8% of
  matched businesses have no technographics and are left out of the answer.

The enrichment endpoints receive only business ids, which cannot be hashed back
to a domain, so the simulator remembers the ids it handed out in match answers
(a bounded, process-local table). An id it never handed out is unknown, as at
Explorium: its item is simply missing from the answer.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from enrichment_pipeline.lib.sandbox import builtwith as bw
from enrichment_pipeline.lib.sandbox import clearbit as cb
from enrichment_pipeline.lib.sandbox.samples import sample_fact
from enrichment_pipeline.lib.sandbox.shared import Ranges, company_name, domain_key, seeded, size_quantile

JsonObject = dict[str, Any]

MATCH_PATH = "/v1/businesses/match"
FIRMOGRAPHICS_PATH = "/v1/businesses/firmographics/bulk_enrich"
TECHNOGRAPHICS_PATH = "/v1/businesses/technographics/bulk_enrich"
PATHS = frozenset({MATCH_PATH, FIRMOGRAPHICS_PATH, TECHNOGRAPHICS_PATH})
MAX_ITEMS = 50
UNMATCHED_RATE = 0.06
NO_TECHNOGRAPHICS_RATE = 0.08
_MAX_REMEMBERED = 500_000

# Explorium's range buckets (number_of_employees_range, yearly_revenue_range).
EMPLOYEE_RANGES = Ranges(
    (
        (10, "1-10"),
        (50, "11-50"),
        (200, "51-200"),
        (500, "201-500"),
        (1000, "501-1000"),
        (5000, "1001-5000"),
        (10000, "5001-10000"),
    ),
    above="10001+",
    inclusive=True,
)
REVENUE_RANGES = Ranges(
    (
        (5e5, "0-500K"),
        (1e6, "500K-1M"),
        (5e6, "1M-5M"),
        (1e7, "5M-10M"),
        (2.5e7, "10M-25M"),
        (7.5e7, "25M-75M"),
        (2e8, "75M-200M"),
        (5e8, "200M-500M"),
        (1e9, "500M-1B"),
        (1e10, "1B-10B"),
        (1e11, "10B-100B"),
        (1e12, "100B-1T"),
    ),
    above="1T-10T",
    inclusive=False,
)

# (naics, naics_description, sic_code, sic_code_description, linkedin_industry_category, weight)
_INDUSTRIES: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("511210", "Software Publishers", "7372", "Prepackaged Software", "software development", 5),
    (
        "541511",
        "Custom Computer Programming Services",
        "7371",
        "Computer Programming Services",
        "it services and it consulting",
        3,
    ),
    (
        "454110",
        "Electronic Shopping and Mail-Order Houses",
        "5961",
        "Catalog and Mail-Order Houses",
        "retail",
        4,
    ),
    (
        "448120",
        "Women's Clothing Stores",
        "5621",
        "Women's Clothing Stores",
        "retail apparel and fashion",
        1.5,
    ),
    (
        "522320",
        "Financial Transactions Processing",
        "6099",
        "Functions Related to Depository Banking",
        "financial services",
        2,
    ),
    (
        "524126",
        "Direct Property and Casualty Insurance Carriers",
        "6331",
        "Fire, Marine, and Casualty Insurance",
        "insurance",
        1,
    ),
    (
        "621111",
        "Offices of Physicians",
        "8011",
        "Offices and Clinics of Doctors of Medicine",
        "hospitals and health care",
        1.5,
    ),
    (
        "541613",
        "Marketing Consulting Services",
        "8742",
        "Management Consulting Services",
        "marketing services",
        2,
    ),
    (
        "336111",
        "Automobile Manufacturing",
        "3711",
        "Motor Vehicles and Passenger Car Bodies",
        "motor vehicle manufacturing",
        0.7,
    ),
    (
        "333249",
        "Other Industrial Machinery Manufacturing",
        "3559",
        "Special Industry Machinery",
        "industrial machinery manufacturing",
        1,
    ),
    (
        "488510",
        "Freight Transportation Arrangement",
        "4731",
        "Arrangement of Transportation of Freight",
        "transportation, logistics, supply chain and storage",
        1,
    ),
    ("721110", "Hotels (except Casino Hotels) and Motels", "7011", "Hotels and Motels", "hospitality", 1),
    (
        "611310",
        "Colleges, Universities, and Professional Schools",
        "8221",
        "Colleges and Universities",
        "higher education",
        0.7,
    ),
    (
        "531210",
        "Offices of Real Estate Agents and Brokers",
        "6531",
        "Real Estate Agents and Managers",
        "real estate",
        0.8,
    ),
)
_COUNTRIES: tuple[tuple[str, str, str, float], ...] = (
    # (country_name as Explorium writes it, region, city, weight)
    ("united states", "california", "san francisco", 4),
    ("united states", "new york", "new york", 3),
    ("united states", "texas", "austin", 1.5),
    ("united kingdom", "england", "london", 2),
    ("germany", "berlin", "berlin", 1.5),
    ("france", "ile-de-france", "paris", 1),
    ("netherlands", "north holland", "amsterdam", 0.8),
    ("canada", "ontario", "toronto", 0.8),
    ("sweden", "stockholm county", "stockholm", 0.5),
    ("australia", "new south wales", "sydney", 0.6),
)
# Tools a site crawler cannot see but Explorium's sources (job posts, reviews) can.
_BACK_OFFICE: tuple[tuple[str, str, float, float], ...] = (
    # (name, category, weight for small companies, for large ones)
    ("Slack", "productivity_and_operations", 4, 3),
    ("Zoom", "productivity_and_operations", 3, 3),
    ("Jira", "productivity_and_operations", 2, 4),
    ("Confluence", "productivity_and_operations", 1.5, 3),
    ("Notion", "productivity_and_operations", 2, 0.8),
    ("Salesforce Sales Cloud", "sales", 0.8, 4),
    ("Outreach", "sales", 0.3, 1.5),
    ("Gong", "sales", 0.3, 1.5),
    ("Workday", "hr", 0.1, 3),
    ("BambooHR", "hr", 2, 0.5),
    ("Greenhouse", "hr", 0.8, 1.5),
    ("NetSuite", "finance_and_accounting", 0.8, 2),
    ("QuickBooks", "finance_and_accounting", 3, 0.3),
    ("Okta", "it_security", 0.5, 3),
    ("CrowdStrike", "it_security", 0.2, 2.5),
    ("GitHub", "testing_and_qa", 2, 3),
    ("Figma", "product_and_design", 2, 2.5),
    ("Snowflake", "platform_and_storage", 0.2, 2.5),
    ("Microsoft Azure", "platform_and_storage", 1, 2.5),
    ("Python", "prog_langs_and_frameworks", 2, 3),
    ("Java", "prog_langs_and_frameworks", 1, 3),
)
_CATEGORY_TITLES: dict[str, str] = {
    "ecommerce": "E-commerce",
    "finance_and_accounting": "Finance and Accounting",
    "hr": "HR",
    "it_security": "IT Security",
    "marketing": "Marketing",
    "platform_and_storage": "Platform and Storage",
    "product_and_design": "Product and Design",
    "productivity_and_operations": "Productivity and Operations",
    "prog_langs_and_frameworks": "Programming Languages and Frameworks",
    "sales": "Sales",
    "testing_and_qa": "Testing and QA",
}

_known_ids: dict[str, str] = {}  # business_id -> domain, for ids handed out in match answers
_known_lock = threading.Lock()


def is_matched(domain: str) -> bool:
    """False for about 6% of domains (their match item has ``business_id: null``)."""
    return seeded("explorium-match", domain_key(domain)).random() >= UNMATCHED_RATE


def business_id(domain: str) -> str:
    """The domain's 32-hex business id, like Explorium's (whether or not it is matched)."""
    return hashlib.sha256(f"explorium-business\x1f{domain_key(domain)}".encode()).hexdigest()[:32]


def remember(domain: str) -> str:
    """Record a handed-out id so the enrichment endpoints can find its domain again."""
    key = domain_key(domain)
    bid = business_id(key)
    with _known_lock:
        if bid not in _known_ids and len(_known_ids) >= _MAX_REMEMBERED:
            _known_ids.pop(next(iter(_known_ids)))  # oldest first: a long-lived process stays bounded
        _known_ids[bid] = key
    return bid


def domain_for(bid: str) -> str | None:
    with _known_lock:
        return _known_ids.get(bid)


def employees(domain: str) -> int:
    """Head count: about 10 for the smallest sites to ~30k for the largest, with noise."""
    key = domain_key(domain)
    noise = seeded("explorium-employees", key).uniform(0.7, 1.4)
    return max(1, round(10 ** (1 + 3.5 * size_quantile(key)) * noise))


def yearly_revenue(domain: str) -> float:
    """USD revenue: head count x revenue per employee ($60k-$400k, higher for larger firms)."""
    key = domain_key(domain)
    per_head = seeded("explorium-revenue", key).uniform(60e3, 250e3) * (1 + 0.6 * size_quantile(key))
    return employees(key) * per_head


def firmographics(domain: str) -> JsonObject:
    """The ``data`` object of a firmographics item for a matched domain."""
    key = domain_key(domain)
    rng = seeded("explorium-firmographics", key)
    naics, naics_text, sic, sic_text, linkedin, _ = rng.choices(
        _INDUSTRIES, weights=[row[5] for row in _INDUSTRIES]
    )[0]
    country, region, city, _ = rng.choices(_COUNTRIES, weights=[row[3] for row in _COUNTRIES])[0]
    label = key.split(".")[0]
    name = company_name(key) or key
    headcount = employees(key)
    sample = sample_fact(key)
    if sample is not None:  # a bundled sample company: its public facts
        sector_row = cb.CATEGORIES[sample.vertical]
        naics, naics_text = sector_row[6], sector_row[2]
        sic, sic_text, linkedin = sector_row[4], sector_row[3], sector_row[2].lower()
        country_name, city_name, state = cb.location(sample.country)[:3]
        country, city, region = country_name.lower(), city_name.lower(), (state or "").lower()
        name, headcount = sample.name, sample.employees
    return {
        "business_id": business_id(key),
        "name": name,
        "business_description": f"{name} operates in {naics_text.lower()}.",
        "website": f"https://www.{key}",
        "domain": key,
        "country_name": country,
        "region": region,
        "city_name": city,
        "street": f"{rng.randint(1, 999)} Market Street",
        "zip_code": f"{rng.randint(10000, 99999)}",
        "number_of_employees_range": EMPLOYEE_RANGES.label(headcount),
        "yearly_revenue_range": REVENUE_RANGES.label(yearly_revenue(key)),
        "naics": str(naics),  # a string in Explorium's OpenAPI schema
        "naics_description": naics_text,
        "sic_code": sic,
        "sic_code_description": sic_text,
        "linkedin_industry_category": linkedin,
        "linkedin_profile": f"https://www.linkedin.com/company/{label}",
        "logo": f"https://logo.explorium.ai/{business_id(key)}.png",
        "ticker": None,
    }


def has_technographics(domain: str) -> bool:
    """False for about 8% of matched businesses: their items are missing from the answer."""
    return seeded("explorium-technographics-known", domain_key(domain)).random() >= NO_TECHNOGRAPHICS_RATE


def technology_stack(domain: str, epoch: int = 1) -> dict[str, list[str]]:
    """Category key -> technology names: most of BuiltWith's live stack plus back-office tools."""
    key = domain_key(domain)
    rng = seeded("explorium-techs", key, epoch)
    size = size_quantile(key)
    by_category: dict[str, list[str]] = {}

    def add(category: str, name: str) -> None:
        names = by_category.setdefault(category, [])
        if name not in names:
            names.append(name)

    if bw.is_known(key):
        for entry in bw.technology_stack(key, epoch):
            if entry.live and rng.random() < 0.8:
                add(bw.SLOT_CATEGORIES[entry.tech.slot].explorium, entry.tech.name)
    pool = list(_BACK_OFFICE)
    for _ in range(rng.randint(1, 3 + round(6 * size))):
        if not pool:
            break
        pick = rng.choices(pool, weights=[s * (1 - size) + g * size for _, _, s, g in pool])[0]
        pool.remove(pick)
        add(pick[1], pick[0])
    return by_category


def technographics(domain: str, epoch: int = 1) -> JsonObject:
    """The ``data`` object of a technographics item: flat list, nested list and per-category lists."""
    stack = technology_stack(domain, epoch)
    flat = sorted({name for names in stack.values() for name in names})
    nested = [
        {"category": _CATEGORY_TITLES.get(category, category), "techs": sorted(names)}
        for category, names in sorted(stack.items())
    ]
    data: JsonObject = {"full_tech_stack": flat, "full_nested_tech_stack": nested}
    for category in _CATEGORY_TITLES:
        data[category] = sorted(stack[category]) if category in stack else None
    return data


# --------------------------------------------------------------------------- HTTP


def _validation_error(loc: list[Any], msg: str, kind: str) -> httpx.Response:
    """FastAPI's 422 shape, which Explorium's service returns for a bad body."""
    return httpx.Response(422, json={"detail": [{"loc": loc, "msg": msg, "type": kind}]})


def _list_error(body: Mapping[str, Any], field: str) -> httpx.Response | None:
    """The 422 for a list field that is missing, empty or longer than `MAX_ITEMS`; None if it is fine."""
    items = body.get(field)
    if not isinstance(items, list) or not items:
        return _validation_error(["body", field], "field required", "value_error.missing")
    if len(items) > MAX_ITEMS:
        return _validation_error(
            ["body", field], f"ensure this value has at most {MAX_ITEMS} items", "value_error.list.max_items"
        )
    return None


def _answer(request_body: Mapping[str, Any], found: bool, **fields: Any) -> httpx.Response:
    """A 200 answer: the response context (``success`` if anything was found, else ``miss``), `fields`."""
    digest = hashlib.sha256(json.dumps(request_body, sort_keys=True, default=str).encode()).hexdigest()
    context = {
        "correlation_id": digest[:32],
        "request_status": "success" if found else "miss",
        "time_took_in_seconds": 0.042,
    }
    return httpx.Response(200, json={"response_context": context, **fields})


def match_response(body: Mapping[str, Any]) -> httpx.Response:
    error = _list_error(body, "businesses_to_match")
    if error is not None:
        return error
    items = body["businesses_to_match"]
    matched: list[JsonObject] = []
    for item in items:
        if not isinstance(item, Mapping) or not any(item.get(k) for k in ("domain", "url", "name")):
            matched.append({"input": item, "business_id": None})
            continue
        raw = str(item.get("domain") or item.get("url") or item.get("name"))
        key = domain_key(raw)
        bid = remember(key) if "." in key and is_matched(key) else None
        matched.append({"input": dict(item), "business_id": bid})
    hits = sum(1 for m in matched if m["business_id"])
    return _answer(body, hits > 0, total_results=len(matched), total_matches=hits, matched_businesses=matched)


def enrich_response(body: Mapping[str, Any], path: str, epoch: int) -> httpx.Response:
    error = _list_error(body, "business_ids")
    if error is not None:
        return error
    ids = body["business_ids"]
    for index, bid in enumerate(ids):
        if not isinstance(bid, str) or len(bid) != 32 or any(c not in "0123456789abcdef" for c in bid):
            return _validation_error(
                ["body", "business_ids", index],
                'string does not match regex "^[a-f0-9]{32}$"',
                "value_error.str.regex",
            )
    data: list[JsonObject] = []
    for bid in dict.fromkeys(ids):
        domain = domain_for(bid)
        if domain is None:
            continue  # an id this simulator never handed out: unknown, as at Explorium
        if path == FIRMOGRAPHICS_PATH:
            data.append({"business_id": bid, "data": firmographics(domain)})
        elif has_technographics(domain):
            data.append({"business_id": bid, "data": technographics(domain, epoch)})
    return _answer(body, bool(data), total_results=len(data), data=data)


def route(request: httpx.Request, *, epoch: int = 1) -> httpx.Response | None:
    """Answer an Explorium request like Explorium would; None for any other path.

    The key is checked like the real API: a missing ``api_key`` header is a 401.
    """
    path = request.url.path
    if path not in PATHS:
        return None
    if request.method != "POST":
        return httpx.Response(405, json={"detail": "Method Not Allowed"})
    if not (request.headers.get("api_key") or "").strip():
        return httpx.Response(401, json={"detail": "Partner ID is invalid."})
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return _validation_error(["body"], "Expecting value", "value_error.jsondecode")
    if not isinstance(body, Mapping):
        return _validation_error(["body"], "value is not a valid dict", "type_error.dict")
    if path == MATCH_PATH:
        return match_response(body)
    return enrich_response(body, path, epoch)
