"""Merging provider answers into one profile per domain: waterfall, sources, confidence, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

from enrichment_pipeline.lib.agreement import field_agreement
from enrichment_pipeline.lib.fields import filled_groups
from enrichment_pipeline.lib.profiles import (
    PROFILE_SCHEMA,
    build_profiles,
    coverage,
    provider_status_per_domain,
)
from enrichment_pipeline.lib.staging import provider_fields_schema
from enrichment_pipeline.lib.waterfall import GroupRule, Waterfall

ENRICHED_AT = datetime(2026, 3, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 2, 20, 8, 30, tzinfo=UTC)
WATERFALL = Waterfall(
    groups={
        "technologies": GroupRule(providers=["builtwith", "apollo", "clearbit"]),
        "traffic": GroupRule(providers=["similarweb"]),
        "firmographics": GroupRule(providers=["clearbit", "apollo"]),
        "financials": GroupRule(providers=["clearbit", "apollo"]),
    }
)


def responses(*rows: tuple[str, str, str, str]) -> pl.DataFrame:
    """(provider, endpoint, domain, status) rows, like `raw.provider_responses`."""
    return pl.DataFrame(
        rows,
        schema={"provider": pl.String, "endpoint": pl.String, "domain": pl.String, "status": pl.String},
        orient="row",
    )


def fields(*rows: dict) -> pl.DataFrame:
    """Rows of staging.provider_fields; unspecified fields are null."""
    schema = provider_fields_schema()
    return pl.DataFrame([{"observed_at": T1, **r} for r in rows], schema=schema)


def build(domains, statuses=None, provider_fields=None, waterfall=WATERFALL) -> pl.DataFrame:
    if statuses is None:
        statuses = pl.DataFrame(schema={"provider": pl.String, "domain": pl.String, "status": pl.String})
    if provider_fields is None:
        provider_fields = fields()
    return build_profiles(
        domains, statuses, provider_fields, waterfall, mode="sandbox", enriched_at=ENRICHED_AT
    )


def by_domain(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["domain"]: r for r in frame.iter_rows(named=True)}


# --------------------------------------------------------------------------- waterfall


def test_each_group_takes_the_first_provider_with_a_value_and_records_it():
    frame = build(
        ["a.com"],
        provider_fields=fields(
            {
                "provider": "clearbit",
                "domain": "a.com",
                "employees": 120,
                "company_name": "A Inc",
                "technologies": ["Shopify"],
                "observed_at": T2,
            },
            {
                "provider": "apollo",
                "domain": "a.com",
                "employees": 150,
                "company_name": "A",
                "technologies": ["Shopify", "Algolia"],
            },
            {
                "provider": "builtwith",
                "domain": "a.com",
                "technologies": ["Algolia", "Shopify Plus", "WordPress"],
            },
            {"provider": "similarweb", "domain": "a.com", "monthly_visits": 1e6, "bounce_rate": 0.4},
        ),
    )
    row = frame.row(0, named=True)
    assert (row["company_name"], row["employees"], row["firmographics_source"]) == ("A Inc", 120, "clearbit")
    assert row["technologies_source"] == "builtwith"
    assert json.loads(row["technologies"]) == ["Algolia", "Shopify Plus", "WordPress"]
    assert (row["technology_count"], row["search_vendor"], row["ecommerce_platform"], row["cms"]) == (
        3,
        "Algolia",
        "Shopify Plus",
        "WordPress",
    )
    assert row["traffic_source"] == "similarweb"
    assert row["financials_source"] is None
    sources = json.loads(row["field_sources"])
    assert sources["employees"] == {"provider": "clearbit", "observed_at": "2026-02-20T08:30:00Z"}
    assert sources["monthly_visits"]["provider"] == "similarweb"
    assert sources["revenue_usd"] == {"provider": None, "observed_at": None}
    assert dict(frame.schema) == PROFILE_SCHEMA


def test_a_provider_without_values_in_a_group_does_not_shadow_the_next():
    frame = build(
        ["a.com"],
        provider_fields=fields(
            {"provider": "clearbit", "domain": "a.com", "company_name": "A", "technologies": []},
            {"provider": "builtwith", "domain": "a.com", "technologies": []},
            {"provider": "apollo", "domain": "a.com", "technologies": ["HubSpot"], "revenue_usd": 5e6},
        ),
    )
    row = frame.row(0, named=True)
    assert row["technologies_source"] == "apollo"
    assert row["financials_source"] == "apollo"  # clearbit had no financial value
    assert row["firmographics_source"] == "clearbit"


def test_a_lone_is_public_flag_does_not_fill_financials_but_is_kept_when_nothing_else_is_known():
    """Apollo's record of a private company says `is_public: false` and nothing about revenue: a
    provider below it with a revenue figure supplies the financials; with no such provider the
    flag is still the profile's."""
    flag_only = {"provider": "clearbit", "domain": "a.com", "is_public": False}
    revenue = {"provider": "apollo", "domain": "a.com", "revenue_usd": 5e6}
    row = build(["a.com"], provider_fields=fields(flag_only, revenue)).row(0, named=True)
    assert (row["financials_source"], row["revenue_usd"]) == ("apollo", 5e6)
    row = build(["a.com"], provider_fields=fields(flag_only)).row(0, named=True)
    assert (row["financials_source"], row["is_public"]) == ("clearbit", False)
    assert filled_groups({"is_public": False}) == set()
    assert filled_groups({"is_public": False, "revenue_usd": 1.0}) == {"financials"}


