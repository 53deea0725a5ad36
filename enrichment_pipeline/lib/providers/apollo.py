"""Apollo.io Organization Enrichment: firmographics, financials and technologies.

The key travels in the ``x-api-key`` header. Two endpoints:

* ``GET /api/v1/organizations/enrich?domain=<domain>`` — one company; the
  answer is ``{"organization": {...}}`` (empty when Apollo has no match);
* ``POST /api/v1/organizations/bulk_enrich`` with ``{"domains": [...]}`` — up to
  `BULK_LIMIT` companies in one call; the answer lists only the organizations
  Apollo found, in its own order, so they are matched back to the requested
  domains by ``primary_domain``.

`Apollo.batch_size` makes the fetcher hand `Apollo.fetch_domains` ten domains at
a time; those go out as one bulk call (a lone domain uses the single endpoint).
Each domain still gets its own stored row under the ``organization`` endpoint,
in the single endpoint's shape, so caching, TTLs and `extract` do not care
which endpoint answered. A failed bulk call (after the policy's retries) fails
every domain of that batch and no other batch.

Apollo reports its remaining budget in headers on every answer;
`Apollo.pause_after` reads them to slow down *before* a 429 (see there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from enrichment_pipeline.lib.json_values import array as _array
from enrichment_pipeline.lib.json_values import host as _host
from enrichment_pipeline.lib.json_values import mapping as _mapping
from enrichment_pipeline.lib.json_values import number as _number
from enrichment_pipeline.lib.json_values import text as _text
from enrichment_pipeline.lib.providers.base import (
    Auth,
    CallResult,
    Fetched,
    FetchJob,
    Interpretation,
    Provider,
    ProviderRequest,
)
from enrichment_pipeline.lib.units import (
    country_code,
    employee_band,
    industry_fields,
    industry_from_naics,
    industry_from_sic,
    industry_from_text,
    money_range,
)

ENRICH_PATH = "/api/v1/organizations/enrich"
BULK_ENRICH_PATH = "/api/v1/organizations/bulk_enrich"
ORGANIZATION_ENDPOINT = "organization"  # stored rows, one per domain, whichever endpoint answered
BULK_ENDPOINT = "organization_bulk"  # the request of a bulk call; never stored under this name
BULK_LIMIT = 10  # Apollo's documented maximum domains per bulk_enrich call

# Pausing when the budget is low: keep a small reserve for calls already in flight.
MINUTE_RESERVE = 2
# Apollo uses fixed windows. Its reset time is not sent, so windows are assumed
# aligned to the clock (as in Rack::Attack-style fixed windows); a second of
# margin absorbs clock skew. If the assumption is wrong, the worst case is the
# 429 the policy already handles.
_WINDOW_MARGIN_S = 1.0
_MINUTE_S, _HOUR_S, _DAY_S = 60.0, 3600.0, 86400.0
# (left, limit, usage) header names per window; the first name present wins.
_MINUTE_HEADERS = (("x-minute-requests-left",), ("x-rate-limit-minute",), ("x-minute-usage",))
_HOUR_HEADERS = (("x-hourly-requests-left",), ("x-rate-limit-hourly",), ("x-hourly-usage",))
_DAY_HEADERS = (
    ("x-daily-requests-left", "x-24-hour-requests-left"),
    ("x-rate-limit-daily", "x-rate-limit-24-hour"),
    ("x-daily-usage", "x-24-hour-usage"),
)

# Apollo's spellings of technologies that BuiltWith names differently.
TECH_ALIASES: dict[str, str] = {
    "WordPress.org": "WordPress",
    "Amazon AWS": "Amazon Web Services",
    "Google Apps": "Google Workspace",
    "Microsoft Office 365": "Microsoft 365",
    "Office 365": "Microsoft 365",
    "Hubspot": "HubSpot",
    "Cloudflare DNS": "Cloudflare",
    "Cloudflare CDN": "Cloudflare",
    "Google Font API": "Google Font API",
}


class Apollo(Provider):
    """Apollo Organization Enrichment, ten domains per bulk call.

    `clock` (seconds since the epoch) is injectable so `pause_after` can be
    tested without waiting for the wall clock.
    """

    name: ClassVar[str] = "apollo"
    default_base_url: ClassVar[str] = "https://api.apollo.io"
    default_rps: ClassVar[float] = 3.0
    default_cost_per_call: ClassVar[float] = 0.05
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)
    batch_size: ClassVar[int] = BULK_LIMIT
    # What each endpoint can fill. bulk_enrich organizations never carry
    # technologies or funding (recorded answers); records from late 2025 on
    # carry organization_revenue* and naics_codes/sic_codes there too (older
    # ones neither), so bulk can fill financials where Apollo knows the revenue.
    # Whether a group was filled is read from the extracted values, never
    # assumed from this table.
    ENDPOINT_GROUPS: ClassVar[dict[str, frozenset[str]]] = {
        ENRICH_PATH: frozenset({"firmographics", "financials", "technologies"}),
        BULK_ENRICH_PATH: frozenset({"firmographics", "financials"}),
    }

    def __init__(self, clock: Callable[[], float] = time.time, *, bulk: bool = True) -> None:
        self._clock = clock
        self.bulk = bulk
        # Per instance: one domain per call when bulk calls are off.
        self.batch_size = BULK_LIMIT if bulk else 1  # type: ignore[misc]

    def fillable_groups(self) -> frozenset[str]:
        """The field groups the endpoint this instance calls can fill (see ENDPOINT_GROUPS)."""
        return self.ENDPOINT_GROUPS[BULK_ENRICH_PATH if self.bulk else ENRICH_PATH]

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        """The single-domain enrich call (Apollo wants the domain without ``www.``)."""
        return [ProviderRequest(ORGANIZATION_ENDPOINT, "GET", ENRICH_PATH, {"domain": apollo_domain(domain)})]

    def bulk_request(self, domains: Sequence[str]) -> ProviderRequest:
        """One bulk_enrich call for up to `BULK_LIMIT` domains (normalized, each once)."""
        wanted = list(dict.fromkeys(apollo_domain(d) for d in domains))
        if not 1 <= len(wanted) <= BULK_LIMIT:
            raise ValueError(f"Apollo bulk_enrich takes 1 to {BULK_LIMIT} domains, not {len(wanted)}")
        return ProviderRequest(BULK_ENDPOINT, "POST", BULK_ENRICH_PATH, json={"domains": wanted})

    def auth(self, api_key: str) -> Auth:
        """Apollo takes the key in the ``x-api-key`` header."""
        return Auth(headers={"x-api-key": api_key})

    async def fetch_batch(self, job: FetchJob, domains: list[str]) -> Fetched:
        """One call for up to ten uncached domains: a bulk call, or the single call for a lone domain.

        The policy retries a failing bulk call as a whole; whatever it ends with
        is given to each domain of that batch only (see `split_bulk`).
        """
        if len(domains) == 1:
            answers = {domains[0]: await job.client.fetch(self.requests_for(domains[0])[0])}
        else:
            answers = split_bulk(domains, await job.client.fetch(self.bulk_request(domains)))
        for domain, per_domain in answers.items():
            job.tell(domain, ORGANIZATION_ENDPOINT, per_domain)
        return {domain: [(ORGANIZATION_ENDPOINT, per_domain)] for domain, per_domain in answers.items()}

    def interpret(self, request: ProviderRequest, http_status: int, body: Any) -> Interpretation | None:
        """Empty single answers are not_found; bulk answers must say success; 422 carries Apollo's reason."""
        if http_status == 422:
            return Interpretation("error", body, f"HTTP 422: {_error_message(body) or 'invalid request'}")
        if not 200 <= http_status < 300:
            return None
        if not isinstance(body, Mapping):
            return Interpretation("parse_error", body, "Apollo answer is not a JSON object")
        if request.path == BULK_ENRICH_PATH:
            status = str(body.get("status") or "success").lower()
            if status != "success":
                return Interpretation("error", body, _error_message(body) or f"Apollo bulk status {status}")
            if not isinstance(body.get("organizations"), list):
                return Interpretation("parse_error", body, "Apollo bulk answer has no organizations list")
            return Interpretation("ok", body)
        if not _organization(body):
            return Interpretation("not_found", body, "Apollo has no organization for this domain")
        return Interpretation("ok", body)

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        """Standard fields from the stored ``{"organization": {...}}`` answer."""
        organization = _organization(payloads.get(ORGANIZATION_ENDPOINT))
        return organization_fields(organization) if organization else {}

    def pause_after(self, headers: Mapping[str, str]) -> float | None:
        """Hold all calls when Apollo's budget is (nearly) spent, before it answers 429.

        * minute budget left ≤ `MINUTE_RESERVE` → until the next clock minute (≤ 61 s);
        * hourly budget left 0 → until the next clock hour;
        * daily budget left 0 → until the next UTC midnight.

        The policy caps any pause at ``max_retry_after_s``, so an exhausted hour
        or day slows the run down rather than stalling it; the calls that still
        hit a 429 are recorded as ``rate_limited``. Left counts come from the
        ``x-*-requests-left`` headers, else from limit minus usage. Apollo's
        current docs name the daily ones ``x-daily-*`` / ``x-rate-limit-daily``;
        the ``x-24-hour-*`` / ``x-rate-limit-24-hour`` spelling is read too.
        """
        now = self._clock()
        pauses: list[float] = []
        day_left = _left(headers, *_DAY_HEADERS)
        if day_left is not None and day_left <= 0:
            pauses.append(_until_next(now, _DAY_S))
        hour_left = _left(headers, *_HOUR_HEADERS)
        if hour_left is not None and hour_left <= 0:
            pauses.append(_until_next(now, _HOUR_S))
        minute_left = _left(headers, *_MINUTE_HEADERS)
        if minute_left is not None and minute_left <= MINUTE_RESERVE:
            pauses.append(_until_next(now, _MINUTE_S))
        return max(pauses) if pauses else None


