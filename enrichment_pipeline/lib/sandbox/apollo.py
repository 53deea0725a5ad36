"""Deterministic Apollo.io Organization Enrichment simulator (single and bulk).

Organizations are built from the company facts shared with the Clearbit
simulator (`sandbox.clearbit.company_facts`: size shared with SimilarWeb and
BuiltWith, vertical and country from BuiltWith's meta) and observed with
Apollo's own noise, so Apollo and Clearbit agree within ±15% for most domains
and disagree a lot on about 10%. Technologies are mostly BuiltWith's live
stack at the same epoch, partly in Apollo's spelling ("WordPress.org",
"Amazon AWS"), plus a few Apollo-only entries.

Behaviour:

* no ``x-api-key`` header → 401;
* ``/api/v1/organizations/enrich`` (GET ``?domain=``, or POST with a JSON
  ``domain``) → ``{"organization": {...}}``, or ``{}`` for an unknown domain;
* ``/api/v1/organizations/bulk_enrich`` (POST with JSON ``{"domains": [...]}``
  or ``domains[]`` query parameters) → Apollo's bulk shape, the organizations
  in an order of their own, unknown domains simply absent; more than 10
  domains → 422;
* about 1 in 20 domains is unknown to Apollo;
* every answer to an authenticated call carries Apollo's rate-limit headers,
  with plenty left (the bulk endpoint's minute limit is a tenth of the
  single one's, as Apollo documents).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from enrichment_pipeline.lib.sandbox import builtwith as bw
from enrichment_pipeline.lib.sandbox import clearbit as cb
from enrichment_pipeline.lib.sandbox.shared import domain_key, seeded

JsonObject = dict[str, Any]

ENRICH_PATHS = frozenset({"/api/v1/organizations/enrich", "/v1/organizations/enrich"})
BULK_PATHS = frozenset({"/api/v1/organizations/bulk_enrich", "/v1/organizations/bulk_enrich"})
BULK_LIMIT = 10
UNKNOWN_RATE = 0.05

# Apollo's documented header names; constant values with plenty left.
MINUTE_LIMIT, HOURLY_LIMIT, DAILY_LIMIT = 200, 6000, 50000

# vertical -> (industry, secondary industries, keywords), in Apollo's lower-case LinkedIn-style words.
INDUSTRIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "Retail": ("retail", ("consumer goods", "apparel & fashion"), ("ecommerce", "online retail", "d2c")),
    "Technology": (
        "information technology & services",
        ("computer software", "internet"),
        ("saas", "b2b", "cloud"),
    ),
    "Business And Industrial": (
        "machinery",
        ("industrial automation", "mechanical or industrial engineering"),
        ("manufacturing", "b2b"),
    ),
    "Finance": ("financial services", ("banking", "investment management"), ("fintech", "payments")),
    "Health": ("hospital & health care", ("medical practice",), ("healthcare", "clinics")),
    "Travel": ("leisure, travel & tourism", ("hospitality",), ("travel", "hotels", "booking")),
    "Education": ("e-learning", ("education management", "higher education"), ("edtech", "online courses")),
    "Media": ("online media", ("newspapers", "broadcast media"), ("news", "streaming", "content")),
    "Transportation": (
        "logistics & supply chain",
        ("transportation/trucking/railroad", "package/freight delivery"),
        ("logistics", "shipping", "freight"),
    ),
}
# BuiltWith names Apollo spells differently (the provider maps them back).
APOLLO_SPELLING: dict[str, str] = {
    "WordPress": "WordPress.org",
    "Amazon Web Services": "Amazon AWS",
    "Google Workspace": "Google Apps",
    "Microsoft 365": "Microsoft Office 365",
    "HubSpot": "Hubspot",
    "Cloudflare": "Cloudflare DNS",
}
APOLLO_ONLY_TECH: tuple[tuple[str, str], ...] = (
    ("Mobile Friendly", "Other"),
    ("Salesforce", "CRM"),
    ("Mailchimp", "Email Marketing"),
    ("Zoom", "Other"),
    ("Greenhouse.io", "Recruitment"),
)


def is_known(domain: str) -> bool:
    """False for about 1 in 20 domains (Apollo's own unknowns: a different salt)."""
    key = domain_key(domain)
    return "." in key and seeded("apollo-known", key).random() >= UNKNOWN_RATE


def organization(domain: str, epoch: int = 1) -> JsonObject | None:
    """Apollo's organization object for a known domain; None for an unknown one."""
    key = domain_key(domain)
    if not is_known(key):
        return None
    facts = cb.company_facts(key)
    rng = seeded("apollo-org", key)
    label = key.split(".")[0]
    industry, secondary, keywords = INDUSTRIES[facts.vertical]
    country_name, city, state, _, postal, _, _, _ = cb.location(facts.country)

    employees = max(1, round(cb.observed("apollo", key, facts.employees)))
    revenue = round(cb.observed("apollo", key, facts.revenue))
    funding = round(cb.observed("apollo", key, facts.total_funding)) if facts.total_funding else None
    techs = cb.live_technologies(key, epoch, "apollo")
    current = [
        {
            "uid": cb.clearbit_slug(t.name),
            "name": APOLLO_SPELLING.get(t.name, t.name),
            "category": bw.SLOT_CATEGORIES[t.slot].apollo,
        }
        for t in techs
    ]
    extra = seeded("apollo-extra-tech", key)
    current += [
        {"uid": cb.clearbit_slug(name), "name": name, "category": category}
        for name, category in APOLLO_ONLY_TECH
        if extra.random() < 0.2
    ]
    street = f"{rng.randint(1, 400)} Main Street"
    _, _, _, _, sic, _, naics6 = cb.CATEGORIES[facts.vertical]
    # Records from late 2025 on name revenue organization_revenue* and carry NAICS / SIC
    # codes; older ones say annual_revenue* and have no code keys at all. A newer record
    # sends an unknown revenue as 0.0 with a null printed value.
    newer = rng.random() < 0.7
    revenue_fields: JsonObject = {"annual_revenue_printed": printed(revenue), "annual_revenue": revenue}
    if newer:
        unknown_revenue = rng.random() < 0.15
        revenue_fields = {
            "organization_revenue_printed": None if unknown_revenue else printed(revenue),
            "organization_revenue": 0.0 if unknown_revenue else revenue,
            "naics_codes": [naics6],
            "sic_codes": [f"{sic}00"[:4]],
        }
    return {
        "id": hashlib.sha256(f"apollo-id\x1f{key}".encode()).hexdigest()[:24],
        "name": facts.name,
        "website_url": f"http://www.{key}",
        "blog_url": None,
        "angellist_url": None,
        "linkedin_url": f"http://www.linkedin.com/company/{label}",
        "twitter_url": f"https://twitter.com/{label}",
        "facebook_url": f"https://www.facebook.com/{label}",
        "primary_phone": {},
        "languages": [],
        "alexa_ranking": None,
        "phone": None,
        "linkedin_uid": str(seeded("apollo-linkedin", key).randrange(10**6, 10**8)),
        "founded_year": facts.founded_year,
        "publicly_traded_symbol": facts.ticker,
        "publicly_traded_exchange": facts.exchange.lower() if facts.exchange else None,
        "logo_url": None,
        "crunchbase_url": None,
        "primary_domain": key,
        "industry": industry,
        "keywords": list(keywords),
        "estimated_num_employees": employees,
        "industries": [industry, *secondary[:1]],
        "secondary_industries": list(secondary),
        "snippets_loaded": True,
        "industry_tag_id": hashlib.sha256(industry.encode()).hexdigest()[:24],
        "industry_tag_hash": {},
        "retail_location_count": 0,
        "raw_address": f"{street}, {city}, {country_name}",
        "street_address": street,
        "city": city,
        "state": state,
        "postal_code": postal,
        "country": country_name,
        "owned_by_organization_id": None,
        "seo_description": f"{facts.name}: {industry}.",
        "short_description": f"{facts.name} is a {industry} company based in {city}.",
        "suborganizations": [],
        "num_suborganizations": 0,
        **revenue_fields,
        "total_funding": funding,
        "total_funding_printed": printed(funding) if funding else None,
        "latest_funding_round_date": None,
        "latest_funding_stage": facts.funding_stage,
        "funding_events": [],
        "technology_names": [t["name"] for t in current],
        "current_technologies": current,
        "org_chart_root_people_ids": [],
        "org_chart_sector": None,
        "departmental_head_count": {},
    }


def printed(amount: float) -> str:
    """Apollo's short money form: 850K, 10.6M, 1.2B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= scale:
            return f"{amount / scale:.1f}".removesuffix(".0") + suffix
    return str(round(amount))


def enrich_response(domain: str, epoch: int = 1) -> tuple[int, JsonObject]:
    """(HTTP status, body) of a single organization enrichment."""
    key = domain_key(domain)
    if not key:
        return 422, _error("Missing required parameter: domain", "INVALID_INPUT")
    if "." not in key:
        return 422, _error(f"Invalid domain: {domain}", "INVALID_INPUT")
    found = organization(key, epoch)
    return 200, ({"organization": found} if found else {})


def bulk_response(domains: list[str], epoch: int = 1) -> tuple[int, JsonObject]:
    """(HTTP status, body) of a bulk enrichment; unknown domains are missing from ``organizations``."""
    if not domains:
        return 422, _error("Missing required parameter: domains", "INVALID_INPUT")
    if len(domains) > BULK_LIMIT:
        return 422, _error(
            f"Too many domains: {len(domains)}. At most {BULK_LIMIT} domains per request.", "INVALID_INPUT"
        )
    unique = list(dict.fromkeys(domain_key(d) for d in domains if domain_key(d)))
    organizations = [bulk_organization(org) for org in (organization(d, epoch) for d in unique) if org]
    seeded("apollo-bulk-order", *sorted(unique)).shuffle(organizations)
    return 200, {
        "status": "success",
        "error_code": None,
        "error_message": None,
        "total_requested_domains": len(domains),
        "unique_domains": len(unique),
        "unique_enriched_records": len(organizations),
        "missing_records": len(unique) - len(organizations),
        "organizations": organizations,
    }


# What a real bulk_enrich organization lacks, compared with the single enrich answer:
# technologies and funding always; revenue only in older (annual_revenue*) records,
# newer ones keep organization_revenue* and their codes.
BULK_OMITS = frozenset(
    {
        "technology_names",
        "current_technologies",
        "annual_revenue",
        "annual_revenue_printed",
        "total_funding",
        "total_funding_printed",
        "latest_funding_round_date",
        "latest_funding_stage",
        "funding_events",
        "suborganizations",
        "num_suborganizations",
        "org_chart_root_people_ids",
        "org_chart_sector",
    }
)


def bulk_organization(organization: JsonObject) -> JsonObject:
    """An organization as bulk_enrich returns it: no technologies or funding, and no revenue
    in an older record."""
    return {k: v for k, v in organization.items() if k not in BULK_OMITS}


def rate_limit_headers(bulk: bool = False) -> dict[str, str]:
    """Apollo's documented rate-limit headers; the bulk endpoint has a tenth of the minute limit."""
    minute = MINUTE_LIMIT // 10 if bulk else MINUTE_LIMIT
    return {
        "x-rate-limit-minute": str(minute),
        "x-minute-usage": "1",
        "x-minute-requests-left": str(minute - 1),
        "x-rate-limit-hourly": str(HOURLY_LIMIT),
        "x-hourly-usage": "1",
        "x-hourly-requests-left": str(HOURLY_LIMIT - 1),
        "x-rate-limit-daily": str(DAILY_LIMIT),
        "x-daily-usage": "1",
        "x-daily-requests-left": str(DAILY_LIMIT - 1),
    }


def _error(message: str, code: str) -> JsonObject:
    return {"error": message, "error_code": code}


def _json_body(request: httpx.Request) -> JsonObject:
    try:
        body = json.loads(request.content or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def route(request: httpx.Request, *, epoch: int = 1) -> httpx.Response | None:
    """Answer an Apollo organization enrichment request; None for a path this simulator does not own."""
    path = request.url.path
    bulk = path in BULK_PATHS
    if not bulk and path not in ENRICH_PATHS:
        return None
    if not request.headers.get("x-api-key", "").strip():
        return httpx.Response(401, json=_error("Invalid access credentials.", "INVALID_API_KEY"))
    headers = rate_limit_headers(bulk)
    params = request.url.params
    if bulk:
        if request.method != "POST":
            return httpx.Response(404, json=_error("Not found", "NOT_FOUND"), headers=headers)
        raw = _json_body(request).get("domains")
        domains = raw if isinstance(raw, list) else params.get_list("domains[]")
        status, body = bulk_response([str(d) for d in domains], epoch)
        return httpx.Response(status, json=body, headers=headers)
    if request.method not in ("GET", "POST"):
        return httpx.Response(404, json=_error("Not found", "NOT_FOUND"), headers=headers)
    domain = params.get("domain") or str(_json_body(request).get("domain") or "")
    status, body = enrich_response(domain, epoch)
    return httpx.Response(status, json=body, headers=headers)
