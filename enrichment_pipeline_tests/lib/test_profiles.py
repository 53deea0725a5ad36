"""Merging provider answers into one profile per domain: waterfall, sources, status rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

from enrichment_pipeline.lib import profiles
from enrichment_pipeline.lib.profiles import (
    PROFILE_SCHEMA,
    WATERFALL,
    build_profiles,
    provider_status_per_domain,
    technology_summary,
)
from enrichment_pipeline.lib.staging import TECH_SCHEMA, TRAFFIC_SCHEMA

ENRICHED_AT = datetime(2026, 3, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 2, 20, 8, 30, tzinfo=UTC)
TRAFFIC_COLUMNS = WATERFALL["traffic"][1]
TECH_COLUMNS = WATERFALL["technologies"][1]


def responses(*rows: tuple[str, str, str, str]) -> pl.DataFrame:
    """(provider, endpoint, domain, status) rows, like `raw.provider_responses`."""
    return pl.DataFrame(
        rows,
        schema={"provider": pl.String, "endpoint": pl.String, "domain": pl.String, "status": pl.String},
        orient="row",
    )


def traffic(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=TRAFFIC_SCHEMA)


def techs(*rows: dict) -> pl.DataFrame:
    base = {
        "tag": None,
        "categories": [],
        "first_detected": None,
        "last_detected": T1,
        "is_premium": False,
        "path": "",
        "provider": "builtwith",
        "observed_at": T2,
    }
    return pl.DataFrame([{**base, **r} for r in rows], schema=TECH_SCHEMA)


def tech_group(summary: pl.DataFrame) -> pl.DataFrame:
    """What the profiles asset hands to build_profiles for the technologies group."""
    return summary.with_columns(
        pl.lit("builtwith").alias("provider"), pl.col("technologies_observed_at").alias("observed_at")
    )


def build(domains, statuses=None, **groups) -> pl.DataFrame:
    if statuses is None:
        statuses = pl.DataFrame(schema={"provider": pl.String, "domain": pl.String, "status": pl.String})
    return build_profiles(domains, statuses, groups, mode="sandbox", enriched_at=ENRICHED_AT)


def by_domain(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["domain"]: r for r in frame.iter_rows(named=True)}


# --------------------------------------------------------------------------- technology_summary


def test_technology_summary_picks_vendors_in_preference_order():
    summary = technology_summary(
        techs(
            {"domain": "a.com", "technology": "Elasticsearch", "categories": ["Search"]},
            {"domain": "a.com", "technology": "Algolia", "categories": ["Search", "Hosted"]},
            {"domain": "a.com", "technology": "Shopify", "last_detected": T2},
            {"domain": "a.com", "technology": "Shopify Plus", "categories": ["Ecommerce"]},
            {"domain": "a.com", "technology": "WordPress"},
            {"domain": "a.com", "technology": "Adobe Experience Manager", "categories": ["CMS"]},
            {"domain": "b.com", "technology": "Elasticsearch"},
            {"domain": "b.com", "technology": "WooCommerce"},
            {"domain": "c.com", "technology": "Google Analytics", "last_detected": None},
        )
    )
    rows = by_domain(summary)
    assert set(rows) == {"a.com", "b.com", "c.com"}
    a, b, c = rows["a.com"], rows["b.com"], rows["c.com"]
    # SEARCH_VENDORS puts Algolia before Elasticsearch, "Shopify Plus" before "Shopify", AEM before WordPress.
    assert (a["search_vendor"], a["ecommerce_platform"], a["cms"]) == (
        "Algolia",
        "Shopify Plus",
        "Adobe Experience Manager",
    )
    assert (b["search_vendor"], b["ecommerce_platform"], b["cms"]) == ("Elasticsearch", "WooCommerce", None)
    assert (c["search_vendor"], c["ecommerce_platform"], c["cms"]) == (None, None, None)
    assert json.loads(a["technologies"]) == sorted(
        ["Elasticsearch", "Algolia", "Shopify", "Shopify Plus", "WordPress", "Adobe Experience Manager"]
    )
    assert a["technology_count"] == 6
    assert json.loads(a["technology_categories"]) == ["CMS", "Ecommerce", "Hosted", "Search"]
    assert json.loads(c["technology_categories"]) == []
    assert a["technologies_observed_at"] == T2  # the latest sighting
    assert c["technologies_observed_at"] is None


def test_technology_summary_preference_lists_are_ordered_as_documented():
    assert profiles.SEARCH_VENDORS.index("Algolia") < profiles.SEARCH_VENDORS.index("Elasticsearch")
    assert profiles.ECOMMERCE_PLATFORMS.index("Shopify Plus") < profiles.ECOMMERCE_PLATFORMS.index("Shopify")


def test_technology_summary_of_nothing_has_the_columns():
    summary = technology_summary(pl.DataFrame(schema=TECH_SCHEMA))
    assert summary.is_empty()
    assert {"domain", *TECH_COLUMNS, "technologies_observed_at"} == set(summary.columns)


# --------------------------------------------------------------------------- waterfall


def test_each_group_takes_its_provider_and_records_the_source():
    summary = technology_summary(techs({"domain": "a.com", "technology": "Algolia", "last_detected": T1}))
    frame = build(
        ["a.com", "b.com", "c.com"],
        technologies=tech_group(summary),
        traffic=traffic(
            {
                "domain": "a.com",
                "monthly_visits": 1e6,
                "bounce_rate": 0.5,
                "provider": "similarweb",
                "observed_at": T2,
            },
            {"domain": "b.com", "monthly_visits": 2e5, "provider": "similarweb", "observed_at": T1},
        ),
    )
    assert dict(frame.schema) == PROFILE_SCHEMA
    rows = by_domain(frame)
    assert list(rows) == ["a.com", "b.com", "c.com"]
    a, b, c = rows["a.com"], rows["b.com"], rows["c.com"]
    assert (a["technologies_source"], a["traffic_source"]) == ("builtwith", "similarweb")
    assert (b["technologies_source"], b["traffic_source"]) == (None, "similarweb")
    assert (c["technologies_source"], c["traffic_source"]) == (None, None)
    assert a["search_vendor"] == "Algolia"
    assert a["monthly_visits"] == 1e6
    assert b["monthly_visits"] == 2e5
    assert c["monthly_visits"] is None

    sources = json.loads(a["field_sources"])
    assert set(sources) == set(TECH_COLUMNS) | set(TRAFFIC_COLUMNS)
    assert sources["monthly_visits"] == {"provider": "similarweb", "observed_at": "2026-02-20T08:30:00Z"}
    assert sources["search_vendor"] == {"provider": "builtwith", "observed_at": "2026-01-15T12:00:00Z"}
    assert json.loads(c["field_sources"])["monthly_visits"] == {"provider": None, "observed_at": None}
    assert a["mode"] == "sandbox"
    assert a["enriched_at"] == ENRICHED_AT


def test_first_provider_in_the_waterfall_wins(monkeypatch):
    monkeypatch.setitem(profiles.WATERFALL, "traffic", (("semrush", "similarweb"), TRAFFIC_COLUMNS))
    frame = build(
        ["a.com", "b.com", "c.com"],
        traffic=traffic(
            {"domain": "a.com", "monthly_visits": 1.0, "provider": "similarweb", "observed_at": T1},
            {"domain": "a.com", "monthly_visits": 2.0, "provider": "semrush", "observed_at": T2},
            {"domain": "b.com", "monthly_visits": 3.0, "provider": "similarweb", "observed_at": T1},
            {"domain": "c.com", "monthly_visits": 4.0, "provider": "not_in_the_waterfall", "observed_at": T1},
        ),
    )
    rows = by_domain(frame)
    assert (rows["a.com"]["traffic_source"], rows["a.com"]["monthly_visits"]) == ("semrush", 2.0)
    assert (rows["b.com"]["traffic_source"], rows["b.com"]["monthly_visits"]) == ("similarweb", 3.0)
    assert (rows["c.com"]["traffic_source"], rows["c.com"]["monthly_visits"]) == (None, None)
    assert json.loads(rows["a.com"]["field_sources"])["bounce_rate"]["provider"] == "semrush"
    assert json.loads(rows["b.com"]["field_sources"])["monthly_visits"] == {
        "provider": "similarweb",
        "observed_at": "2026-01-15T12:00:00Z",
    }


@pytest.mark.xfail(
    strict=True,
    reason="profiles.build_profiles: the waterfall picks a provider's ROW by rank, even when every value "
    "in it is null, so an empty answer from the preferred provider hides the next one's data "
    "(latent: each group has one provider today)",
)
def test_a_provider_without_values_does_not_shadow_the_next(monkeypatch):
    monkeypatch.setitem(profiles.WATERFALL, "traffic", (("semrush", "similarweb"), TRAFFIC_COLUMNS))
    frame = build(
        ["a.com"],
        traffic=traffic(
            {"domain": "a.com", "provider": "semrush", "observed_at": T2},
            {"domain": "a.com", "monthly_visits": 5.0, "provider": "similarweb", "observed_at": T1},
        ),
    )
    assert frame.row(0, named=True)["monthly_visits"] == 5.0


def test_one_row_per_domain_even_when_domains_repeat():
    frame = build(["a.com", "b.com", "a.com"])
    assert frame["domain"].to_list() == ["a.com", "b.com"]
    assert dict(frame.schema) == PROFILE_SCHEMA


# --------------------------------------------------------------------------- status rules


def test_worst_endpoint_status_per_provider():
    worst = provider_status_per_domain(
        responses(
            ("similarweb", "visits", "a.com", "ok"),
            ("similarweb", "bounce_rate", "a.com", "error"),
            ("similarweb", "global_rank", "a.com", "not_found"),
            ("similarweb", "visits", "b.com", "ok"),
            ("similarweb", "bounce_rate", "b.com", "not_found"),
            ("similarweb", "visits", "c.com", "not_found"),
            ("builtwith", "domain_api", "a.com", "ok"),
        )
    )
    got = {(r["provider"], r["domain"]): r["status"] for r in worst.iter_rows(named=True)}
    assert got == {
        ("similarweb", "a.com"): "error",  # one failed endpoint fails the provider
        ("similarweb", "b.com"): "ok",  # "ok" anywhere beats "not found"
        ("similarweb", "c.com"): "not_found",
        ("builtwith", "a.com"): "ok",
    }
    assert worst.height == 4


def test_worst_status_of_nothing():
    empty = provider_status_per_domain(responses())
    assert empty.is_empty()
    assert empty.columns == ["provider", "domain", "status"]


STATUS_CASES = [
    # (builtwith, similarweb endpoint statuses) -> profile status
    (["ok"], ["ok"] * 6, "enriched"),
    (["ok"], ["not_found"] * 6, "enriched"),
    (["not_found"], ["ok", "not_found", "ok", "ok", "ok", "ok"], "enriched"),
    # "Not found" is an answer, so a domain nobody knows is still "enriched" (with no data).
    (["not_found"], ["not_found"] * 6, "enriched"),
    (["ok"], ["ok", "ok", "error", "ok", "ok", "ok"], "partial"),
    (["auth_failed"], ["ok"] * 6, "partial"),
    (["skipped"], ["ok"] * 6, "partial"),
    (["ok"], ["rate_limited"] * 6, "partial"),
    (["quota_exhausted"], ["provider_unavailable"] * 6, "failed"),
    (["not_found"], ["error"] * 6, "failed"),
    (["parse_error"], ["not_found"] * 6, "failed"),
]


@pytest.mark.parametrize(("builtwith", "similarweb", "expected"), STATUS_CASES)
def test_profile_status_rules(builtwith, similarweb, expected):
    rows = [("builtwith", "domain_api", "a.com", s) for s in builtwith]
    rows += [("similarweb", f"e{i}", "a.com", s) for i, s in enumerate(similarweb)]
    frame = build(["a.com"], provider_status_per_domain(responses(*rows)))
    row = frame.row(0, named=True)
    assert row["status"] == expected
    statuses = {s["provider"]: s["status"] for s in json.loads(row["provider_statuses"])}
    assert set(statuses) == {"builtwith", "similarweb"}


def test_a_domain_without_any_answer_is_failed():
    frame = build(
        ["a.com", "b.com"], provider_status_per_domain(responses(("builtwith", "domain_api", "a.com", "ok")))
    )
    rows = by_domain(frame)
    assert rows["a.com"]["status"] == "enriched"
    assert rows["b.com"]["status"] == "failed"
    assert json.loads(rows["b.com"]["provider_statuses"]) in ([], None)


@pytest.mark.xfail(
    strict=True,
    reason="profiles.build_profiles: json_list() of a missing list gives the string 'null', so "
    "fill_null('[]') never applies: provider_statuses is 'null' instead of '[]'",
)
def test_provider_statuses_of_a_domain_without_answers_is_an_empty_list():
    frame = build(
        ["b.com"], provider_status_per_domain(responses(("builtwith", "domain_api", "a.com", "ok")))
    )
    assert frame.row(0, named=True)["provider_statuses"] == "[]"


@pytest.mark.xfail(
    strict=True,
    reason="profiles.build_profiles: provider_statuses follows the input row order (and "
    "provider_status_per_domain's unordered unique()), so identical answers give different "
    "marts.company_profiles rows from run to run",
)
def test_provider_statuses_do_not_depend_on_row_order():
    statuses = pl.DataFrame(
        {
            "provider": ["builtwith", "similarweb", "apollo"],
            "domain": ["a.com"] * 3,
            "status": ["ok", "ok", "not_found"],
        }
    )
    forward = build(["a.com"], statuses)
    backward = build(["a.com"], statuses.reverse())
    assert forward["provider_statuses"].to_list() == backward["provider_statuses"].to_list()