# --------------------------------------------------------------------------- bulk split


def apollo_domain(domain: str) -> str:
    """The form Apollo matches on: lower case, no ``www.``, no trailing dot."""
    key = domain.strip().lower().rstrip(".")
    return key.removeprefix("www.")


def split_bulk(domains: Sequence[str], result: CallResult) -> dict[str, CallResult]:
    """One result per requested domain from one bulk call's result (no I/O).

    Every per-domain result shares the call's attempts and latency and carries
    an equal share of its cost, so costs still add up to what the call cost.
    A failed call gives each domain the same status and detail; a successful
    one gives ``ok`` with ``{"organization": {...}}`` (the single endpoint's
    shape) to the domains whose organization came back, and ``not_found`` to
    the rest.
    """
    if not domains:
        return {}
    share = result.cost / len(domains)

    def each(status: Any, payload: Any, detail: str | None) -> CallResult:
        return CallResult(
            status,
            result.http_status,
            payload,
            detail,
            result.attempts,
            result.latency_ms,
            share,
            result.wait_ms,
        )

    if result.status != "ok":
        return {domain: each(result.status, result.payload, result.detail) for domain in domains}

    by_domain = organizations_by_domain(result.payload)
    out: dict[str, CallResult] = {}
    for domain in domains:
        organization = by_domain.get(apollo_domain(domain))
        if organization is None:
            out[domain] = each(
                "not_found", None, "Apollo bulk_enrich returned no organization for this domain"
            )
        else:
            out[domain] = each("ok", {"organization": organization}, None)
    return out


