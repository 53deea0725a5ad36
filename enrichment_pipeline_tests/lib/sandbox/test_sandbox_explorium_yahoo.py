"""Explorium and Yahoo simulators: faithful shapes, determinism, consistency, end to end.

Explorium requests are built by the real provider and answered by
`sandbox.explorium.route` behind an httpx transport, as the shared policy would
send them; Yahoo's simulator is a `FinanceSource` plugged into the real provider.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.providers.explorium import (
    FIRMOGRAPHICS_PATH,
    MATCH_PATH,
    TECHNOGRAPHICS_PATH,
    Explorium,
    firmographic_fields,
)
from enrichment_pipeline.lib.providers.yahoo import (
    DEFAULT_TICKERS_PATH,
    TTM,
    Yahoo,
    load_tickers,
    website_domain,
)
from enrichment_pipeline.lib.sandbox import builtwith as sandbox_builtwith
from enrichment_pipeline.lib.sandbox import explorium as sx
from enrichment_pipeline.lib.sandbox.shared import size_quantile
from enrichment_pipeline.lib.sandbox.yahoo import SEARCH_ONLY, SandboxFinanceSource, revenue_usd
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow

KEY = "sandbox-explorium-key"
BASE = Explorium.default_base_url


def post(path: str, body: Any, key: str | None = KEY, method: str = "POST") -> httpx.Response | None:
    headers = {"api_key": key} if key is not None else {}
    request = httpx.Request(method, BASE + path, json=body, headers=headers)
    return sx.route(request)


def match(domains: list[str]) -> dict[str, Any]:
    response = post(MATCH_PATH, {"businesses_to_match": [{"domain": d} for d in domains]})
    assert response is not None and response.status_code == 200
    return response.json()


def enrich(path: str, ids: list[str]) -> dict[str, Any]:
    response = post(path, {"business_ids": ids})
    assert response is not None and response.status_code == 200
    return response.json()


def handler(request: httpx.Request) -> httpx.Response:
    return sx.route(request) or httpx.Response(404, json={"error": "Not Found"})


# --------------------------------------------------------------------------- Explorium


def test_route_ignores_other_paths_and_checks_key_method_and_body() -> None:
    assert sx.route(httpx.Request("GET", "https://api.builtwith.com/v22/api.json")) is None
    assert post(MATCH_PATH, {"businesses_to_match": [{"domain": "a.com"}]}, key=None).status_code == 401
    assert post(MATCH_PATH, None, method="GET").status_code == 405
    too_many = {"businesses_to_match": [{"domain": f"d{i}.com"} for i in range(51)]}
    assert post(MATCH_PATH, too_many).status_code == 422
    bad_id = post(FIRMOGRAPHICS_PATH, {"business_ids": ["not-an-id"]})
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0]["loc"] == ["body", "business_ids", 0]
    assert post(TECHNOGRAPHICS_PATH, {"business_ids": []}).status_code == 422


def test_match_shapes_ids_and_unmatched_rate() -> None:
    domains = [f"company-{i}.example" for i in range(50)]
    body = match(domains)
    assert set(body) == {"response_context", "total_results", "total_matches", "matched_businesses"}
    assert set(body["response_context"]) == {"correlation_id", "request_status", "time_took_in_seconds"}
    assert [item["input"]["domain"] for item in body["matched_businesses"]] == domains
    for item in body["matched_businesses"]:
        domain, business = item["input"]["domain"], item["business_id"]
        assert business is None or (
            re.fullmatch(r"[a-f0-9]{32}", business) and business == sx.business_id(domain)
        )
    assert body["total_matches"] == sum(1 for i in body["matched_businesses"] if i["business_id"])

    many = [f"shop{i}.test" for i in range(3000)]
    unmatched = sum(not sx.is_matched(d) for d in many) / len(many)
    assert 0.04 < unmatched < 0.08


def test_answers_are_deterministic() -> None:
    domains = ["acme.com", "globex.co.uk", "initech.io"]
    assert match(domains)["matched_businesses"] == match(domains)["matched_businesses"]
    ids = [sx.business_id(d) for d in domains if sx.is_matched(d)]
    assert enrich(FIRMOGRAPHICS_PATH, ids) == enrich(FIRMOGRAPHICS_PATH, ids)
    assert enrich(TECHNOGRAPHICS_PATH, ids) == enrich(TECHNOGRAPHICS_PATH, ids)
    assert sx.technographics("acme.com", 1) == sx.technographics("acme.com", 1)


def test_unknown_ids_are_missing_until_matched() -> None:
    domain = next(d for d in (f"never-matched-{i}.com" for i in range(100)) if sx.is_matched(d))
    business = sx.business_id(domain)
    assert enrich(FIRMOGRAPHICS_PATH, [business])["data"] == []
    match([domain])
    (item,) = enrich(FIRMOGRAPHICS_PATH, [business])["data"]
    assert item["business_id"] == business and item["data"]["website"] == f"https://www.{domain}"


def test_firmographics_follow_the_shared_size() -> None:
    domains = [f"firm{i}.com" for i in range(400)]
    fields = [firmographic_fields(sx.firmographics(d)) for d in domains]
    assert all(f["employees"] >= 1 and f["revenue_low_usd"] <= f["revenue_usd"] for f in fields)
    assert all(f["country"] and f["industry_naics"] and f["company_name"] for f in fields)
    by_size = sorted(zip((size_quantile(d) for d in domains), fields, strict=True), key=lambda pair: pair[0])
    small = [f["employees"] for _, f in by_size[:100]]
    large = [f["employees"] for _, f in by_size[-100:]]
    assert statistics.median(large) > 10 * statistics.median(small)
    revenue_small = statistics.median(f["revenue_usd"] for _, f in by_size[:100])
    revenue_large = statistics.median(f["revenue_usd"] for _, f in by_size[-100:])
    assert revenue_large > 10 * revenue_small


def test_technographics_overlap_builtwith_stack() -> None:
    domains = [d for d in (f"stack{i}.com" for i in range(200)) if sandbox_builtwith.is_known(d)]
    overlaps = []
    for domain in domains:
        data = sx.technographics(domain)
        assert data["full_tech_stack"] == sorted(
            {t for c in data["full_nested_tech_stack"] for t in c["techs"]}
        )
        live = {e.tech.name for e in sandbox_builtwith.technology_stack(domain) if e.live}
        overlaps.append(len(live & set(data["full_tech_stack"])) / len(live))
        extra = set(data["full_tech_stack"]) - live
        assert extra <= {name for name, *_ in sx._BACK_OFFICE}  # only what a crawler cannot see
    assert 0.7 < statistics.mean(overlaps) < 0.9


async def test_provider_runs_end_to_end_on_the_sandbox() -> None:
    domains = [f"company-{i}.example" for i in range(120)]
    written: list[ResponseRow] = []
    provider = Explorium(batch_size=50)
    config = ProviderSettings(
        name="explorium", base_url=BASE, api_key=KEY, rps=None, backoff_base_s=0.001, backoff_max_s=0.01
    )

    report = await fetch_domains(
        [(provider, config)],
        FetchPlan(domains=domains),
        write=written.extend,
        mode="sandbox",
        transport=httpx.MockTransport(handler),
    )

    assert report.stats["explorium"].calls == 9 and report.stats["explorium"].statuses == {"ok": 9}
    rows: dict[str, dict[str, ResponseRow]] = {}
    for row in written:
        rows.setdefault(row.domain, {})[row.endpoint] = row
    assert set(rows) == set(domains)
    for domain, by_endpoint in rows.items():
        assert set(by_endpoint) == {"match", "firmographics", "technographics"}
        if sx.is_matched(domain):
            assert by_endpoint["firmographics"].status == "ok"
            expected = "ok" if sx.has_technographics(domain) else "not_found"
            assert by_endpoint["technographics"].status == expected
            payloads = {e: r.payload for e, r in by_endpoint.items() if r.status == "ok"}
            assert provider.extract(domain, payloads)["employees"] >= 1
        else:
            assert {r.status for r in by_endpoint.values()} == {"not_found"}
    json.dumps([r.payload for r in written])  # storable as JSON


# --------------------------------------------------------------------------- Yahoo


def test_listed_companies_have_complete_consistent_info() -> None:
    source = SandboxFinanceSource()
    mapping = load_tickers(DEFAULT_TICKERS_PATH)
    for domain, symbol in {**mapping, **SEARCH_ONLY}.items():
        info = source.info(symbol)
        for key in (
            "longName", "sector", "industry", "fullTimeEmployees", "totalRevenue", "revenueGrowth",
            "grossMargins", "operatingMargins", "marketCap", "currency", "financialCurrency", "website",
            "country", "symbol", "regularMarketPrice",
        ):  # fmt: skip
            assert info.get(key) is not None, (symbol, key)
        assert website_domain(info) == domain  # map and search confirmation agree
        assert 0 < info["grossMargins"] <= 1 and -1 < info["operatingMargins"] < info["grossMargins"]
        statement = source.income_statement(symbol)
        years = sorted(p for p in statement if p != TTM)
        assert len(years) == 3 and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", p) for p in years)
        assert statement[TTM]["Total Revenue"] == info["totalRevenue"]
        assert (
            statement[years[0]]["Total Revenue"] < statement[years[-1]]["Total Revenue"]
            or info["revenueGrowth"] < 0
        )


def test_search_finds_listed_companies_and_lookalikes_only() -> None:
    source = SandboxFinanceSource()
    assert [q["symbol"] for q in source.search("twilio")] == ["TWLO"]
    assert source.search("twilio")[0]["quoteType"] == "EQUITY"
    stems = [f"private{i}" for i in range(600)]
    lookalikes = [s for s in stems if source.search(s)]
    assert 0.03 < len(lookalikes) / len(stems) < 0.15
    for stem in lookalikes:
        (candidate,) = source.search(stem)
        assert website_domain(source.info(candidate["symbol"])) != f"{stem}.com"
    assert source.info("NOPE") == {"trailingPegRatio": None}


def test_yahoo_sandbox_is_deterministic_and_in_local_currencies() -> None:
    one, two = SandboxFinanceSource(), SandboxFinanceSource()
    for symbol in ("AAPL", "HSBA.L", "6758.T", "SAP", "ZAL.DE"):
        assert one.info(symbol) == two.info(symbol)
        assert one.income_statement(symbol) == two.income_statement(symbol)
    hsbc, sony, sap = one.info("HSBA.L"), one.info("6758.T"), one.info("SAP")
    assert (hsbc["currency"], hsbc["financialCurrency"], hsbc["country"]) == ("GBp", "GBP", "United Kingdom")
    assert (sony["currency"], sony["financialCurrency"]) == ("JPY", "JPY")
    assert (sap["currency"], sap["financialCurrency"], sap["country"]) == ("USD", "EUR", "Germany")


@pytest.mark.parametrize("domain", ["apple.com", "hsbc.com", "sony.com", "sap.com", "zalando.de"])
def test_provider_conversion_recovers_the_simulated_usd(domain: str) -> None:
    source = SandboxFinanceSource()
    symbol = load_tickers(DEFAULT_TICKERS_PATH)[domain]
    fields = Yahoo(source=source).extract(domain, {"ticker": {"ticker": symbol}, "info": source.info(symbol)})
    assert fields["revenue_usd"] == pytest.approx(revenue_usd(domain), rel=0.01)
    assert fields["market_cap_usd"] > fields["revenue_usd"] * 0.9


async def test_both_providers_end_to_end_in_sandbox_mode() -> None:
    domains = ["apple.com", "hsbc.com", "twilio.com", "apple.org", "company-7.example", "zalando.de"]
    written: list[ResponseRow] = []
    source = SandboxFinanceSource()
    yahoo = Yahoo(source=source)
    quick = {"rps": None, "backoff_base_s": 0.001, "backoff_max_s": 0.01}

    await fetch_domains(
        [
            (yahoo, ProviderSettings(name="yahoo", base_url=Yahoo.default_base_url, api_key="k", **quick)),
            (Explorium(), ProviderSettings(name="explorium", base_url=BASE, api_key=KEY, **quick)),
        ],
        FetchPlan(domains=domains),
        write=written.extend,
        mode="sandbox",
        transport=httpx.MockTransport(handler),
    )

    rows = {(r.provider, r.endpoint, r.domain): r for r in written}
    assert Counter(r.provider for r in written) == {"yahoo": 18, "explorium": 18}
    # Mapped domains need no search; only the four public companies get a statement call.
    assert (source.calls["search"], source.calls["income_statement"]) == (3, 4)
    assert rows[("yahoo", "ticker", "apple.com")].payload == {"ticker": "AAPL", "source": "map"}
    assert rows[("yahoo", "ticker", "twilio.com")].payload == {"ticker": "TWLO", "source": "search"}
    for domain in ("apple.org", "company-7.example"):
        for endpoint in ("ticker", "info", "financials"):
            row = rows[("yahoo", endpoint, domain)]
            assert (row.status, row.payload) == ("not_found", {"not_public": True})
            assert row.expires_at - row.fetched_at == timedelta(days=30)
    for domain in ("apple.com", "hsbc.com", "twilio.com", "zalando.de"):
        for endpoint in ("ticker", "info", "financials"):
            row = rows[("yahoo", endpoint, domain)]
            assert row.status == "ok" and row.expires_at - row.fetched_at == timedelta(days=1)
        payloads = {e: rows[("yahoo", e, domain)].payload for e in ("ticker", "info", "financials")}
        fields = yahoo.extract(domain, payloads)
        assert fields["is_public"] is True and fields["revenue_usd"] > 1e8
        assert 0 <= fields["gross_margin"] <= 1 and fields["operating_margin"] <= 1
