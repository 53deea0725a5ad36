"""Explorium AgentSource: firmographics and technographics for many domains per call.

Explorium keys everything by its own ``business_id`` (32 hex characters), so
enriching a batch of domains takes three bulk calls (up to 50 items each):

1. ``POST /v1/businesses/match`` with ``{"businesses_to_match": [{"domain": d}, ...]}``
   answers ``{"response_context": {...}, "total_results": n, "total_matches": m,
   "matched_businesses": [{"input": {...}, "business_id": "<hex>" | null}, ...]}``
   in input order; an item may instead carry ``error``/``error_type``;
2. ``POST /v1/businesses/firmographics/bulk_enrich`` with ``{"business_ids": [...]}``
   answers ``{"response_context": {...}, "data": [{"business_id": ..., "data": {...}}]}``;
3. ``POST /v1/businesses/technographics/bulk_enrich``, same request and envelope;
   ``data.full_tech_stack`` is a flat list of names and ``data.full_nested_tech_stack``
   a list of ``{"category": ..., "techs": [...]}``.

Each domain still gets its own stored row per endpoint (``match``,
``firmographics``, ``technographics``) holding *its* item of the bulk answer,
so caching, TTLs and replay stay per domain. A failed bulk call (after the
policy's retries) fails only its own batch; a bad or missing item fails only
its own domain. Domains without a ``business_id`` cost no enrichment calls.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

from enrichment_pipeline.lib import units
from enrichment_pipeline.lib.json_values import array as _array
from enrichment_pipeline.lib.json_values import host as _host
from enrichment_pipeline.lib.json_values import mapping as _mapping
from enrichment_pipeline.lib.json_values import text as _text
from enrichment_pipeline.lib.providers import base

MATCH_PATH = "/v1/businesses/match"
FIRMOGRAPHICS_PATH = "/v1/businesses/firmographics/bulk_enrich"
TECHNOGRAPHICS_PATH = "/v1/businesses/technographics/bulk_enrich"

MATCH = "match"
FIRMOGRAPHICS = "firmographics"
TECHNOGRAPHICS = "technographics"
ENDPOINTS: tuple[str, ...] = (MATCH, FIRMOGRAPHICS, TECHNOGRAPHICS)
ENRICHMENT_PATHS: dict[str, str] = {FIRMOGRAPHICS: FIRMOGRAPHICS_PATH, TECHNOGRAPHICS: TECHNOGRAPHICS_PATH}

# Explorium's documented maximum for businesses_to_match and business_ids.
MAX_BATCH = 50
BUSINESS_ID = re.compile(r"^[a-f0-9]{32}$")
# Explorium answers a spent plan with HTTP 403 and a message about credits; that is
# not a bad key, so it must not disable the provider like an auth failure would.
_CREDITS_MESSAGE = re.compile(r"credit|quota|insufficient", re.IGNORECASE)


class Explorium(base.Provider):
    """Explorium AgentSource v1: match domains to business ids, then bulk-enrich them.

    `batch_size` (1..50) is how many domains share one bulk call; the fetcher
    hands `fetch_domains` that many at a time.
    """

    name: ClassVar[str] = "explorium"
    default_base_url: ClassVar[str] = "https://api.explorium.ai"
    default_rps: ClassVar[float] = 5.0
    default_cost_per_call: ClassVar[float] = 0.05
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)

    def __init__(self, batch_size: int = MAX_BATCH) -> None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= MAX_BATCH
        ):
            raise ValueError(
                f"Explorium batch_size must be a whole number from 1 to {MAX_BATCH}, not {batch_size!r}"
            )
        # Per instance, unlike other providers: the bulk size is configurable.
        self.batch_size = batch_size  # type: ignore[misc]

    # ------------------------------------------------------------------ protocol

    def requests_for(self, domain: str) -> list[base.ProviderRequest]:
        """The match call for one domain; the enrichment calls need its answer (see `fetch_domains`)."""
        return [match_request([domain])]

    def endpoints(self, domain: str) -> list[str]:
        """Three stored answers per domain, although only the match call is known up front."""
        return list(ENDPOINTS)

    def auth(self, api_key: str) -> base.Auth:
        """Explorium reads the key from an ``api_key`` header."""
        return base.Auth(headers={"api_key": api_key})

    def interpret(
        self, request: base.ProviderRequest, http_status: int, body: Any
    ) -> base.Interpretation | None:
        """Whole-call readings of a bulk answer; per-item readings happen in `fetch_domains`.

        A 404 on a bulk path says nothing about the domains in it (wrong path or
        plan), so it is an error, not seven days of "not found" for 50 domains.
        """
        if 200 <= http_status < 300:
            if not isinstance(body, Mapping):
                return base.Interpretation(
                    "parse_error", payload=body, detail="Explorium answer is not a JSON object"
                )
            context = body.get("response_context")
            request_status = str(context.get("request_status") or "") if isinstance(context, Mapping) else ""
            if request_status.lower() == "failure":
                return base.Interpretation("error", payload=body, detail="Explorium request_status failure")
            key = "matched_businesses" if request.endpoint == MATCH else "data"
            items = body.get(key)
            if items is None and request_status.lower() == "miss":
                return base.Interpretation("ok", payload={**body, key: []})
            if not isinstance(items, list):
                return base.Interpretation(
                    "parse_error", payload=body, detail=f"Explorium answer has no {key} list"
                )
            return base.Interpretation("ok", payload=body)
        message = _message(body)
        if http_status == 403 and _CREDITS_MESSAGE.search(message):
            return base.Interpretation(
                "quota_exhausted", payload=body, detail=message or "HTTP 403: out of credits"
            )
        if http_status == 404:
            return base.Interpretation("error", payload=body, detail=f"HTTP 404 from {request.path}")
        if http_status == 422:
            return base.Interpretation(
                "error", payload=body, detail=f"HTTP 422: {message or 'validation error'}"
            )
        return None

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # The ``data`` object of each stored per-domain item.
        firm = _mapping(_mapping(payloads.get(FIRMOGRAPHICS)).get("data"))
        if firm:
            out.update(firmographic_fields(firm))
        tech = _mapping(_mapping(payloads.get(TECHNOGRAPHICS)).get("data"))
        if tech:
            names = technologies(tech)
            if names:
                out["technologies"] = names
        return out

    # ------------------------------------------------------------------ flow

    async def fetch_batch(self, job: base.FetchJob, domains: list[str]) -> base.Fetched:
        """One match call for the domains, then at most one call per enrichment endpoint.

        The match is made again even when only an enrichment is missing from
        the cache: the stored business_id is not available here, and one match
        item costs a fiftieth of a call.
        """
        wanted = {d: job.wanted(d, ENDPOINTS) for d in domains}
        out: base.Fetched = {d: [] for d in domains}
        matched = await job.client.fetch(match_request(domains))
        shared = _share(matched, len(domains))
        if matched.status != "ok":
            skipped = _skipped(matched.status, f"not requested: the match call failed ({matched.detail})")
            for domain in domains:
                out[domain] = [(e, shared if e == MATCH else skipped) for e in wanted[domain]]
            return out

        items = match_items(matched.payload, domains)
        # endpoint -> business_id -> domains (two domains may be one business)
        to_enrich: dict[str, dict[str, list[str]]] = {e: {} for e in ENRICHMENT_PATHS}
        rows: dict[str, dict[str, base.CallResult]] = {d: {} for d in domains}
        for domain in domains:
            item = items.get(domain)
            status, detail, business_id = _read_match_item(item)
            rows[domain][MATCH] = replace(shared, status=status, payload=item, detail=detail)
            for endpoint in wanted[domain]:
                if endpoint == MATCH:
                    continue
                if business_id is None:
                    reason = "no Explorium business_id for this domain" if status == "not_found" else detail
                    rows[domain][endpoint] = _skipped(status, f"not requested: {reason}")
                else:
                    to_enrich[endpoint].setdefault(business_id, []).append(domain)
            for endpoint in wanted[domain]:  # the match is paid for: durable before the enrichment calls
                if endpoint in rows[domain]:
                    job.tell(domain, endpoint, rows[domain][endpoint])

        answers = await asyncio.gather(
            *(self._enrich(job.client, endpoint, by_id) for endpoint, by_id in to_enrich.items() if by_id)
        )
        for answer in answers:
            for domain, (endpoint, result) in answer:
                rows[domain][endpoint] = result
        for domain in domains:
            out[domain] = [(e, rows[domain][e]) for e in wanted[domain] if e in rows[domain]]
        return out

    async def _enrich(
        self, client: base.Caller, endpoint: str, by_id: dict[str, list[str]]
    ) -> list[tuple[str, tuple[str, base.CallResult]]]:
        """One bulk enrichment call; each domain gets its own item (or its own not_found)."""
        request = base.ProviderRequest(
            endpoint, "POST", ENRICHMENT_PATHS[endpoint], json={"business_ids": list(by_id)}
        )
        result = await client.fetch(request)
        served = sum(len(domains) for domains in by_id.values())
        shared = _share(result, served)
        out: list[tuple[str, tuple[str, base.CallResult]]] = []
        if result.status != "ok":
            for domains in by_id.values():
                out.extend((d, (endpoint, shared)) for d in domains)
            return out
        found = enrichment_items(result.payload)
        for business_id, domains in by_id.items():
            item = found.get(business_id)
            status, detail = _read_enrichment_item(item, endpoint)
            row = replace(shared, status=status, payload=item, detail=detail)
            out.extend((d, (endpoint, row)) for d in domains)
        return out


# --------------------------------------------------------------------------- requests


def match_request(domains: Iterable[str]) -> base.ProviderRequest:
    """The bulk match call; only the domain is sent (a null name fails Explorium's validation)."""
    return base.ProviderRequest(
        MATCH, "POST", MATCH_PATH, json={"businesses_to_match": [{"domain": d} for d in domains]}
    )


# --------------------------------------------------------------------------- bulk answers


def _domain_key(value: Any) -> str | None:
    """Loose domain key for pairing answers with inputs (Explorium may echo a URL or www.)."""
    return (_host(value) or "").removeprefix("www.") or None


def match_items(payload: Any, domains: list[str]) -> dict[str, dict[str, Any]]:
    """Each input domain's item of a match answer.

    Items are paired by the echoed ``input.domain``; an item without one is
    paired by position, which Explorium guarantees (same length and order).
    A domain with no item is left out (the caller records an error for it).
    """
    items = _array(_mapping(payload).get("matched_businesses"))
    keys = {_domain_key(d): d for d in domains}
    out: dict[str, dict[str, Any]] = {}
    positional = len(items) == len(domains)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        domain = keys.get(_domain_key(_mapping(item.get("input")).get("domain")))
        if domain is None and positional:
            domain = domains[index]
        if domain is not None and domain not in out:
            out[domain] = dict(item)
    return out


def enrichment_items(payload: Any) -> dict[str, dict[str, Any]]:
    """A bulk enrichment answer's items by business_id (items without a valid id are dropped)."""
    out: dict[str, dict[str, Any]] = {}
    for item in _array(_mapping(payload).get("data")):
        if isinstance(item, Mapping):
            business_id = item.get("business_id")
            if isinstance(business_id, str) and business_id not in out:
                out[business_id] = dict(item)
    return out


def _read_match_item(item: Mapping[str, Any] | None) -> tuple[base.Status, str | None, str | None]:
    """(status, detail, business_id) of one domain's match item."""
    if item is None:
        return "error", "Explorium's match answer has no item for this domain", None
    if item.get("error"):
        kind = item.get("error_type") or "error"
        return "error", f"Explorium match error ({kind}): {item.get('error')}", None
    business_id = item.get("business_id")
    if business_id is None:
        return "not_found", "Explorium matched no business", None
    if not isinstance(business_id, str) or not BUSINESS_ID.match(business_id):
        return "parse_error", f"Explorium returned a malformed business_id {business_id!r}", None
    return "ok", None, business_id


def _read_enrichment_item(item: Mapping[str, Any] | None, endpoint: str) -> tuple[base.Status, str | None]:
    """(status, detail) of one business's item of a bulk enrichment answer."""
    if item is None:
        return "not_found", f"Explorium has no {endpoint} for this business"
    if item.get("error"):
        return "error", f"Explorium {endpoint} error: {item.get('error')}"
    data = item.get("data")
    if data is None or data == {}:
        return "not_found", f"Explorium has no {endpoint} for this business"
    if not isinstance(data, Mapping):
        return "parse_error", f"Explorium {endpoint} item data is not an object"
    return "ok", None


def _share(result: base.CallResult, served: int) -> base.CallResult:
    """A batch call's result as one domain's row: same attempts and latency, a share of the cost."""
    return replace(result, cost=result.cost / max(1, served))


def _skipped(status: base.Status, detail: str) -> base.CallResult:
    """A row for a call that was never made (no business_id, or the match failed)."""
    return base.CallResult(status, None, None, detail, attempts=0, latency_ms=0.0, cost=0.0)


def _message(body: Any) -> str:
    """Explorium's error text: ``detail`` (FastAPI), ``details`` or ``message``."""
    if not isinstance(body, Mapping):
        return ""
    for key in ("detail", "details", "message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list) and value:
            first = value[0]
            if isinstance(first, Mapping) and first.get("msg"):
                return str(first["msg"])
    return ""


# --------------------------------------------------------------------------- parsing


def firmographic_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Standard firmographic and financial fields from one firmographics ``data`` object (no I/O).

    Explorium gives ranges, not numbers: employees are the middle of
    ``number_of_employees_range`` and revenue the middle of ``yearly_revenue_range``
    (with its bounds kept as low/high). NAICS decides the industry; the text
    categories are only a fallback.
    """
    out: dict[str, Any] = {}
    out["company_name"] = _text(data.get("name"))
    industry = units.industry_from_naics(data.get("naics")) or units.industry_from_text(
        _text(data.get("naics_description")),
        _text(data.get("linkedin_industry_category")),
        _text(data.get("sic_code_description")),
    )
    out.update(units.industry_fields(industry))
    employees = units.count_range(_text(data.get("number_of_employees_range")))
    if employees is not None and employees.mid is not None and employees.mid >= 1:
        out["employees"] = int(employees.mid)
        out["employees_range"] = units.employee_band(employees.mid)
    revenue = units.money_range(_text(data.get("yearly_revenue_range")))
    if revenue is not None:
        if revenue.mid is not None:
            out["revenue_usd"] = float(revenue.mid)
        if revenue.low is not None:
            out["revenue_low_usd"] = float(revenue.low)
        if revenue.high is not None:
            out["revenue_high_usd"] = float(revenue.high)
    country = units.country_code(_text(data.get("country_name")))
    if country is not None:
        out["country"] = country
    return {k: v for k, v in out.items() if v is not None}


def technologies(data: Mapping[str, Any]) -> list[str]:
    """Technology names from one technographics ``data`` object, first occurrence kept (no I/O).

    ``full_tech_stack`` is Explorium's flat list; ``full_nested_tech_stack``
    (``[{"category", "techs"}]``) is read when the flat list is absent. Category
    objects with ``technologies`` are accepted in either place too.
    """
    names: list[str] = []

    def add(values: Any) -> None:
        for value in _array(values):
            if isinstance(value, Mapping):
                add(value.get("techs") if value.get("techs") is not None else value.get("technologies"))
            elif (name := _text(value)) and name not in names:
                names.append(name)

    add(data.get("full_tech_stack"))
    if not names:
        add(data.get("full_nested_tech_stack"))
    return names
