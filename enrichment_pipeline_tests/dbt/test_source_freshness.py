"""`dbt source freshness`: the windows the sources declare, and that they fail on stale tables.

The marts' windows are the Dagster freshness policy's; the raw answers' follow the providers'
TTL (every answer is fetched again by the daily schedule once it expires).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from enrichment_pipeline.defs.dbt.resources import dbt_cli_resource
from enrichment_pipeline.defs.operations.freshness import MARTS_FAIL_WINDOW, MARTS_WARN_WINDOW
from enrichment_pipeline.lib.dbt_env import dbt_env, dbt_environment
from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES, build_provider
from enrichment_pipeline.lib.scoring.engine import SCORE_SCHEMA
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.dbt import warehouse_data

pytestmark = pytest.mark.usefixtures("dbt_run_env")

RAW = "source.enrichment_marts.pipeline_raw.provider_responses"
PROFILES = "source.enrichment_marts.pipeline_marts.company_profiles"
SCORES = "source.enrichment_marts.pipeline_marts.icp_scores"
PERIODS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _window(rule: dict[str, Any]) -> timedelta:
    return rule["count"] * PERIODS[rule["period"]]


def _freshness(source: dict[str, Any]) -> tuple[timedelta, timedelta]:
    freshness = source["freshness"]
    return _window(freshness["warn_after"]), _window(freshness["error_after"])


def test_sources_with_a_load_timestamp_declare_freshness(dbt_manifest: dict[str, Any]) -> None:
    sources = dbt_manifest["sources"]
    declared = {
        uid
        for uid, s in sources.items()
        if s.get("loaded_at_field") and (s.get("freshness") or {}).get("error_after", {}).get("count")
    }
    assert declared == {RAW, PROFILES, SCORES}
    assert {sources[uid]["loaded_at_field"] for uid in declared} == {"fetched_at", "enriched_at", "scored_at"}
    for uid in (PROFILES, SCORES):
        assert _freshness(sources[uid]) == (MARTS_WARN_WINDOW, MARTS_FAIL_WINDOW)
    longest_ttl = max(build_provider(name).ttl for name in PROVIDER_NAMES)
    assert _freshness(sources[RAW]) == (longest_ttl + timedelta(days=1), longest_ttl + timedelta(days=2))


def _source_freshness(url: str) -> dict[str, str]:
    with dbt_environment(dbt_env(url)):
        invocation = dbt_cli_resource().cli(["source", "freshness"], raise_on_error=False)
        invocation.wait()
    results = json.loads((invocation.target_path / "sources.json").read_text())["results"]
    return {r["unique_id"]: r["status"] for r in results}


def test_source_freshness_fails_on_stale_tables_and_passes_on_fresh_ones(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    warehouse_data.fill(url)  # stamped in 2025: long past every window
    assert _source_freshness(url) == dict.fromkeys((RAW, PROFILES, SCORES), "error")

    now = datetime.now(UTC)
    with Warehouse.open(url) as wh:
        wh.write_responses([replace(r, fetched_at=now) for r in warehouse_data.response_rows()])
        wh.replace_table(
            "marts.company_profiles",
            warehouse_data.profiles_frame().with_columns(pl.lit(now).alias("enriched_at")),
            warehouse_data.PROFILE_SCHEMA,
        )
        wh.replace_table(
            "marts.icp_scores",
            warehouse_data.scores_frame().with_columns(pl.lit(now).alias("scored_at")),
            SCORE_SCHEMA,
        )
    assert _source_freshness(url) == dict.fromkeys((RAW, PROFILES, SCORES), "pass")
