"""Deterministic Clearbit Company API simulator (``GET /v2/companies/find``).

Company facts shared with the Apollo simulator
----------------------------------------------
`company_facts` is the "true" company behind a domain: its size comes from the
size quantile shared with the SimilarWeb and BuiltWith simulators (the same
head count BuiltWith reports), its vertical and country from the BuiltWith
simulator's meta, so big-traffic sites are big companies in every provider.
Revenue, age, listing and funding are drawn from SHA-256-seeded generators.

Each provider then *observes* those facts with its own noise (`observed`):
within ±15% for most domains, while about 1 in 20 domains per provider is a
"wrong entity" match (a parent or a subsidiary) off by a factor of 2.5 to 6.
Two providers therefore disagree a lot on roughly 10% of domains, which gives
the cross-provider disagreement check something real to find.

Clearbit behaviour
------------------
* no Basic auth user (nor Bearer token) → 401 ``auth_required``;
* a ``domain`` parameter without a dot → 422 ``params_invalid``;
* about 1 in 25 domains → 404 ``unknown_record``;
* about 3% of the known domains are *queued*: 202 at epoch 1, 200 from epoch 2
  on, so the pending path (and its recovery) runs end to end;
* technologies are mostly BuiltWith's live stack at the same epoch (each kept
  with probability 0.8), as Clearbit slugs, plus a few Clearbit-only tags.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import httpx

from enrichment_pipeline.lib.sandbox import builtwith as bw
from enrichment_pipeline.lib.sandbox.samples import sample_fact
from enrichment_pipeline.lib.sandbox.shared import (
    Ranges,
    bundled_rows,
    company_name,
    domain_key,
    seeded,
    size_quantile,
)

JsonObject = dict[str, Any]

COMPANY_PATH = "/v2/companies/find"
UNKNOWN_RATE = 0.04
QUEUED_RATE = 0.03
WRONG_ENTITY_RATE = 0.05  # per provider; two providers disagree a lot on ~10% of domains
NOISE = 0.15
TECH_KEEP = 0.8

Category = tuple[str, str, str, str, str, str, str]
Location = tuple[str, str, str | None, str | None, str, float, float, str]


def _category(row: dict[str, str]) -> Category:
    """(sector, industryGroup, industry, subIndustry, sicCode, naicsCode, naics6Code)."""
    return (
        row["sector"], row["industry_group"], row["industry"], row["sub_industry"],
        row["sic_code"], row["naics_code"], row["naics6_code"],
    )  # fmt: skip


def _location(row: dict[str, str]) -> Location:
    """(country name, city, state, state code, postal code, lat, lng, time zone)."""
    return (
        row["country"], row["city"], row["state"] or None, row["state_code"] or None,
        row["postal_code"], float(row["lat"]), float(row["lng"]), row["time_zone"],
    )  # fmt: skip


_VERTICAL_ROWS = bundled_rows("verticals.csv")
CATEGORIES: dict[str, Category] = {row["vertical"]: _category(row) for row in _VERTICAL_ROWS}
VERTICALS: tuple[str, ...] = tuple(CATEGORIES)
# Revenue per employee (USD) by vertical, before the per-company factor.
_REVENUE_PER_EMPLOYEE: dict[str, float] = {
    row["vertical"]: float(row["revenue_per_employee"]) for row in _VERTICAL_ROWS
}
_LOCATION_ROWS = bundled_rows("locations.csv")
# ISO code -> head office, for the drawn countries and the sample companies' own.
LOCATIONS: dict[str, Location] = {row["country_code"]: _location(row) for row in _LOCATION_ROWS}
# What a domain BuiltWith does not place is drawn from.
DRAWN_COUNTRIES: tuple[str, ...] = tuple(r["country_code"] for r in _LOCATION_ROWS if r["drawn"] == "yes")

_SUFFIXES = ("Inc.", "Ltd", "LLC", "GmbH", "Group")
_EXCHANGES = ("NYSE", "NASDAQ")
FUNDING_STAGES = ("Seed", "Series A", "Series B", "Series C", "Series D", "Series E")

# Clearbit's employee and revenue ranges (what its ``employeesRange`` and
# ``estimatedAnnualRevenue`` fields hold).
EMPLOYEE_RANGES = Ranges(
    (
        (10, "1-10"),
        (50, "11-50"),
        (250, "51-250"),
        (1000, "251-1K"),
        (5000, "1K-5K"),
        (10000, "5K-10K"),
        (50000, "10K-50K"),
        (100000, "50K-100K"),
    ),
    above="100K+",
    inclusive=True,
)
REVENUE_RANGES = Ranges(
    (
        (1e6, "$0-$1M"),
        (10e6, "$1M-$10M"),
        (50e6, "$10M-$50M"),
        (100e6, "$50M-$100M"),
        (250e6, "$100M-$250M"),
        (500e6, "$250M-$500M"),
        (1e9, "$500M-$1B"),
        (10e9, "$1B-$10B"),
    ),
    above="$10B+",
    inclusive=False,
)

# BuiltWith catalog names whose Clearbit slug is not the name in snake case.
_SLUG_OVERRIDES: dict[str, str] = {
    "Let's Encrypt": "lets_encrypt",
    "Google Workspace": "google_apps",
    "Microsoft 365": "microsoft_office_365",
    "Salesforce Pardot": "pardot",
    "Google Font API": "google_fonts",
    "Open Graph Protocol": "open_graph",
    "DigiCert SSL": "digicert",
    "Amazon Web Services": "aws",
}
# Tags Clearbit reports that BuiltWith's catalog does not have (from DNS, job posts, ...).
CLEARBIT_ONLY_TECH: tuple[str, ...] = ("salesforce", "mailchimp", "google_ads", "doubleclick", "greenhouse")


# --------------------------------------------------------------------------- shared company facts


@dataclass(frozen=True)
class CompanyFacts:
    """The true company behind a domain, before any provider's noise."""

    domain: str
    name: str
    legal_name: str
    vertical: str
    country: str  # ISO 3166-1 alpha-2, a key of LOCATIONS
    size: float  # the shared size quantile in [0, 1)
    employees: int
    revenue: float  # USD per year
    founded_year: int
    ticker: str | None
    exchange: str | None
    market_cap: float | None
    total_funding: float | None
    funding_stage: str | None