def organizations_by_domain(body: Any) -> dict[str, Mapping[str, Any]]:
    """A bulk answer's organizations keyed by normalized ``primary_domain`` (else website host)."""
    found: dict[str, Mapping[str, Any]] = {}
    for organization in _array(_mapping(body).get("organizations")):
        if not isinstance(organization, Mapping):
            continue
        key = _text(organization.get("primary_domain")) or _host(organization.get("website_url"))
        if key:
            found.setdefault(apollo_domain(key), organization)
    return found


# --------------------------------------------------------------------------- parsing


def organization_fields(organization: Mapping[str, Any]) -> dict[str, Any]:
    """Standard fields (`lib/fields.py`) from one Apollo organization (no I/O).

    Unknown values are left out, so an empty Apollo field never hides another
    provider's value in a merge.
    """
    out: dict[str, Any] = {"company_name": _text(organization.get("name"))}

    # Codes, when present, beat keyword mapping of the industry words
    # ("defense & space" with NAICS 54151 is a services firm, not government).
    industry = _first(industry_from_naics, organization.get("naics_codes"))
    industry = industry or _first(industry_from_sic, organization.get("sic_codes"))
    if industry is None:
        industries = [organization.get("industry")]
        for key in ("industries", "secondary_industries"):
            value = organization.get(key)
            industries += _array(value)
        industry = industry_from_text(*(_text(i) for i in industries))
    out.update(industry_fields(industry))

    employees = _number(organization.get("estimated_num_employees"))
    if employees is not None and employees >= 1:
        out["employees"] = round(employees)
        out["employees_range"] = employee_band(employees)
    out["country"] = country_code(_text(organization.get("country")))
    founded = _number(organization.get("founded_year"))
    out["founded_year"] = int(founded) if founded else None

    # Older records say annual_revenue*, newer ones organization_revenue*. Apollo sends
    # an unknown revenue as 0.0 with a null printed value (recorded answers): that is
    # no revenue at all, never a revenue of 0 that would outrank another provider's.
    revenue = _positive(organization.get("annual_revenue"))
    if revenue is None:
        revenue = _positive(organization.get("organization_revenue"))
    for key in ("annual_revenue_printed", "organization_revenue_printed"):
        if revenue is None:
            printed = money_range(_text(organization.get(key)))
            revenue = _positive(printed.mid) if printed else None
    out["revenue_usd"] = revenue
    funding = _number(organization.get("total_funding"))
    if funding is None:
        printed = money_range(_text(organization.get("total_funding_printed")))
        funding = printed.mid if printed else None
    out["total_funding_usd"] = funding

    ticker = _text(organization.get("publicly_traded_symbol"))
    out["ticker"] = ticker
    if "publicly_traded_symbol" in organization:  # Apollo sends null for private companies
        out["is_public"] = ticker is not None

    technologies = technology_names(organization)
    if technologies:
        out["technologies"] = technologies
    return {k: v for k, v in out.items() if v is not None}