def test_a_provider_not_in_the_group_order_is_never_used():
    frame = build(
        ["a.com"], provider_fields=fields({"provider": "similarweb", "domain": "a.com", "employees": 9})
    )
    assert frame.row(0, named=True)["employees"] is None


def test_one_row_per_domain_even_when_domains_repeat():
    frame = build(["a.com", "b.com", "a.com"])
    assert frame["domain"].to_list() == ["a.com", "b.com"]
    assert dict(frame.schema) == PROFILE_SCHEMA


def test_coverage_is_the_share_of_profiles_per_provider_and_group():
    frame = build(
        ["a.com", "b.com"],
        provider_fields=fields(
            {"provider": "clearbit", "domain": "a.com", "company_name": "A"},
            {"provider": "apollo", "domain": "b.com", "company_name": "B", "revenue_usd": 1.0},
        ),
    )
    assert coverage(frame) == {
        "clearbit": {"firmographics": 0.5},
        "apollo": {"firmographics": 0.5, "financials": 0.5},
    }


# --------------------------------------------------------------------------- agreement


def test_agreeing_providers_give_high_confidence_and_no_disagreement():
    frame = build(
        ["a.com"],
        provider_fields=fields(
            {
                "provider": "clearbit",
                "domain": "a.com",
                "employees": 1000,
                "industry_naics": "51",
                "revenue_usd": 1e8,
            },
            {
                "provider": "apollo",
                "domain": "a.com",
                "employees": 1200,
                "industry_naics": "51",
                "revenue_usd": 1.2e8,
            },
        ),
    )
    row = frame.row(0, named=True)
    assert row["employees_confidence"] == 1.0
    assert row["industry_naics_confidence"] == 1.0
    assert row["revenue_usd_confidence"] == 1.0
    assert row["disagreements"] == "{}"


def test_disagreeing_providers_are_flagged_with_values_side_by_side():
    frame = build(
        ["a.com"],
        provider_fields=fields(
            {"provider": "clearbit", "domain": "a.com", "employees": 1000, "industry_naics": "52"},
            {"provider": "apollo", "domain": "a.com", "employees": 5000, "industry_naics": "51"},
        ),
    )
    row = frame.row(0, named=True)
    assert row["employees_confidence"] == 0.5
    assert json.loads(row["disagreements"]) == {
        "employees": {"apollo": "5000", "clearbit": "1000"},
        "industry_naics": {"apollo": "51", "clearbit": "52"},
    }


def test_a_single_source_is_neither_confirmed_nor_contradicted():
    profiles = pl.DataFrame(
        {
            "domain": ["a.com"],
            "employees": [10],
            "revenue_usd": [None],
            "industry_naics": [None],
            "technologies": [["X"]],
        },
        schema_overrides={"revenue_usd": pl.Float64, "industry_naics": pl.String},
    )
    provider = pl.DataFrame(
        {
            "domain": ["a.com"],
            "provider": ["clearbit"],
            "employees": [10],
            "revenue_usd": [None],
            "industry_naics": [None],
            "technologies": [["X"]],
        },
        schema_overrides={"revenue_usd": pl.Float64, "industry_naics": pl.String},
    )
    row = field_agreement(profiles, provider).row(0, named=True)
    assert row["employees_confidence"] == 0.5
    assert row["technologies_confidence"] == 0.5
    assert row["revenue_usd_confidence"] is None
    assert row["profile_confidence"] == 0.5


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
    # Every provider answered that it does not know the domain.
    (["not_found"], ["not_found"] * 6, "not_found"),
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
    assert json.loads(rows["b.com"]["provider_statuses"]) == []


def test_provider_statuses_of_a_domain_without_answers_is_an_empty_list():
    frame = build(
        ["b.com"], provider_status_per_domain(responses(("builtwith", "domain_api", "a.com", "ok")))
    )
    assert frame.row(0, named=True)["provider_statuses"] == "[]"


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


# --------------------------------------------------------------------------- refused answers


def test_a_refused_answer_makes_the_profile_partial_and_says_why():
    from enrichment_pipeline.lib.profiles import refused_answers

    statuses = responses(
        ("similarweb", "visits", "a.com", "ok"),
        ("clearbit", "company", "a.com", "ok"),
        ("clearbit", "company", "b.com", "ok"),
    )
    quarantine = pl.DataFrame(
        {
            "source": ["staging.provider_fields"],
            "domain": ["a.com"],
            "reason": ["search_share: less_than_or_equal_to(1) (got 18090.6)"],
            "row": [json.dumps({"provider": "similarweb", "domain": "a.com", "search_share": 18090.6})],
            "quarantined_at": [T1],
        }
    )
    refused = refused_answers(quarantine)
    assert refused.to_dicts() == [
        {
            "provider": "similarweb",
            "domain": "a.com",
            "reason": "provider_fields: search_share: less_than_or_equal_to(1) (got 18090.6)",
        }
    ]
    frame = build_profiles(
        ["a.com", "b.com"],
        provider_status_per_domain(statuses),
        fields({"provider": "clearbit", "domain": "a.com", "company_name": "A"}),
        WATERFALL,
        mode="sandbox",
        enriched_at=ENRICHED_AT,
        refused=refused,
    )
    rows = by_domain(frame)
    assert rows["a.com"]["status"] == "partial"
    similarweb = {s["provider"]: s for s in json.loads(rows["a.com"]["provider_statuses"])}["similarweb"]
    assert similarweb["status"] == "refused" and "18090.6" in similarweb["detail"]
    assert rows["b.com"]["status"] == "enriched"  # unaffected by a.com's refused answer
    assert refused_answers(quarantine.clear()).is_empty()