def company_facts(domain: str) -> CompanyFacts:
    """The shared truth for a domain; vertical and country agree with the BuiltWith simulator."""
    return _company_facts(domain_key(domain))


@functools.lru_cache(maxsize=8192)
def _company_facts(key: str) -> CompanyFacts:
    """Cached: a bulk answer or a second provider asks for the same facts again."""
    rng = seeded("company-facts", key)
    size = size_quantile(key)
    label = key.split(".")[0]
    name = company_name(key) or key

    status, body = bw.domain_api_response(key, 1)
    results = (body.get("Results") or []) if status == 200 else []
    meta = results[0].get("Meta", {}) if results else {}
    # BuiltWith makes every shop "Retail"; for domains it does not know, draw alike.
    vertical = meta.get("Vertical") or ("Retail" if rng.random() < 0.45 else rng.choice(VERTICALS))
    vertical = vertical if vertical in CATEGORIES else "Technology"
    country = meta.get("Country") if meta.get("Country") in DRAWN_COUNTRIES else rng.choice(DRAWN_COUNTRIES)
    legal_name = meta.get("CompanyName") or f"{name} {rng.choice(_SUFFIXES)}"

    employees = round(10 ** (1 + 3.5 * size))  # what BuiltWith reports as Attributes.Employees
    revenue = employees * _REVENUE_PER_EMPLOYEE[vertical] * rng.uniform(0.6, 1.6)
    founded_year = max(1850, 2025 - round(rng.uniform(2, 15 + 110 * size**1.5)))
    public = size > 0.8 and rng.random() < 0.6
    ticker = (re.sub(r"[^A-Z]", "", label.upper())[:4] or None) if public else None
    exchange = rng.choice(_EXCHANGES) if ticker else None
    market_cap = revenue * rng.uniform(1.5, 8.0) if ticker else None
    funded = not ticker and rng.random() < 0.3 + 0.3 * size
    total_funding = revenue * rng.uniform(0.1, 1.2) if funded else None
    stage = FUNDING_STAGES[min(len(FUNDING_STAGES) - 1, int(size * len(FUNDING_STAGES)))] if funded else None
    sample = sample_fact(key)
    if sample is not None:
        # A bundled sample company: its public facts, so the demo does not call 3M a retailer.
        name, legal_name, vertical, country = sample.name, sample.name, sample.vertical, sample.country
        employees = sample.employees
        revenue = employees * _REVENUE_PER_EMPLOYEE[vertical] * rng.uniform(0.8, 1.25)
        ticker = sample.ticker
        exchange = rng.choice(_EXCHANGES) if ticker else None
        market_cap = revenue * rng.uniform(1.5, 8.0) if ticker else None
        total_funding = None if ticker else total_funding
        stage = None if ticker else stage
    return CompanyFacts(
        domain=key,
        name=name,
        legal_name=legal_name,
        vertical=vertical,
        country=country,
        size=size,
        employees=employees,
        revenue=revenue,
        founded_year=founded_year,
        ticker=ticker,
        exchange=exchange,
        market_cap=market_cap,
        total_funding=total_funding,
        funding_stage=stage,
    )