def _positive(value: Any) -> float | None:
    """A number above 0, else None (Apollo's 0 means "not known")."""
    number = _number(value)
    return number if number is not None and number > 0 else None


def _first(read: Callable[[Any], Any], codes: Any) -> Any:
    """The first code of a list (or a lone code) that `read` understands."""
    for code in codes if isinstance(codes, list) else [codes]:
        if isinstance(code, str | int) and not isinstance(code, bool):
            found = read(code)
            if found is not None:
                return found
    return None


def technology_names(organization: Mapping[str, Any]) -> list[str]:
    """``technology_names``, else ``current_technologies[].name``, in BuiltWith's spelling, once each."""
    raw = _array(organization.get("technology_names")) or [
        t.get("name") for t in _array(organization.get("current_technologies")) if isinstance(t, Mapping)
    ]
    names: list[str] = []
    for value in raw:
        name = _text(value)
        if name:
            name = TECH_ALIASES.get(name, name)
            if name not in names:
                names.append(name)
    return names


def _organization(body: Any) -> Mapping[str, Any] | None:
    organization = body.get("organization") if isinstance(body, Mapping) else None
    return organization if isinstance(organization, Mapping) and organization else None


def _error_message(body: Any) -> str | None:
    """Apollo errors carry ``error`` and/or ``error_message`` (sometimes ``message``)."""
    if not isinstance(body, Mapping):
        return None
    for key in ("error_message", "error", "message"):
        text = _text(body.get(key))
        if text:
            return text[:200]
    return None


def _left(
    headers: Mapping[str, str], left: Sequence[str], limit: Sequence[str], usage: Sequence[str]
) -> float | None:
    """Requests left in a window: the ``*-left`` header, else limit minus usage, else None."""
    value = _header_number(headers, left)
    if value is not None:
        return value
    cap, used = _header_number(headers, limit), _header_number(headers, usage)
    return cap - used if cap is not None and used is not None else None


def _header_number(headers: Mapping[str, str], names: Sequence[str]) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        number = _number(raw)
        if number is not None:
            return number
    return None


def _until_next(now: float, window_s: float) -> float:
    """Seconds until the next clock-aligned window starts, plus the margin."""
    return window_s - (now % window_s) + _WINDOW_MARGIN_S
