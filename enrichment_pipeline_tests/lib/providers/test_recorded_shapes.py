"""The parsers on real recorded answers (and fixtures of their exact shapes): see fixtures/*/SOURCES.md."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest

from enrichment_pipeline.lib import staging
from enrichment_pipeline.lib.providers.apollo import BULK_ENRICH_PATH, Apollo, organization_fields, split_bulk
from enrichment_pipeline.lib.providers.base import CallResult, ProviderRequest
from enrichment_pipeline.lib.providers.builtwith import (
    DOMAIN_API_ENDPOINT,
    FREE_API_ENDPOINT,
    BuiltWith,
    groups_from_free_api,
    technologies_from_domain_api,
)
from enrichment_pipeline.lib.providers.clearbit import Clearbit
from enrichment_pipeline.lib.providers.explorium import firmographic_fields, technologies
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS, SimilarWeb, traffic_from_payloads
from enrichment_pipeline.lib.providers.yahoo import confirms
from enrichment_pipeline.lib.staging import read_answer
from enrichment_pipeline.lib.validation import SIMILARWEB_TRAFFIC, split_valid
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
    # desktop source visits (282 and 410, well below the months' visits) are the denominator
    sep = (120 + 25) / 282
    oct_ = (190 + 30) / 410
    assert profile["search_share"] == pytest.approx((sep + oct_) / 2)


def _johnmcl() -> dict[str, Any]:
    """Verbatim recorded v1 answers (MIT, johnmcl/similarweb, whose spec already renamed the domain)."""
    return {endpoint: load("similarweb", f"johnmcl_{endpoint}.json") for endpoint in ENDPOINTS}


def test_similarweb_recorded_answers_are_stored_as_expected() -> None:
    bodies = _johnmcl()
    provider = SimilarWeb()
    for request in provider.requests_for("example.com"):
        verdict = provider.interpret(request, 200, bodies[request.endpoint])
        assert verdict is not None and verdict.status == "ok", request.endpoint
    profile = traffic_from_payloads("example.com", bodies)
    assert profile["monthly_visits"] == pytest.approx((120678.0 + 121999.0) / 2)
    assert profile["visits_growth"] == pytest.approx(121999.0 / 120678.0 - 1)
    assert profile["bounce_rate"] == pytest.approx(0.8432, abs=1e-4)  # a fraction, not a percentage
    assert profile["pages_per_visit"] == pytest.approx(1.304, abs=1e-3)
    assert profile["avg_visit_duration_s"] == pytest.approx(47.38, abs=1e-2)  # seconds
    assert profile["global_rank"] == 547984  # the latest month's, from "YYYY-MM" dates
    assert (profile["period_start"], profile["period_end"]) == (date(2016, 2, 1), date(2016, 3, 31))
    assert profile["last_updated"] == date(2016, 8, 31) and profile["gap_months"] == 0


def test_similarweb_rank_dates_are_months() -> None:
    rank = load("similarweb", "johnmcl_global_rank.json")
    assert [p["date"] for p in rank["global_rank"]] == ["2016-02", "2016-03"]
    only_rank = traffic_from_payloads("example.com", {"global_rank": rank})
    assert only_rank["global_rank"] == 547984
    assert (only_rank["period_start"], only_rank["period_end"]) == (date(2016, 2, 1), date(2016, 3, 31))


def test_similarweb_recorded_sources_are_the_desktop_channel_mix() -> None:
    """overview-share counts desktop visits only: its sources add up to about a fifth of
    the all-device visits, so shares are fractions of the sources' own sum, never of visits."""
    bodies = _johnmcl()
    sources = bodies["traffic_sources"]["visits"]["example.com"]
    visits = [p["visits"] for p in bodies["visits"]["visits"]]
    month_totals = [
        sum(s["visits"][i]["organic"] + s["visits"][i]["paid"] for s in sources) for i in range(2)
    ]
    for total, all_devices in zip(month_totals, visits, strict=True):
        assert 0.15 < total / all_devices < 0.3

    def month_share(source: str, i: int) -> float:
        point = next(s for s in sources if s["source_type"] == source)["visits"][i]
        return (point["organic"] + point["paid"]) / month_totals[i]

    profile = traffic_from_payloads("example.com", bodies)
    expected = {
        "search_share": "Search",
        "direct_share": "Direct",
        "referral_share": "Referrals",
        "social_share": "Social",
    }
    for field, source in expected.items():
        assert profile[field] == pytest.approx((month_share(source, 0) + month_share(source, 1)) / 2)
        assert 0 <= profile[field] <= 1
    assert profile["search_share"] == pytest.approx(0.4514, abs=1e-4)
    # every month's channels (the four stored plus Mail and Display Ads) sum to 1
    for i in range(2):
        assert sum(month_share(s["source_type"], i) for s in sources) == pytest.approx(1.0)
    mail = (month_share("Mail", 0) + month_share("Mail", 1)) / 2
    assert sum(profile[f] for f in expected) + mail == pytest.approx(1.0)


def test_similarweb_recorded_answers_pass_the_staging_contract() -> None:
    now = datetime.now(UTC)
    bodies = _johnmcl()
    responses = pl.DataFrame(
        {
            "provider": ["similarweb"] * len(bodies),
            "endpoint": list(bodies),
            "domain": ["example.com"] * len(bodies),
            "status": ["ok"] * len(bodies),
            "payload": [json.dumps(b) for b in bodies.values()],
            "fetched_at": [now] * len(bodies),
        }
    )
    refused: staging.Refused = []
    traffic = staging.similarweb_traffic(responses, refused)
    valid, quarantined = split_valid(traffic, SIMILARWEB_TRAFFIC, "staging.similarweb_traffic", now)
    assert not refused and quarantined.is_empty() and valid.height == 1
    assert valid["global_rank"][0] == 547984 and 0 < valid["search_share"][0] < 1