def location(country: str) -> Location:
    """(country name, city, state, state code, postal code, lat, lng, time zone) of a head office."""
    return LOCATIONS.get(country) or LOCATIONS["US"]


def observation_factor(provider: str, domain: str) -> float:
    """How far `provider` is off the truth for `domain`: ±15%, or 2.5-6x for a wrong-entity match."""
    rng = seeded("observed", provider, domain_key(domain))
    if rng.random() < WRONG_ENTITY_RATE:
        factor = rng.uniform(2.5, 6.0)
        return factor if rng.random() < 0.5 else 1 / factor
    return 1 + rng.uniform(-NOISE, NOISE)


def observed(provider: str, domain: str, value: float) -> float:
    """A provider's view of one true number (employees, revenue, ...)."""
    return value * observation_factor(provider, domain)


def live_technologies(domain: str, epoch: int, provider: str) -> list[bw.CatalogTech]:
    """The part of BuiltWith's live stack that `provider` also detects (each kept with p=0.8)."""
    key = domain_key(domain)
    return [
        tech
        for tech in _live_stack(key, epoch)
        if seeded("tech-seen", provider, key, tech.name).random() < TECH_KEEP
    ]


@functools.lru_cache(maxsize=8192)
def _live_stack(key: str, epoch: int) -> tuple[bw.CatalogTech, ...]:
    """BuiltWith's live technologies (cached: building a stack is the simulators' costliest step)."""
    if not bw.is_known(key):
        return ()
    return tuple(entry.tech for entry in bw.technology_stack(key, epoch) if entry.live)


def clearbit_slug(name: str) -> str:
    """The Clearbit slug the simulator uses for a BuiltWith technology name."""
    return _SLUG_OVERRIDES.get(name) or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# --------------------------------------------------------------------------- Clearbit answers


def is_known(domain: str) -> bool:
    """False for about 1 in 25 domains (Clearbit's own unknowns: a different salt)."""
    return seeded("clearbit-known", domain_key(domain)).random() >= UNKNOWN_RATE


def is_queued(domain: str) -> bool:
    """True for about 3% of known domains: their first lookup is queued (202)."""
    return is_known(domain) and seeded("clearbit-queued", domain_key(domain)).random() < QUEUED_RATE


def company_response(domain: str, epoch: int = 1) -> tuple[int, JsonObject | None]:
    """(HTTP status, body) of ``/v2/companies/find?domain=<domain>`` in Clearbit's shapes."""
    key = domain_key(domain)
    if "." not in key or " " in key:
        return 422, _error("params_invalid", f"Invalid domain: {domain!r}")
    if not is_known(key):
        return 404, _error("unknown_record", "Unknown record")
    if is_queued(key) and epoch < 2:
        return 202, None  # Clearbit's 202 (lookup queued) carries no body
    return 200, company_record(key, epoch)


