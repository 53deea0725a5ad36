"""All six providers through the Dagster graph: the waterfall pays only for gaps."""

from __future__ import annotations

import json
from collections import Counter

import polars as pl

from enrichment_pipeline.lib.fields import GROUPS
from enrichment_pipeline_tests.defs.helpers import Recorder, raw_metadata, read_table, run_pipeline

DOMAINS = [f"company{i}.com" for i in range(40)]


def _provider(request) -> str:
    path = request.url.path
    if path.startswith("/v22/") or path.startswith("/free1/"):
        return "builtwith"
    if path.startswith("/v1/website/"):
        return "similarweb"
    if path.startswith("/v2/companies/"):
        return "clearbit"
    if path.startswith("/api/v1/organizations/"):
        return "apollo"
    if path.startswith("/v1/businesses/"):
        return "explorium"
    return "other"


def test_every_provider_through_the_waterfall(instance, warehouse_url):
    recorder = Recorder()
    result = run_pipeline(instance, warehouse_url, DOMAINS, transport=recorder.transport(), providers=None)
    assert result.success
    calls = Counter(_provider(r) for r in recorder.requests)

    raw = read_table(warehouse_url, "raw.provider_responses")
    fields = read_table(warehouse_url, "staging.provider_fields")
    clearbit_firmo = set(
        fields.filter((pl.col("provider") == "clearbit") & pl.col("company_name").is_not_null())["domain"]
    )
    builtwith_tech = set(fields.filter(pl.col("provider") == "builtwith")["domain"])
    apollo_asked = set(raw.filter(pl.col("provider") == "apollo")["domain"])

    # Top providers are asked about every domain; Apollo only where a group it fills was left empty.
    assert set(raw.filter(pl.col("provider") == "clearbit")["domain"]) == set(DOMAINS)
    assert set(raw.filter(pl.col("provider") == "builtwith")["domain"]) == set(DOMAINS)
    assert apollo_asked, "the sandbox leaves some gaps, so Apollo must be called for some domains"
    assert apollo_asked <= (set(DOMAINS) - clearbit_firmo) | (set(DOMAINS) - builtwith_tech) | set(
        raw.filter(pl.col("provider") == "yahoo").filter(pl.col("status") != "ok")["domain"]
    )
    assert calls["apollo"] <= -(-len(apollo_asked) // 10) + 1  # bulk: ten domains per call

    meta = raw_metadata(result)
    assert meta["calls_saved_by_waterfall"] > 0
    apollo_stats = meta["provider/apollo"]
    assert apollo_stats["waterfall_skipped_domains"] == len(DOMAINS) - len(apollo_asked)

    profiles = read_table(warehouse_url, "marts.company_profiles")
    assert profiles.height == len(DOMAINS)
    filled = profiles.filter(pl.col("firmographics_source").is_not_null())
    assert filled.height >= len(DOMAINS) - 2
    for row in filled.iter_rows(named=True):
        sources = json.loads(row["field_sources"])
        assert sources["company_name"]["provider"] == row["firmographics_source"]
        assert sources["company_name"]["observed_at"].endswith("Z")
    assert set(profiles["traffic_source"].drop_nulls()) == {"similarweb"}
    assert profiles["profile_confidence"].drop_nulls().is_between(0, 1).all()

    profile_meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node("marts__company_profiles")[0].metadata.items()
    }
    coverage = profile_meta["coverage_by_provider"]
    assert set(coverage) <= {"builtwith", "similarweb", "clearbit", "apollo", "explorium", "yahoo"}
    assert all(set(groups) <= set(GROUPS) for groups in coverage.values())
