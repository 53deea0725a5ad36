"""Deterministic SimilarWeb API v1 simulator (traffic and engagement, rank, sources).

Every number is a pure function of (domain, country, month), drawn from
generators seeded with SHA-256 (`shared.seeded`), so the same request always
gets the same body, overlapping windows agree month by month, and runs are
reproducible across processes and machines.

Visits grow with the domain's *size* (`shared.size_quantile`, squared so most
domains are small), which every simulator shares: big sites also run bigger
stacks at BuiltWith and are bigger companies at Clearbit and Apollo.

Answers follow the recorded v1 shapes (see the test fixtures' SOURCES.md):
traffic sources are desktop visit counts, a fifth to a half of the all-device
visits; global-rank points are dated ``YYYY-MM``; "Data not found" echoes no
request.

Simulated plan: countries in `PLAN_COUNTRIES` only; any other valid country
gets SimilarWeb's 403, which lets the provider's ``country=world`` fallback run
end to end. About 1 in 25 domains has no data at all (404, "Data not found").
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import httpx

from enrichment_pipeline.lib.sandbox.shared import domain_key, seeded, size_quantile

JsonObject = dict[str, Any]

NO_DATA_ONE_IN = 25
PLAN_COUNTRIES: frozenset[str] = frozenset({"world", "us", "gb"})
MIN_VISITS, MAX_VISITS = 1e4, 5e8
MAX_MONTHS = 120
SOURCE_TYPES: tuple[str, ...] = ("Search", "Social", "Mail", "Display Ads", "Direct", "Referrals")

# metric path (below /v1/website/{domain}/) -> JSON list key of its answer
PATH_PREFIX = "/v1/website/"  # then {domain}/{metric}, a key of METRICS
METRICS: dict[str, str] = {
    "total-traffic-and-engagement/visits": "visits",
    "total-traffic-and-engagement/bounce-rate": "bounce_rate",
    "total-traffic-and-engagement/pages-per-visit": "pages_per_visit",
    "total-traffic-and-engagement/average-visit-duration": "average_visit_duration",
    "global-rank/global-rank": "global_rank",
    "traffic-sources/overview-share": "visits",
}
# Global rank is global: SimilarWeb ignores the country there, so no plan check either.
_COUNTRY_FREE = frozenset({"global-rank/global-rank"})
_REFERENCE_MONTH = 2026 * 12  # month index of 2026-01; trends are anchored here
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def has_data(domain: str) -> bool:
    """False for about 1 in 25 domains (independent of BuiltWith's unknowns: different salt)."""
    return seeded("similarweb-known", domain_key(domain)).randrange(NO_DATA_ONE_IN) != 0


def base_monthly_visits(domain: str) -> float:
    """World visits in the reference month: ~10k to ~500M, log-scale with a skew to small sites."""
    q = size_quantile(domain)
    low, high = math.log10(MIN_VISITS), math.log10(MAX_VISITS)
    return 10 ** (low + (high - low) * q**2)


def monthly_visits(domain: str, month: date, country: str = "world") -> float:
    """Visits in one month: base x per-domain trend x monthly noise (kept in range) x country share."""
    key = domain_key(domain)
    trend = seeded("sw-trend", key).uniform(-0.04, 0.06)
    offset = max(-36, min(36, month.year * 12 + month.month - 1 - _REFERENCE_MONTH))
    noise = seeded("sw-visits", key, month.isoformat()).uniform(-0.08, 0.08)
    world = _clamp(base_monthly_visits(key) * math.exp(trend * offset) * (1 + noise), MIN_VISITS, MAX_VISITS)
    return world * _country_share(key, country)


def _country_share(domain: str, country: str) -> float:
    if country == "world":
        return 1.0
    low, high = (0.15, 0.7) if country == "us" else (0.02, 0.25)
    return seeded("sw-country", domain, country).uniform(low, high)


def _engagement(domain: str, country: str, month: date) -> dict[str, float]:
    """Bounce rate, pages/visit and duration for one month; larger sites engage a little better."""
    q = size_quantile(domain)
    base = seeded("sw-engagement", domain, country)
    jitter = seeded("sw-engagement", domain, country, month.isoformat())
    bounce = _clamp(base.uniform(0.28, 0.72) - 0.05 * q + jitter.uniform(-0.03, 0.03), 0.25, 0.75)
    pages = _clamp(base.uniform(1.5, 6.5) + 2.5 * q + jitter.uniform(-0.3, 0.3), 1.5, 9.0)
    duration = _clamp(pages * base.uniform(20.0, 65.0) + jitter.uniform(-15, 15), 30.0, 600.0)
    return {"bounce_rate": bounce, "pages_per_visit": pages, "average_visit_duration": duration}


def global_rank(domain: str, month: date) -> int:
    """Rank consistent with world visits: ~100 at 500M visits/month, ~3M at 10k."""
    visits = monthly_visits(domain, month, "world")
    jitter = seeded("sw-rank", domain_key(domain), month.isoformat()).uniform(-0.05, 0.05)
    return max(1, round(10 ** (10.33 - 0.957 * math.log10(visits)) * (1 + jitter)))


def source_shares(domain: str, country: str, month: date) -> dict[str, float]:
    """Channel shares summing to 1; search (organic + paid) between 0.1 and 0.7."""
    domain = domain_key(domain)
    base = seeded("sw-sources", domain, country)
    jitter = seeded("sw-sources", domain, country, month.isoformat())
    search = _clamp(base.uniform(0.1, 0.7) + jitter.uniform(-0.03, 0.03), 0.1, 0.7)
    weights = {
        "Social": base.uniform(0.02, 0.3),
        "Mail": base.uniform(0.0, 0.08),
        "Display Ads": base.uniform(0.0, 0.08),
        "Direct": base.uniform(0.3, 1.0),
        "Referrals": base.uniform(0.1, 0.5),
    }
    weights = {k: w * (1 + jitter.uniform(-0.1, 0.1)) for k, w in weights.items()}
    total = sum(weights.values())
    shares = {"Search": search} | {k: (1 - search) * w / total for k, w in weights.items()}
    return {k: shares[k] for k in SOURCE_TYPES}


def similarweb_response(domain: str, metric: str, params: Mapping[str, str]) -> tuple[int, JsonObject]:
    """(HTTP status, body) for ``/v1/website/{domain}/{metric}`` with the given query params.

    Checks what SimilarWeb checks (dates, granularity, country and plan), then
    answers in the real v1 shapes. The key is checked by `route`.
    """
    key = domain_key(domain)
    if metric not in METRICS:
        return 404, _error(None, 404, f"Unknown endpoint: {metric}")
    granularity = (params.get("granularity") or "monthly").lower()
    country = (params.get("country") or "world").lower()
    start, end = _parse_month(params.get("start_date")), _parse_month(params.get("end_date"))
    if start is None or end is None or end < start:
        return 400, _error(None, 400, "Invalid start_date/end_date: expected YYYY-MM with start <= end")
    if len(_months(start, end)) > MAX_MONTHS:
        return 400, _error(None, 400, f"The date range may span at most {MAX_MONTHS} months")
    if granularity != "monthly":
        return 400, _error(None, 400, "The sandbox supports granularity=monthly only")
    if country != "world" and not re.fullmatch(r"[a-z]{2}", country):
        return 400, _error(None, 400, f"Invalid country: {country}")

    main_domain_only = (params.get("main_domain_only") or "false").lower() == "true"
    request_echo: JsonObject = {
        "granularity": "Monthly",
        "main_domain_only": main_domain_only,
        "mtd": False,
        "show_verified": False,
        "state": None,
        "format": params.get("format") or "json",
        "domain": key,
        "start_date": start.isoformat(),
        "end_date": _month_end(end).isoformat(),
        "country": country,
    }
    if metric in _COUNTRY_FREE:
        # The recorded global-rank answer echoes only the domain, window and country.
        request_echo = {k: request_echo[k] for k in ("domain", "start_date", "end_date", "country")}
    if metric not in _COUNTRY_FREE and country not in PLAN_COUNTRIES:
        return 403, _error(request_echo, 403, f"Your plan does not include country: {country}")
    if not has_data(key):
        # SimilarWeb's own (odd) error_code for a domain it has no panel data on;
        # the recorded body echoes no request.
        return 404, _error(None, 401, "Data not found")

    months = _months(start, end)
    meta = {"request": request_echo, "status": "Success", "last_updated": _month_end(end).isoformat()}
    list_key = METRICS[metric]
    if metric == "traffic-sources/overview-share":
        # The real answer gives *desktop* visit counts per source and month, split
        # into organic and paid (not shares), well below the all-device visits:
        # the client divides by the sources' own monthly total.
        visits = [
            {"source_type": source, "visits": [_source_point(key, country, source, m) for m in months]}
            for source in SOURCE_TYPES
        ]
        return 200, {"meta": {**meta, "device": "Desktop"}, "visits": {key: visits}}
    return 200, {"meta": meta, list_key: [_point(key, country, list_key, m) for m in months]}


def route(request: httpx.Request, *, epoch: int = 1) -> httpx.Response | None:
    """Answer a SimilarWeb request; None for a path this simulator does not own.

    SimilarWeb has no index runs, so `epoch` changes nothing here. A missing ``api_key`` is a 401.
    """
    path = request.url.path
    if not path.startswith(PATH_PREFIX):
        return None
    parts = path[len(PATH_PREFIX) :].strip("/").split("/")
    if len(parts) != 3 or not parts[0] or f"{parts[1]}/{parts[2]}" not in METRICS:
        return httpx.Response(404, json={"error": "Not Found", "path": path})
    if request.method != "GET":
        return httpx.Response(405, json=_error(None, 405, "Method not allowed"))
    params = request.url.params
    if not (params.get("api_key") or "").strip():
        return httpx.Response(401, json=_error(None, 401, "Invalid API key"))
    query = {k: params.get(k) or "" for k in params}
    status, body = similarweb_response(parts[0], f"{parts[1]}/{parts[2]}", query)
    return httpx.Response(status, json=body)


def desktop_fraction(domain: str, country: str, month: date) -> float:
    """The part of a month's visits made on desktop (the recorded answer: about a fifth)."""
    key = domain_key(domain)
    base = seeded("sw-desktop", key, country).uniform(0.15, 0.45)
    return base * (1 + seeded("sw-desktop", key, country, month.isoformat()).uniform(-0.05, 0.05))


def _source_point(domain: str, country: str, source: str, month: date) -> JsonObject:
    """One month of one source: desktop visits split into organic and paid, as SimilarWeb sends them."""
    visits = 0.0 if is_gap_month(domain, month) else monthly_visits(domain, month, country)
    total = visits * desktop_fraction(domain, country, month) * source_shares(domain, country, month)[source]
    paid_part = {"Search": seeded("sw-paid", domain).uniform(0.05, 0.4), "Display Ads": 1.0}.get(source, 0.0)
    return {
        "date": month.isoformat(),
        "organic": round(total * (1 - paid_part), 3),
        "paid": round(total * paid_part, 3),
    }


def is_unranked(domain: str) -> bool:
    """The smallest ~5% of sites: SimilarWeb answers their global rank with 0 (unranked)."""
    return size_quantile(domain) < 0.05


def is_gap_month(domain: str, month: date) -> bool:
    """Small sites (bottom ~15%) have months in which the panel saw no visit at all (0 visits)."""
    key = domain_key(domain)
    return size_quantile(key) < 0.15 and seeded("sw-gap", key, month.isoformat()).random() < 0.3


def _point(domain: str, country: str, list_key: str, month: date) -> JsonObject:
    gap = is_gap_month(domain, month)
    if list_key == "visits":
        value: float | int = 0 if gap else round(monthly_visits(domain, month, country), 3)
    elif list_key == "global_rank":
        value = 0 if is_unranked(domain) else global_rank(domain, month)
        return {"date": month.strftime("%Y-%m"), list_key: value}  # rank points are dated by month
    else:
        value = 0 if gap else round(_engagement(domain, country, month)[list_key], 6)
    return {"date": month.isoformat(), list_key: value}


def _error(request_echo: JsonObject | None, code: int, message: str) -> JsonObject:
    meta: JsonObject = {"status": "Error", "error_code": code, "error_message": message}
    if request_echo is not None:
        meta = {"request": request_echo, **meta}
    return {"meta": meta}


def _parse_month(value: str | None) -> date | None:
    match = _MONTH.match((value or "").strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)


def _months(start: date, end: date) -> list[date]:
    first = start.year * 12 + start.month - 1
    last = end.year * 12 + end.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(first, last + 1)]


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