def company_record(domain: str, epoch: int = 1) -> JsonObject:
    """The full Clearbit company record for a known domain."""
    key = domain_key(domain)
    facts = company_facts(key)
    rng = seeded("clearbit-record", key)
    label = key.split(".")[0]
    sector, group, industry, sub, sic, naics, _ = CATEGORIES[facts.vertical]
    country_name, city, state, state_code, postal, lat, lng, tz = location(facts.country)

    employees = max(1, round(observed("clearbit", key, facts.employees)))
    revenue = observed("clearbit", key, facts.revenue)
    exact_employees = rng.random() < 0.7  # else only the range, as for many small companies
    drop_naics = rng.random() < 0.15  # some records carry the industry words only
    techs = live_technologies(key, epoch, "clearbit")
    slugs = [clearbit_slug(t.name) for t in techs]
    extra = seeded("clearbit-extra-tech", key)
    slugs += [s for s in CLEARBIT_ONLY_TECH if extra.random() < 0.15]
    categories = sorted({bw.SLOT_CATEGORIES[t.slot].clearbit for t in techs})

    return {
        "id": str(_uuid(key)),
        "name": facts.name,
        "legalName": facts.legal_name,
        "domain": key,
        "domainAliases": [f"{label}.net"] if rng.random() < 0.2 else [],
        "site": {
            "phoneNumbers": [],
            "emailAddresses": [f"info@{key}"],
        },
        "category": {
            "sector": sector,
            "industryGroup": group,
            "industry": industry,
            "subIndustry": sub,
            "sicCode": sic,
            "naicsCode": None if drop_naics else naics,
        },
        "tags": [facts.vertical, "B2B" if rng.random() < 0.5 else "B2C"],
        "description": f"{facts.name} is a {industry.lower()} company.",
        "foundedYear": facts.founded_year,
        "location": f"{city}, {country_name}",
        "timeZone": tz,
        "utcOffset": None,
        "geo": {
            "streetNumber": str(rng.randint(1, 400)),
            "streetName": "Main Street",
            "subPremise": None,
            "streetAddress": None,
            "city": city,
            "postalCode": postal,
            "state": state,
            "stateCode": state_code,
            "country": country_name,
            "countryCode": facts.country,
            "lat": lat,
            "lng": lng,
        },
        "logo": f"https://logo.clearbit.com/{key}",
        "facebook": {"handle": label, "likes": None},
        "linkedin": {"handle": f"company/{label}"},
        "twitter": {"handle": label, "id": None, "bio": None, "followers": None, "following": None},
        "crunchbase": {"handle": f"organization/{label}"},
        "emailProvider": False,
        "type": "public" if facts.ticker else "private",
        "ticker": facts.ticker,
        "identifiers": {"usEIN": None},
        "phone": None,
        "metrics": {
            "alexaUsRank": None,
            "alexaGlobalRank": None,
            "employees": employees if exact_employees else None,
            "employeesRange": EMPLOYEE_RANGES.label(employees),
            "marketCap": round(observed("clearbit", key, facts.market_cap)) if facts.market_cap else None,
            "raised": round(observed("clearbit", key, facts.total_funding)) if facts.total_funding else None,
            "annualRevenue": round(revenue) if facts.ticker else None,
            "estimatedAnnualRevenue": REVENUE_RANGES.label(revenue),
            "fiscalYearEnd": 12 if facts.ticker else None,
        },
        "indexedAt": bw.index_time(epoch).isoformat().replace("+00:00", "Z"),
        "tech": slugs,
        "techCategories": categories,
        "parent": {"domain": None},
        "ultimateParent": {"domain": None},
    }


def _uuid(key: str) -> str:
    digest = hashlib.sha256(f"clearbit-id\x1f{key}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _error(kind: str, message: str) -> JsonObject:
    return {"error": {"type": kind, "message": message}}


def _has_key(request: httpx.Request) -> bool:
    """Basic auth with a non-empty user, or a Bearer token (Clearbit accepts both)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return bool(value.strip())
    if scheme.lower() != "basic":
        return False
    try:
        user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(user.strip())


def route(request: httpx.Request, *, epoch: int = 1) -> httpx.Response | None:
    """Answer a Clearbit Company API request; None for a path this simulator does not own."""
    if request.url.path != COMPANY_PATH:
        return None
    if request.method != "GET":
        return httpx.Response(404, json=_error("unknown_route", "Unknown route"))
    if not _has_key(request):
        return httpx.Response(401, json=_error("auth_required", "API key required (HTTP Basic user)"))
    domain = (request.url.params.get("domain") or "").strip()
    if not domain:
        return httpx.Response(422, json=_error("params_invalid", "domain is required"))
    status, body = company_response(domain, epoch)
    if body is None:
        return httpx.Response(status)
    return httpx.Response(status, json=body)
