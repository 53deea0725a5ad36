"""Clearbit provider: request and auth, status semantics (202 pending), extraction units, end to end.

Status tests run the real `ProviderClient` over an `httpx.MockTransport`, so
they prove what the policy makes of each answer (retries, call counts), not
only what `interpret` returns.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, expires_at, fetch_domains
from enrichment_pipeline.lib.fields import FIELD_TYPES
from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.providers.base import CallResult
from enrichment_pipeline.lib.providers.clearbit import (
    COMPANY_ENDPOINT,
    COMPANY_PATH,
    Clearbit,
    company_fields,
    technology_name,
)
from enrichment_pipeline.lib.sandbox import clearbit as sandbox_clearbit
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow
from enrichment_pipeline_tests.conftest import Script

KEY = "clearbit-test-key-5d1e"


def settings(**overrides: Any) -> ProviderSettings:
    base: dict[str, Any] = {
        "name": "clearbit",
        "base_url": "https://company.clearbit.com",
        "api_key": KEY,
        "rps": None,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
    }
    return ProviderSettings(**(base | overrides))


async def fetch_one(script: Script, domain: str = "acme.com", **overrides: Any) -> CallResult:
    provider = Clearbit()
    async with ProviderClient(provider, settings(**overrides), transport=script.transport()) as client:
        return await client.fetch(provider.requests_for(domain)[0])


def record(**changes: Any) -> dict[str, Any]:
    """A Clearbit company record in the real shape (trimmed to what matters here)."""
    body: dict[str, Any] = {
        "id": "3f5d6a4e-c284-4f78-bfdf-7669b45af907",
        "name": "Acme",
        "legalName": "Acme Corporation",
        "domain": "acme.com",
        "domainAliases": [],
        "category": {
            "sector": "Information Technology",
            "industryGroup": "Software & Services",
            "industry": "Internet Software & Services",
            "subIndustry": "Internet Software & Services",
            "sicCode": "73",
            "naicsCode": "54",
        },
        "foundedYear": 2004,
        "geo": {"city": "London", "country": "United Kingdom", "countryCode": "GB"},
        "type": "private",
        "ticker": None,
        "metrics": {
            "employees": None,
            "employeesRange": "251-1K",
            "marketCap": None,
            "raised": 42_000_000,
            "annualRevenue": None,
            "estimatedAnnualRevenue": "$10M-$50M",
        },
        "tech": ["google_analytics", "shopify", "new_relic", "hubspot", "shopify"],
        "techCategories": ["analytics", "ecommerce"],
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


# ----------------------------------------------------------------- request and auth


def test_one_get_per_domain_on_the_company_endpoint() -> None:
    provider = Clearbit()
    (request,) = provider.requests_for("acme.com")
    assert (request.endpoint, request.method, request.path) == (COMPANY_ENDPOINT, "GET", COMPANY_PATH)
    assert dict(request.params) == {"domain": "acme.com"}
    assert provider.endpoints("acme.com") == ["company"]
    assert (provider.default_rps, provider.ttl, provider.not_found_ttl) == (
        10.0,
        timedelta(days=30),
        timedelta(days=7),
    )


async def test_key_travels_as_basic_auth_user_never_in_the_url() -> None:
    script = Script(httpx.Response(200, json=record()))
    result = await fetch_one(script)
    assert result.status == "ok"
    (sent,) = script.requests
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert KEY not in str(sent.url)
    assert sent.url.path == COMPANY_PATH and sent.url.params["domain"] == "acme.com"


# ----------------------------------------------------------------- status semantics


async def test_202_queued_is_pending_never_not_found() -> None:
    body = {"error": {"type": "queued", "message": "Lookup queued. Try this request again later."}}
    script = Script(httpx.Response(202, json=body))
    result = await fetch_one(script)
    assert result.status == "pending"
    assert result.status != "not_found"
    assert result.payload is None
    assert result.detail == "lookup queued by Clearbit; asked again on a later run"
    assert script.calls == 1  # queued is an answer, not a failure: no retry
    # The fetcher asks again soon: far sooner than a negative-cache entry would allow.
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert expires_at(Clearbit(), "pending", now) - now < Clearbit.not_found_ttl


async def test_202_with_an_empty_body_is_still_pending() -> None:
    result = await fetch_one(Script(httpx.Response(202)))
    assert result.status == "pending"


async def test_404_is_not_found_and_negatively_cached() -> None:
    body = {"error": {"type": "unknown_record", "message": "Unknown record"}}
    result = await fetch_one(Script(httpx.Response(404, json=body)))
    assert (result.status, result.http_status, result.detail) == ("not_found", 404, "Unknown record")
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert expires_at(Clearbit(), "not_found", now) == now + timedelta(days=7)


async def test_422_is_an_error_after_exactly_one_call() -> None:
    script = Script(httpx.Response(422, json={"error": {"type": "params_invalid", "message": "bad"}}))
    result = await fetch_one(script, domain="not-a-domain", max_attempts=4)
    assert (result.status, result.http_status, result.detail) == ("error", 422, "invalid domain")
    assert script.calls == 1


async def test_402_over_quota_stops_calling_clearbit_for_the_run() -> None:
    script = Script(httpx.Response(402, json={"error": {"type": "over_quota", "message": "Over quota"}}))
    provider = Clearbit()
    async with ProviderClient(provider, settings(), transport=script.transport()) as client:
        first = await client.fetch(provider.requests_for("a.com")[0])
        second = await client.fetch(provider.requests_for("b.com")[0])
    assert first.status == second.status == "auth_failed"
    assert "402" in (first.detail or "")
    assert script.calls == 1


async def test_5xx_is_retried_by_the_policy() -> None:
    script = Script(httpx.Response(503), httpx.Response(200, json=record()))
    result = await fetch_one(script)
    assert (result.status, result.attempts, script.calls) == ("ok", 2, 2)


async def test_200_that_is_not_an_object_is_a_parse_error() -> None:
    result = await fetch_one(Script(httpx.Response(200, json=["not", "a", "company"])))
    assert result.status == "parse_error"


# ----------------------------------------------------------------- extraction


def test_extract_maps_ranges_codes_and_countries_to_standard_units() -> None:
    fields = Clearbit().extract("acme.com", {"company": record()})
    assert set(fields) <= set(FIELD_TYPES)
    assert fields["company_name"] == "Acme"
    # NAICS code first (54 = professional services), even though the words say software
    assert (fields["industry_naics"], fields["industry_label"]) == (
        "54",
        "Professional, Scientific, and Technical Services",
    )
    # "251-1K" → 251..1000, mid 625.5 → 626, in the standard 501-1000 band
    assert fields["employees"] == 626
    assert fields["employees_range"] == "501-1000"
    assert fields["country"] == "GB"
    assert fields["founded_year"] == 2004
    # "$10M-$50M" → low/high, revenue its mid
    assert fields["revenue_low_usd"] == 10e6
    assert fields["revenue_high_usd"] == 50e6
    assert fields["revenue_usd"] == 30e6
    assert fields["total_funding_usd"] == 42e6
    assert fields["is_public"] is False
    assert "ticker" not in fields and "market_cap_usd" not in fields
    assert fields["technologies"] == ["Google Analytics", "Shopify", "New Relic", "HubSpot"]


def test_exact_numbers_win_over_ranges_and_public_companies_are_public() -> None:
    company = record(
        type="public",
        ticker="ACME",
        metrics={"employees": 1200, "annualRevenue": 350_000_000, "marketCap": 2.5e9},
    )
    fields = company_fields(company)
    assert fields["employees"] == 1200 and fields["employees_range"] == "1001-5000"
    assert fields["revenue_usd"] == 350e6  # exact figure, not the range's mid
    assert (fields["revenue_low_usd"], fields["revenue_high_usd"]) == (10e6, 50e6)  # the range is kept
    assert (fields["ticker"], fields["is_public"], fields["market_cap_usd"]) == ("ACME", True, 2.5e9)


def test_a_ticker_alone_makes_a_company_public() -> None:
    fields = company_fields(record(type=None, ticker="ACME"))
    assert fields["is_public"] is True


def test_industry_falls_back_to_the_words_without_a_naics_code() -> None:
    fields = company_fields(record(category={"naicsCode": None}))
    assert fields["industry_naics"] == "51"  # "Internet Software & Services"
    retail = company_fields(
        record(category={"naicsCode": None, "industry": "Specialty Retail", "sector": "Consumer"})
    )
    assert retail["industry_naics"] == "44-45"


def test_open_ended_ranges_and_missing_values() -> None:
    fields = company_fields(
        record(geo={"countryCode": None, "country": "Germany"}, metrics={"estimatedAnnualRevenue": "$10B+"})
    )
    assert fields["country"] == "DE"
    assert (fields["revenue_low_usd"], fields["revenue_usd"]) == (10e9, 10e9)
    assert "revenue_high_usd" not in fields
    bare = company_fields({"name": "Bare", "metrics": {}, "category": {}, "geo": {}})
    assert bare == {"company_name": "Bare"}
    assert Clearbit().extract("acme.com", {}) == {}


@pytest.mark.parametrize(
    ("slug", "name"),
    [
        ("google_analytics", "Google Analytics"),
        ("shopify", "Shopify"),
        ("jquery", "jQuery"),
        ("next_js", "Next.js"),
        ("google_apps", "Google Workspace"),
        ("some_new-tool", "Some New Tool"),
    ],
)
def test_tech_slugs_map_to_builtwith_names(slug: str, name: str) -> None:
    assert technology_name(slug) == name


# ----------------------------------------------------------------- end to end


def _first(predicate: Any, prefix: str) -> str:
    return next(d for d in (f"{prefix}{i}.example" for i in range(5000)) if predicate(d))


async def test_end_to_end_through_the_fetcher_and_the_sandbox() -> None:
    queued = _first(sandbox_clearbit.is_queued, "queued")
    unknown = _first(lambda d: not sandbox_clearbit.is_known(d), "unknown")
    known = [d for d in (f"known{i}.example" for i in range(40)) if sandbox_clearbit.is_known(d)][:5]
    queued_known = [d for d in known if sandbox_clearbit.is_queued(d)]
    domains = [*known, queued, unknown, "nodot"]

    async def run(epoch: int) -> dict[str, ResponseRow]:
        rows: list[ResponseRow] = []
        report = await fetch_domains(
            [(Clearbit(), settings())],
            FetchPlan(domains=domains),
            write=rows.extend,
            mode="sandbox",
            transport=httpx.MockTransport(lambda r: sandbox_clearbit.route(r, epoch=epoch)),
        )
        assert report.stats["clearbit"].calls == len(domains)  # one call each, 422 not retried
        assert [r.domain for r in rows].count(queued) == 1
        return {row.domain: row for row in rows}

    first = await run(epoch=1)
    assert set(first) == set(domains)
    assert all(row.endpoint == "company" and row.provider == "clearbit" for row in first.values())
    assert first[queued].status == "pending" and first[queued].http_status == 202
    assert first[queued].expires_at - first[queued].fetched_at < timedelta(hours=1)
    assert first[unknown].status == "not_found"
    assert first["nodot"].status == "error" and first["nodot"].detail == "invalid domain"
    for domain in known:
        row = first[domain]
        assert row.status == ("pending" if domain in queued_known else "ok")
        if row.status == "ok":
            fields = Clearbit().extract(domain, {"company": row.payload})
            assert fields["employees"] >= 1 and fields["country"] in {"US", "GB", "DE"}

    later = await run(epoch=2)
    assert later[queued].status == "ok"  # the queued lookup has finished by the next run
    assert later[queued].payload["domain"] == queued
