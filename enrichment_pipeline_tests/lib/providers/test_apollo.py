"""Apollo provider: header auth, bulk batching and per-domain split, cost split, pause_after, extraction.

Batching tests count calls in an `httpx.MockTransport` handler in front of the
sandbox, so "25 domains → 3 calls" is what actually went over the wire.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.fields import FIELD_TYPES
from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.providers.apollo import (
    BULK_ENRICH_PATH,
    ENRICH_PATH,
    ORGANIZATION_ENDPOINT,
    Apollo,
    organization_fields,
    split_bulk,
)
from enrichment_pipeline.lib.providers.base import CallResult
from enrichment_pipeline.lib.sandbox import apollo as sandbox_apollo
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow
from enrichment_pipeline_tests.conftest import Script

KEY = "apollo-test-key-77a0"
DOMAINS_25 = [f"org{i}.example" for i in range(25)]


def settings(**overrides: Any) -> ProviderSettings:
    base: dict[str, Any] = {
        "name": "apollo",
        "base_url": "https://api.apollo.io",
        "api_key": KEY,
        "rps": None,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
    }
    return ProviderSettings(**(base | overrides))


class Counting:
    """A MockTransport handler that records every request and answers from `answer` (default: sandbox)."""

    def __init__(self, answer: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or sandbox_apollo.route

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def bulk_batches(self) -> list[list[str]]:
        return [json.loads(r.content)["domains"] for r in self.requests if r.url.path == BULK_ENRICH_PATH]


async def fetch_all(handler: Any, domains: list[str], **overrides: Any) -> dict[str, list[tuple[str, Any]]]:
    provider = Apollo()
    async with ProviderClient(
        provider, settings(**overrides), transport=httpx.MockTransport(handler)
    ) as client:
        return await provider.fetch_domains(client, domains, lambda endpoint, domain: True)


async def run_fetcher(handler: Any, domains: list[str], **overrides: Any) -> tuple[Any, list[ResponseRow]]:
    rows: list[ResponseRow] = []
    report = await fetch_domains(
        [(Apollo(), settings(**overrides))],
        FetchPlan(domains=domains),
        write=rows.extend,
        mode="sandbox",
        transport=httpx.MockTransport(handler),
    )
    return report, rows


def organization(domain: str, **changes: Any) -> dict[str, Any]:
    """An Apollo organization in the real shape (trimmed)."""
    return {
        "id": "5e66b6381e05b4008c8331b8",
        "name": "Acme",
        "website_url": f"http://www.{domain}",
        "primary_domain": domain,
        "industry": "information technology & services",
        "industries": ["information technology & services"],
        "secondary_industries": ["computer software"],
        "estimated_num_employees": 640,
        "annual_revenue": 48_500_000,
        "annual_revenue_printed": "48.5M",
        "total_funding": 25_000_000,
        "total_funding_printed": "25M",
        "founded_year": 2015,
        "publicly_traded_symbol": None,
        "publicly_traded_exchange": None,
        "country": "United States",
        "technology_names": ["Google Tag Manager", "WordPress.org", "Amazon AWS", "Hubspot"],
        "current_technologies": [{"uid": "gtm", "name": "Google Tag Manager", "category": "Tag Management"}],
        **changes,
    }


# ----------------------------------------------------------------- requests and auth


async def test_key_travels_in_the_x_api_key_header_never_in_the_url() -> None:
    script = Script(httpx.Response(200, json={"organization": organization("acme.com")}))
    provider = Apollo()
    async with ProviderClient(provider, settings(), transport=script.transport()) as client:
        result = await client.fetch(provider.requests_for("www.Acme.com")[0])
    assert result.status == "ok"
    (sent,) = script.requests
    assert sent.headers["x-api-key"] == KEY
    assert KEY not in str(sent.url)
    assert (sent.method, sent.url.path, sent.url.params["domain"]) == ("GET", ENRICH_PATH, "acme.com")


def test_bulk_request_shape_and_limit() -> None:
    request = Apollo().bulk_request(["A.com", "www.a.com", "b.com"])
    assert (request.method, request.path) == ("POST", BULK_ENRICH_PATH)
    assert request.json == {"domains": ["a.com", "b.com"]}
    with pytest.raises(ValueError, match="1 to 10"):
        Apollo().bulk_request([f"d{i}.com" for i in range(11)])
    assert Apollo.batch_size == 10
    assert Apollo().endpoints("a.com") == [ORGANIZATION_ENDPOINT]


# ----------------------------------------------------------------- bulk batching and split


async def test_25_domains_take_exactly_3_bulk_calls_and_split_per_domain() -> None:
    handler = Counting()
    fetched = await fetch_all(handler, DOMAINS_25)
    assert len(handler.requests) == 3
    assert [len(b) for b in handler.bulk_batches()] == [10, 10, 5]
    assert set(fetched) == set(DOMAINS_25)
    for domain, results in fetched.items():
        ((endpoint, result),) = results
        assert endpoint == ORGANIZATION_ENDPOINT
        if sandbox_apollo.is_known(domain):
            assert result.status == "ok"
            assert result.payload["organization"]["primary_domain"] == domain
        else:
            assert result.status == "not_found" and result.payload is None


async def test_a_lone_domain_uses_the_single_enrich_endpoint() -> None:
    handler = Counting()
    domain = next(d for d in DOMAINS_25 if sandbox_apollo.is_known(d))
    fetched = await fetch_all(handler, [domain])
    assert [(r.method, r.url.path) for r in handler.requests] == [("GET", ENRICH_PATH)]
    assert fetched[domain][0][1].status == "ok"


async def test_cached_domains_are_not_asked_for() -> None:
    handler = Counting()
    provider = Apollo()
    cached = set(DOMAINS_25[:20])
    async with ProviderClient(provider, settings(), transport=httpx.MockTransport(handler)) as client:
        fetched = await provider.fetch_domains(client, DOMAINS_25, lambda e, d: d not in cached)
    assert handler.bulk_batches() == [DOMAINS_25[20:]]
    assert all(fetched[d] == [] for d in cached)


async def test_a_batch_failing_for_good_fails_only_its_own_domains() -> None:
    poisoned = "org13.example"  # in the second batch of ten

    def answer(request: httpx.Request) -> httpx.Response:
        if poisoned in request.content.decode():
            return httpx.Response(503, json={"error": "Service Unavailable"})
        return sandbox_apollo.route(request)

    handler = Counting(answer)
    _, rows = await run_fetcher(handler, DOMAINS_25, max_attempts=3)
    by_domain = {row.domain: row for row in rows}
    assert set(by_domain) == set(DOMAINS_25) and len(rows) == 25
    bad_batch = next(batch for batch in handler.bulk_batches() if poisoned in batch)
    assert len(bad_batch) == 10
    for domain in DOMAINS_25:
        row = by_domain[domain]
        if domain in bad_batch:
            assert (row.status, row.http_status, row.attempts) == ("error", 503, 3)
        else:
            assert row.status == ("ok" if sandbox_apollo.is_known(domain) else "not_found")
    assert len(handler.requests) == 2 + 3  # two good batches once, the bad one three times


async def test_a_rejected_key_fails_every_domain_of_the_batch() -> None:
    handler = Counting(lambda r: httpx.Response(401, json={"error": "Invalid access credentials."}))
    fetched = await fetch_all(handler, DOMAINS_25)
    statuses = Counter(results[0][1].status for results in fetched.values())
    assert statuses == {"auth_failed": 25}
    assert len(handler.requests) == 1  # the policy stops calling after the first 401


def test_split_bulk_shares_cost_attempts_and_latency() -> None:
    body = {
        "status": "success",
        "organizations": [organization("b.com"), organization("Acme.com")],
    }
    result = CallResult("ok", 200, body, None, attempts=3, latency_ms=120.0, cost=0.15)
    split = split_bulk(["www.acme.com", "b.com", "missing.com"], result)
    assert [r.status for r in split.values()] == ["ok", "ok", "not_found"]
    assert split["www.acme.com"].payload == {"organization": organization("Acme.com")}
    assert all(r.attempts == 3 and r.latency_ms == 120.0 for r in split.values())
    assert all(r.cost == pytest.approx(0.05) for r in split.values())
    assert sum(r.cost for r in split.values()) == pytest.approx(result.cost)


def test_split_bulk_matches_on_the_website_when_primary_domain_is_missing() -> None:
    body = {"status": "success", "organizations": [organization("c.com", primary_domain=None)]}
    split = split_bulk(["c.com"], CallResult("ok", 200, body, None, 1, 5.0, 0.05))
    assert split["c.com"].status == "ok"


def test_split_bulk_gives_a_failure_to_every_domain() -> None:
    failed = CallResult("rate_limited", 429, None, "HTTP 429", 4, 900.0, 0.2)
    split = split_bulk(["a.com", "b.com"], failed)
    assert {(r.status, r.detail, r.cost) for r in split.values()} == {("rate_limited", "HTTP 429", 0.1)}


async def test_bulk_costs_add_up_to_the_calls_made() -> None:
    report, rows = await run_fetcher(Counting(), DOMAINS_25, cost_per_call=0.05)
    assert report.stats["apollo"].calls == 3
    assert report.stats["apollo"].cost == pytest.approx(0.15)
    assert sum(row.cost_usd for row in rows) == pytest.approx(0.15)
    first_batch = [row for row in rows if row.domain in DOMAINS_25[:10]]
    assert all(row.cost_usd == pytest.approx(0.005) for row in first_batch)


# ----------------------------------------------------------------- interpretation


@pytest.mark.parametrize("body", [{}, {"organization": None}, {"organization": {}}])
async def test_an_empty_single_answer_is_not_found(body: dict[str, Any]) -> None:
    provider = Apollo()
    script = Script(httpx.Response(200, json=body))
    async with ProviderClient(provider, settings(), transport=script.transport()) as client:
        result = await client.fetch(provider.requests_for("nobody.com")[0])
    assert result.status == "not_found"


def test_bulk_answers_must_say_success_and_carry_organizations() -> None:
    provider = Apollo()
    bulk = provider.bulk_request(["a.com", "b.com"])
    failed = {"status": "failure", "error_code": "X", "error_message": "something broke"}
    verdict = provider.interpret(bulk, 200, failed)
    assert verdict is not None and (verdict.status, verdict.detail) == ("error", "something broke")
    verdict = provider.interpret(bulk, 200, {"status": "success"})
    assert verdict is not None and verdict.status == "parse_error"
    verdict = provider.interpret(bulk, 422, {"error": "Too many domains", "error_code": "INVALID_INPUT"})
    assert verdict is not None and (verdict.status, verdict.detail) == ("error", "HTTP 422: Too many domains")
    assert provider.interpret(bulk, 503, None) is None  # the policy's reading


# ----------------------------------------------------------------- pause_after

# 2024-10-26 05:07:15 UTC: 45 s to the next minute, 3165 s to the next hour, 67965 s to midnight.
NOW = 86400.0 * 20022 + 5 * 3600 + 7 * 60 + 15


def pause(**headers: str) -> float | None:
    return Apollo(clock=lambda: NOW).pause_after(
        httpx.Headers({k.replace("_", "-"): v for k, v in headers.items()})
    )


def test_no_pause_with_budget_left_or_without_headers() -> None:
    assert pause(**sandbox_apollo.rate_limit_headers()) is None
    assert pause() is None
    assert pause(x_minute_requests_left="3") is None
    assert pause(x_minute_requests_left="soon") is None


def test_low_minute_budget_waits_for_the_next_minute() -> None:
    assert pause(x_minute_requests_left="2") == 46.0
    assert pause(x_minute_requests_left="0") == 46.0
    assert pause(x_rate_limit_minute="200", x_minute_usage="199") == 46.0  # left derived from usage


def test_spent_hour_or_day_waits_longer() -> None:
    assert pause(x_hourly_requests_left="0", x_minute_requests_left="150") == 3166.0
    assert pause(x_hourly_requests_left="1") is None
    assert pause(x_daily_requests_left="0", x_minute_requests_left="1") == 67966.0
    assert pause(x_24_hour_requests_left="0") == 67966.0  # the older spelling
    assert pause(x_rate_limit_24_hour="2000", x_24_hour_usage="2000") == 67966.0


def test_header_names_are_case_insensitive() -> None:
    headers = httpx.Headers({"X-Minute-Requests-Left": "1"})
    assert Apollo(clock=lambda: NOW).pause_after(headers) == 46.0


async def test_the_policy_holds_calls_after_a_low_budget_answer_capped_by_its_setting() -> None:
    low = {"x-minute-requests-left": "0", "x-rate-limit-minute": "200"}
    script = Script(httpx.Response(200, json={"organization": organization("a.com")}, headers=low))
    provider = Apollo()
    async with ProviderClient(
        provider, settings(max_retry_after_s=0.2), transport=script.transport()
    ) as client:
        await client.fetch(provider.requests_for("a.com")[0])
        started = time.perf_counter()
        await asyncio.wait_for(client.fetch(provider.requests_for("b.com")[0]), timeout=5)
        waited = time.perf_counter() - started
    assert 0.15 <= waited < 2.0


# ----------------------------------------------------------------- extraction


def test_extract_maps_to_standard_fields_and_units() -> None:
    fields = Apollo().extract("acme.com", {"organization": {"organization": organization("acme.com")}})
    assert set(fields) <= set(FIELD_TYPES)
    assert fields == {
        "company_name": "Acme",
        "industry_naics": "51",
        "industry_label": "Information",
        "employees": 640,
        "employees_range": "501-1000",
        "country": "US",
        "founded_year": 2015,
        "revenue_usd": 48_500_000,
        "total_funding_usd": 25_000_000,
        "is_public": False,
        "technologies": ["Google Tag Manager", "WordPress", "Amazon Web Services", "HubSpot"],
    }


def test_extract_fallbacks_public_companies_and_printed_amounts() -> None:
    org = organization(
        "acme.com",
        industry=None,
        industries=["financial services"],
        annual_revenue=None,
        annual_revenue_printed="1.2B",
        total_funding=None,
        total_funding_printed=None,
        publicly_traded_symbol="ACME",
        country="Germany",
        technology_names=[],
    )
    fields = organization_fields(org)
    assert (fields["industry_naics"], fields["revenue_usd"]) == ("52", 1.2e9)
    assert "total_funding_usd" not in fields
    assert (fields["ticker"], fields["is_public"], fields["country"]) == ("ACME", True, "DE")
    assert fields["technologies"] == ["Google Tag Manager"]  # from current_technologies
    assert Apollo().extract("acme.com", {}) == {}
    assert Apollo().extract("acme.com", {"organization": {}}) == {}


# ----------------------------------------------------------------- end to end


async def test_end_to_end_through_the_fetcher_and_the_sandbox() -> None:
    handler = Counting()
    report, rows = await run_fetcher(handler, DOMAINS_25)
    assert len(handler.requests) == 3 and report.stats["apollo"].calls == 3
    by_domain = {row.domain: row for row in rows}
    assert len(rows) == 25 and set(by_domain) == set(DOMAINS_25)
    unknown = [d for d in DOMAINS_25 if not sandbox_apollo.is_known(d)]
    for domain, row in by_domain.items():
        assert (row.provider, row.endpoint, row.http_status) == ("apollo", "organization", 200)
        if domain in unknown:
            assert row.status == "not_found"
            continue
        assert row.status == "ok"
        fields = Apollo().extract(domain, {"organization": row.payload})
        assert fields["employees"] >= 1 and len(fields["country"]) == 2
        # Bulk answers (as recorded) carry no technologies or funding, and revenue
        # only in newer records that know it.
        assert not {"technologies", "total_funding_usd"} & set(fields)
        organization = row.payload["organization"]
        knows_revenue = bool(organization.get("organization_revenue_printed"))
        assert ("revenue_usd" in fields) == knows_revenue
    assert KEY not in json.dumps([row.payload for row in rows])