def test_similarweb_recorded_not_found_body_and_newer_meta() -> None:
    request = SimilarWeb().requests_for("example.com")[0]
    not_found = load("similarweb", "data_not_found.json")  # no meta.request in the real body
    assert "request" not in not_found["meta"]
    for http_status in (404, 200):  # the HTTP status that came with it was not recorded
        verdict = SimilarWeb().interpret(request, http_status, not_found)
        assert verdict is not None and verdict.status == "not_found" and verdict.detail == "Data not found"
    newer = load("similarweb", "visits_newer_meta_shape.json")  # mtd, show_verified, state, device
    verdict = SimilarWeb().interpret(request, 200, newer)
    assert verdict is not None and verdict.status == "ok"
    profile = traffic_from_payloads("shape-example.com", {"visits": newer})
    assert profile["monthly_visits"] == pytest.approx((48211.77310562133 + 51093.20456183402) / 2)
    assert profile["period_end"] == date(2026, 9, 30)


# ------------------------------------------------------------- Clearbit, Apollo, Explorium, Yahoo


def test_clearbit_documented_record() -> None:
    fields = Clearbit().extract("uber.com", {"company": load("clearbit", "company.json")})
    assert fields["industry_naics"] == "51" and fields["country"] == "US"
    assert fields["employees"] == 20313 and fields["revenue_low_usd"] == 1e9
    assert fields["total_funding_usd"] == 10_610_000_000 and fields["is_public"] is False


BULK_REQUEST = ProviderRequest("organization_bulk", "POST", BULK_ENRICH_PATH, json={"domains": ["a.com"]})


def test_apollo_codes_beat_keywords_and_bulk_lacks_tech_and_funding() -> None:
    single = load("apollo", "organization_enrich.json")["organization"]
    fields = organization_fields(single)
    assert fields["industry_naics"] == "54"  # NAICS 54151, not "defense" -> Public Administration
    assert fields["revenue_usd"] == 120_500_000.0  # organization_revenue (newer name)
    assert fields["technologies"] == ["Salesforce", "Microsoft 365", "WordPress"]
    bulk = load("apollo", "bulk_enrich.json")
    assert Apollo().interpret(BULK_REQUEST, 200, bulk).status == "ok"  # type: ignore[union-attr]
    from_bulk = organization_fields(bulk["organizations"][0])
    assert not {"technologies", "total_funding_usd"} & set(from_bulk)
    # a newer bulk record carries its revenue and codes: bulk fills revenue when Apollo knows it
    assert from_bulk["revenue_usd"] == 120_500_000.0 and from_bulk["industry_naics"] == "54"
    older = organization_fields(load("apollo", "bulk_enrich_older_shape.json")["organizations"][0])
    assert not {"technologies", "revenue_usd", "total_funding_usd"} & set(older)
    assert older["industry_naics"] == "51"  # no code keys: the industry words decide
    assert Apollo().fillable_groups() == {"firmographics", "financials"}
    assert "technologies" in Apollo(bulk=False).fillable_groups()
    waterfall = load_waterfall().for_capabilities({"apollo": Apollo().fillable_groups()})
    assert "apollo" not in waterfall.order("technologies")
    assert "apollo" in waterfall.order("financials")
    assert isinstance(waterfall, Waterfall)


def test_apollo_unknown_revenue_is_null_not_zero() -> None:
    """`organization_revenue: 0.0` with a null printed value is Apollo's "not known"."""
    single = load("apollo", "organization_enrich_revenue_unknown.json")["organization"]
    assert single["organization_revenue"] == 0.0 and single["organization_revenue_printed"] is None
    fields = organization_fields(single)
    assert "revenue_usd" not in fields
    assert fields["industry_naics"] == "54" and fields["technologies"] == ["Gmail", "Google Workspace"]
    bulk = load("apollo", "bulk_enrich.json")
    [split] = split_bulk(["tiny-example.com"], CallResult("ok", 200, bulk, None, 1, 1.0, 0.05)).values()
    from_bulk = Apollo().extract("tiny-example.com", {"organization": split.payload})
    assert "revenue_usd" not in from_bulk and from_bulk["employees"] == 14
    # the same 0.0 next to a printed value takes the printed one
    assert organization_fields({**single, "organization_revenue_printed": "2M"})["revenue_usd"] == 2e6
    # the profile stores unknown revenue as NULL
    now = datetime.now(UTC)
    responses = pl.DataFrame(
        {
            "provider": ["apollo"],
            "endpoint": ["organization"],
            "domain": ["tiny-example.com"],
            "status": ["ok"],
            "payload": [json.dumps({"organization": single})],
            "fetched_at": [now],
        }
    )
    stored = staging.provider_fields(responses, {"apollo": Apollo()}, [])
    assert stored["revenue_usd"].to_list() == [None]


def test_apollo_older_single_record_uses_annual_revenue_and_words() -> None:
    org = load("apollo", "organization_enrich_older_shape.json")["organization"]
    assert "naics_codes" not in org and "organization_revenue" not in org
    fields = organization_fields(org)
    assert fields["revenue_usd"] == 85_000_000 and fields["total_funding_usd"] == 120_000_000
    assert fields["industry_naics"] == "51"  # "information technology & services"
    assert fields["technologies"] == ["Cloudflare", "Google Font API", "WordPress"]
    assert fields["is_public"] is False


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
