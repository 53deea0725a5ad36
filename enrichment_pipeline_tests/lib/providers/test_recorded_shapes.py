"""The parsers on real recorded answers (and fixtures of their exact shapes): see fixtures/*/SOURCES.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from enrichment_pipeline.lib.providers.apollo import BULK_ENRICH_PATH, Apollo, organization_fields
from enrichment_pipeline.lib.providers.base import ProviderRequest
from enrichment_pipeline.lib.providers.builtwith import (
    DOMAIN_API_ENDPOINT,
    FREE_API_ENDPOINT,
    BuiltWith,
    groups_from_free_api,
    technologies_from_domain_api,
)
from enrichment_pipeline.lib.providers.clearbit import Clearbit
from enrichment_pipeline.lib.providers.explorium import firmographic_fields, technologies
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS, traffic_from_payloads
from enrichment_pipeline.lib.providers.yahoo import confirms
from enrichment_pipeline.lib.staging import read_answer
from enrichment_pipeline.lib.waterfall import Waterfall, load_waterfall
from enrichment_pipeline_tests.fixtures import load

DOMAIN_REQ = ProviderRequest(DOMAIN_API_ENDPOINT, "GET", "/v22/api.json", {"LOOKUP": "x"})


# --------------------------------------------------------------------------- BuiltWith


def test_recorded_facebook_answer_parses() -> None:
    body = load("builtwith", "facebook_domain_api.json")
    assert BuiltWith().interpret(DOMAIN_REQ, 200, body).status == "ok"  # type: ignore[union-attr]
    rows = technologies_from_domain_api("facebook.com", body)
    assert len(rows) == 20 and all(r["is_live"] for r in rows)  # one crawl: all seen at LastIndexed
    fields = BuiltWith().extract("facebook.com", {DOMAIN_API_ENDPOINT: body})
    assert "Netmining" in fields["technologies"] and "company_name" not in fields  # Meta is empty
    assert fields["tech_spend_usd"] == 1700.0
    assert read_answer(BuiltWith(), DOMAIN_API_ENDPOINT, "facebook.com", body)[0] is None


def test_dead_technologies_are_history_not_the_current_stack() -> None:
    body = load("builtwith", "travel_site_domain_api_shape.json")
    rows = {r["technology"]: r for r in technologies_from_domain_api("travel-example.com", body)}
    dead = {name for name, r in rows.items() if not r["is_live"]}
    assert dead == {"CrazyEgg", "Optimizely", "Algolia", "AppNexus"}
    assert rows["Algolia"]["last_detected"] == datetime(2019, 4, 11, 23, 0, tzinfo=UTC)
    fields = BuiltWith().extract("travel-example.com", {DOMAIN_API_ENDPOINT: body})
    assert "Algolia" not in fields["technologies"]  # never a search vendor or ICP signal
    assert "Cloudflare" in fields["technologies"]  # 20 days before the crawl is still live


def test_version_entries_roll_up_into_their_parent() -> None:
    body = load("builtwith", "travel_site_domain_api_shape.json")
    rows = {r["technology"]: r for r in technologies_from_domain_api("travel-example.com", body)}
    assert "jQuery 1.9.1" not in rows and "ASP.NET 4.0" not in rows
    assert rows["jQuery"]["first_detected"] == datetime(2013, 8, 29, 23, 0, tzinfo=UTC)
    # A plugin with a Parent is its own technology, not a version.
    assert rows["jQuery UI"]["parent"] == "jQuery"
    assert rows["Google Universal Analytics"]["parent"] == "Google Analytics"


def test_builtwith_firmographic_signals() -> None:
    body = load("builtwith", "travel_site_domain_api_shape.json")
    fields = BuiltWith().extract("travel-example.com", {DOMAIN_API_ENDPOINT: body})
    assert fields["country"] == "AU" and fields["tech_spend_usd"] == 4121.0
    assert "employees" not in fields and "revenue_usd" not in fields  # 0 means unknown
    body["Results"][0]["Meta"].update(CompanyName="Travel Example Pty Ltd", Vertical="Travel", Country="UK")
    body["Results"][0]["Attributes"]["Employees"] = 250
    body["Results"][0]["SalesRevenue"] = 2_500_000
    fields = BuiltWith().extract("travel-example.com", {DOMAIN_API_ENDPOINT: body})
    assert fields["company_name"] == "Travel Example Pty Ltd" and fields["country"] == "GB"
    assert (fields["employees"], fields["employees_range"]) == (250, "201-500")
    assert fields["revenue_usd"] == 2_500_000 and fields["industry_naics"] == "72"
    # the waterfall lists BuiltWith last for those groups: its values never stop a better provider
    waterfall = load_waterfall()
    assert waterfall.order("firmographics")[-1] == "builtwith"
    filled = waterfall.fill_positions("builtwith", {"firmographics", "financials"})
    assert waterfall.wanted(1, filled, {"builtwith", "clearbit", "yahoo"}, {"apollo"}) == {"apollo"}


def test_recorded_error_and_free_api_shapes() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, load("builtwith", "error_no_key.json"))
    assert result is not None and result.status == "auth_failed" and "code -5" in (result.detail or "")
    free = load("builtwith", "free_api.json")
    rows = groups_from_free_api("example.com", free)  # millisecond epochs, although documented as seconds
    assert rows[0]["latest"] == datetime(2024, 3, 13, tzinfo=UTC)
    request = ProviderRequest(FREE_API_ENDPOINT, "GET", "/free1/api.json", {"LOOKUP": "example.com"})
    assert read_answer(BuiltWith(api="free"), request.endpoint, "example.com", free)[0] is None


# --------------------------------------------------------------------------- SimilarWeb


def _similarweb() -> dict[str, Any]:
    return {endpoint: load("similarweb", f"{endpoint}.json") for endpoint in ENDPOINTS}


def test_similarweb_small_site_gaps_unranked_and_shares() -> None:
    profile = traffic_from_payloads("small-example.com", _similarweb())
    assert profile["global_rank"] is None  # 0 = unranked, never rank 0
    assert profile["gap_months"] == 1
    assert profile["monthly_visits"] == pytest.approx((1200.5 + 1800.25) / 2)  # the 0 month is a gap
    assert profile["visits_growth"] == pytest.approx(1800.25 / 1200.5 - 1)
    assert profile["bounce_rate"] == pytest.approx(0.58)
    shares = [profile[k] for k in ("search_share", "direct_share", "referral_share", "social_share")]
    assert all(0 <= s <= 1 for s in shares)
    sep = (500 + 100.5) / 1200.5
    oct_ = (800 + 140) / 1800.25
    assert profile["search_share"] == pytest.approx((sep + oct_) / 2)


# ------------------------------------------------------------- Clearbit, Apollo, Explorium, Yahoo


def test_clearbit_documented_record() -> None:
    fields = Clearbit().extract("uber.com", {"company": load("clearbit", "company.json")})
    assert fields["industry_naics"] == "51" and fields["country"] == "US"
    assert fields["employees"] == 20313 and fields["revenue_low_usd"] == 1e9
    assert fields["total_funding_usd"] == 10_610_000_000 and fields["is_public"] is False


def test_apollo_codes_beat_keywords_and_bulk_lacks_tech_and_revenue() -> None:
    single = load("apollo", "organization_enrich.json")["organization"]
    fields = organization_fields(single)
    assert fields["industry_naics"] == "54"  # NAICS 54151, not "defense" -> Public Administration
    assert fields["revenue_usd"] == 120_500_000.0  # organization_revenue (newer name)
    assert fields["technologies"] == ["Salesforce", "Microsoft 365", "WordPress"]
    bulk = load("apollo", "bulk_enrich.json")
    request = ProviderRequest("organization_bulk", "POST", BULK_ENRICH_PATH, json={"domains": ["a.com"]})
    assert Apollo().interpret(request, 200, bulk).status == "ok"  # type: ignore[union-attr]
    from_bulk = organization_fields(bulk["organizations"][0])
    assert not {"technologies", "revenue_usd", "total_funding_usd"} & set(from_bulk)
    assert Apollo().fillable_groups() == {"firmographics", "financials"}
    assert "technologies" in Apollo(bulk=False).fillable_groups()
    waterfall = load_waterfall().for_capabilities({"apollo": Apollo().fillable_groups()})
    assert "apollo" not in waterfall.order("technologies")
    assert isinstance(waterfall, Waterfall)


def test_explorium_follows_its_openapi_schema() -> None:
    firm = load("explorium", "firmographics.json")["data"][0]["data"]
    assert isinstance(firm["naics"], str)
    fields = firmographic_fields(firm)
    assert fields["industry_naics"] == "44-45" and fields["country"] == "US"
    tech = load("explorium", "technographics.json")["data"][0]["data"]
    assert technologies(tech) == ["Shopify", "Google Analytics", "Klaviyo"]


def test_yahoo_investor_host_confirms_the_company() -> None:
    info = load("yahoo", "info_investor_host.json")
    assert confirms(info, "meta.com") and not confirms(info, "facebook.org")
