"""Property tests: mutated real answers never crash a run (issue: no answer can crash a run).

Every provider's recorded (or recorded-shape) fixtures are mutated — wrong types, missing
keys, nulls, huge numbers, NaN, deep nesting, a wrong content type — and sent down the same
path an HTTP answer takes: decode, the provider's interpretation (guarded as the policy
guards it), the fetch-time readability check, then the staging builders and the
PROVIDER_FIELDS contract on the stored row. No exception may escape; the row ends `ok` or
`parse_error` (or another status the provider legitimately reads, e.g. `not_found`), and an
`ok` row never breaks a staging contract. Example counts are bounded to keep the suite fast.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, get_args

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib import staging
from enrichment_pipeline.lib.fetching import _readable
from enrichment_pipeline.lib.http_policy import _decode, _default_reading, _Final
from enrichment_pipeline.lib.providers.apollo import BULK_ENRICH_PATH, ENRICH_PATH, Apollo
from enrichment_pipeline.lib.providers.base import (
    CallResult,
    Interpretation,
    Provider,
    ProviderRequest,
    Status,
)
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.providers.clearbit import COMPANY_PATH, Clearbit
from enrichment_pipeline.lib.providers.explorium import FIRMOGRAPHICS_PATH, MATCH_PATH, Explorium
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS, SimilarWeb
from enrichment_pipeline.lib.providers.yahoo import Yahoo
from enrichment_pipeline.lib.sandbox.yahoo import SandboxFinanceSource
from enrichment_pipeline.lib.validation import PROVIDER_FIELDS, SIMILARWEB_TRAFFIC, split_valid
from enrichment_pipeline_tests.fixtures import load

HUGE = "9" * 5000  # beyond Python's int-from-string limit: json.loads raises ValueError
BIG = "9" * 400  # parses, but is no float and no 64-bit integer


def _cases() -> list[tuple[Provider, ProviderRequest, str, Any]]:
    sw = SimilarWeb()
    sw_requests = {r.endpoint: r for r in sw.requests_for("small-example.com")}
    yahoo = Yahoo(source=SandboxFinanceSource())
    return [
        (BuiltWith(), BuiltWith().requests_for("facebook.com")[0], "facebook.com",
         load("builtwith", "facebook_domain_api.json")),
        (BuiltWith(), BuiltWith().requests_for("travel-example.com")[0], "travel-example.com",
         load("builtwith", "travel_site_domain_api_shape.json")),
        (BuiltWith(api="free"), BuiltWith(api="free").requests_for("example.com")[0], "example.com",
         load("builtwith", "free_api.json")),
        *[(sw, sw_requests[e], "small-example.com", load("similarweb", f"{e}.json")) for e in ENDPOINTS],
        *[(sw, sw_requests[e], "example.com", load("similarweb", f"johnmcl_{e}.json")) for e in ENDPOINTS],
        (Clearbit(), ProviderRequest("company", "GET", COMPANY_PATH, {"domain": "uber.com"}), "uber.com",
         load("clearbit", "company.json")),
        (Apollo(), ProviderRequest("organization", "GET", ENRICH_PATH, {"domain": "defense-example.com"}),
         "defense-example.com", load("apollo", "organization_enrich.json")),
        (Apollo(), ProviderRequest("organization_bulk", "POST", BULK_ENRICH_PATH, json={"domains": []}),
         "defense-example.com", load("apollo", "bulk_enrich.json")),
        (Apollo(), ProviderRequest("organization_bulk", "POST", BULK_ENRICH_PATH, json={"domains": []}),
         "older-example.com", load("apollo", "bulk_enrich_older_shape.json")),
        (Apollo(), ProviderRequest("organization", "GET", ENRICH_PATH, {"domain": "older-example.com"}),
         "older-example.com", load("apollo", "organization_enrich_older_shape.json")),
        (Apollo(), ProviderRequest("organization", "GET", ENRICH_PATH, {"domain": "tiny-example.com"}),
         "tiny-example.com", load("apollo", "organization_enrich_revenue_unknown.json")),
        (Explorium(), ProviderRequest("match", "POST", MATCH_PATH), "example-shop.com",
         load("explorium", "match.json")),
        (Explorium(), ProviderRequest("firmographics", "POST", FIRMOGRAPHICS_PATH), "example-shop.com",
         load("explorium", "firmographics.json")),
        (yahoo, ProviderRequest("info", "CALL", "yfinance:info", {"ticker": "META"}), "meta.com",
         load("yahoo", "info_investor_host.json")),
    ]  # fmt: skip


CASES = _cases()

_BAD_VALUES = st.sampled_from(
    [None, "", "not a number", "NaN", [], {}, True, -1, 0, 10**30, 1e308, -1e308, "1e999", 2**63, [[[]]],
     {"x": {"y": None}}, "<html>", "\u0000", "2026-13-45", 99999999999999999]
)  # fmt: skip
_SPECIAL = st.sampled_from(["NAN", "INF", "HUGE", "BIG", "DEEP"])


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (keys and list indexes), the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:5]):
            out += _paths(child, (*prefix, index))
    return out


def _set(value: Any, path: tuple, new: Any, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _set(copy.get(head), rest, new, delete)
        return copy
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        copy = list(value)
        copy[head] = _set(copy[head], rest, new, delete)
        return copy
    return value


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Provider, ProviderRequest, str, bytes, str]:
    provider, request, domain, body = draw(st.sampled_from(CASES))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(body)))
        kind = draw(st.sampled_from(["value", "special", "delete"]))
        new: Any = draw(_BAD_VALUES) if kind == "value" else f"@@{draw(_SPECIAL)}@@"
        body = _set(body, path, new, delete=kind == "delete")
    text = json.dumps(body)
    deep = "[" * 3000 + "]" * 3000
    for token, raw in (("NAN", "NaN"), ("INF", "-Infinity"), ("HUGE", HUGE), ("BIG", BIG), ("DEEP", deep)):
        text = text.replace(f'"@@{token}@@"', raw)
    content_type = draw(st.sampled_from(["application/json"] * 6 + ["text/html", ""]))
    return provider, request, domain, text.encode(), content_type


def _read(
    provider: Provider, request: ProviderRequest, domain: str, raw: bytes, content_type: str
) -> CallResult:
    """The path of one answer through decode, interpretation and the fetch-time check."""
    try:
        body = _decode(200, raw, content_type)
    except _Final as final:
        return CallResult(final.status, 200, None, final.detail, 1, 1.0, 0.0)
    try:
        verdict = provider.interpret(request, 200, body) or _default_reading(200, body)
    except Exception as exc:  # the policy's guard
        verdict = Interpretation("parse_error", None, type(exc).__name__)
    payload = verdict.payload
    if request.path == BULK_ENRICH_PATH and verdict.status == "ok":
        from enrichment_pipeline.lib.providers.apollo import split_bulk

        # Split per domain, then checked like every answer (as the fetcher does).
        result = split_bulk([domain], CallResult("ok", 200, payload, None, 1, 1.0, 0.0))[domain]
    else:
        result = CallResult(verdict.status, 200, payload, verdict.detail, 1, 1.0, 0.0)
    endpoint = "organization" if isinstance(provider, Apollo) else request.endpoint
    [(_, checked)] = _readable(provider, domain, [(endpoint, result)])
    return checked


def _stage(provider: Provider, endpoint: str, domain: str, payload: Any) -> None:
    """Build the staging tables from the stored row and check the contracts."""
    now = datetime.now(UTC)
    responses = pl.DataFrame(
        {
            "provider": [provider.name],
            "endpoint": [endpoint],
            "domain": [domain],
            "status": ["ok"],
            "payload": [json.dumps(payload)],
            "fetched_at": [now],
        }
    )
    refused: staging.Refused = []
    fields = staging.provider_fields(responses, {provider.name: provider}, refused)
    _, quarantined = split_valid(fields, PROVIDER_FIELDS, "staging.provider_fields", now)
    assert quarantined.is_empty(), quarantined.to_dicts()
    if provider.name == "similarweb":
        traffic = staging.similarweb_traffic(responses, refused)
        _, quarantined = split_valid(traffic, SIMILARWEB_TRAFFIC, "staging.similarweb_traffic", now)
        assert quarantined.is_empty(), quarantined.to_dicts()
    if provider.name == "builtwith":
        staging.builtwith_technologies(responses, refused)
        staging.builtwith_groups(responses, refused)
    assert not refused, refused


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_answer_is_one_row_never_a_crash(
    case: tuple[Provider, ProviderRequest, str, bytes, str],
) -> None:
    provider, request, domain, raw, content_type = case
    result = _read(provider, request, domain, raw, content_type)
    assert result.status in get_args(Status)
    if content_type != "application/json":
        assert result.status == "parse_error"
    if result.status == "parse_error":
        assert result.detail and len(result.detail) < 300
    if result.status == "ok":
        endpoint = "organization" if isinstance(provider, Apollo) else request.endpoint
        _stage(provider, endpoint, domain, result.payload)


def test_the_unmutated_fixtures_are_ok_and_clean() -> None:
    for provider, request, domain, body in CASES:
        result = _read(provider, request, domain, json.dumps(body).encode(), "application/json")
        assert result.status == "ok", (provider.name, request.endpoint, result.detail)
        endpoint = "organization" if isinstance(provider, Apollo) else request.endpoint
        _stage(provider, endpoint, domain, result.payload)


def test_known_crashers_are_parse_errors() -> None:
    provider, request, domain, body = CASES[0]
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    huge = json.dumps(body).replace("1585263600000", HUGE, 1).encode()
    assert _read(provider, request, domain, deep, "application/json").status == "parse_error"
    assert _read(provider, request, domain, huge, "application/json").status == "parse_error"
    epoch = json.dumps(body).replace("1585263600000", "1e300").encode()
    assert _read(provider, request, domain, epoch, "application/json").status == "ok"  # unknown date
    assert not math.isnan(0.0)
