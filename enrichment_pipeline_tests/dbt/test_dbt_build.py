"""`dbt build` (models and tests) through the Dagster assets, once on DuckDB and once on PostgreSQL.

Each backend gets a small warehouse with realistic rows in every source table
(`warehouse_data.fill`); the dbt assets are materialized with the project's
resource and the warehouse resource, exactly as in a pipeline run.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import dagster as dg
import polars as pl
import pytest

from enrichment_pipeline.defs.dbt.resources import dbt_cli_resource
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib import profiles
from enrichment_pipeline.lib.dbt_env import DBT_ENV_NAMES
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.dbt import warehouse_data

pytestmark = pytest.mark.usefixtures("dbt_run_env")


def materialize_dbt(
    dbt_marts: dg.AssetsDefinition, url: str, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            [dbt_marts],
            instance=instance,
            resources={"dbt": dbt_cli_resource(), "warehouse": WarehouseResource(url=url)},
            run_config=run_config,
            raise_on_error=False,
        )


def assert_build_succeeded(result: dg.ExecuteInProcessResult, dbt_marts: dg.AssetsDefinition) -> None:
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == set(dbt_marts.keys)
    evaluations = result.get_asset_check_evaluations()
    assert {e.asset_check_key for e in evaluations} == set(dbt_marts.check_keys)
    assert [e.asset_check_key for e in evaluations if not e.passed] == []


def assert_marts(url: str) -> None:
    """Row counts of every dbt mart, and a few values, the same on both backends."""
    with Warehouse.open(url, read_only=True) as wh:
        counts = {
            t: int(wh.query(f"SELECT count(*) AS n FROM {t}")["n"][0])
            for t in warehouse_data.expected_counts()
        }
        coverage = wh.table("marts.provider_coverage_and_cost").sort("provider")
        adoption = wh.query(
            "SELECT companies_using, sector_companies, share_of_sector FROM marts.tech_adoption_by_industry "
            "WHERE technology = 'Shopify Plus' AND industry_naics = '44-45'"
        )
        removed = wh.query(
            "SELECT is_current, removed_at IS NOT NULL AS removed FROM marts.fct_company_technology "
            "WHERE domain = 'allbirds.com' AND technology = 'Yotpo'"
        )
        leaderboard = wh.query("SELECT rank, domain, company_name FROM marts.icp_leaderboard ORDER BY rank")
        orphans = wh.query(
            "SELECT count(*) AS n FROM marts.fct_company_technology WHERE domain = 'orphan.example'"
        )
    assert counts == warehouse_data.expected_counts()
    builtwith = coverage.row(by_predicate=pl.col("provider") == "builtwith", named=True)
    assert (
        builtwith["domains_requested"],
        builtwith["domains_answered"],
        builtwith["domains_with_data"],
    ) == (7, 6, 5)
    assert (builtwith["calls"], builtwith["attempts"]) == (7, 10)
    assert builtwith["cost_usd"] == pytest.approx(0.07)
    similarweb = coverage.row(by_predicate=pl.col("provider") == "similarweb", named=True)
    assert similarweb["share_throttled"] == pytest.approx(1 / 7)
    clearbit = coverage.row(by_predicate=pl.col("provider") == "clearbit", named=True)
    assert (clearbit["domains_skipped"], clearbit["calls"]) == (1, 0)
    assert adoption.rows() == [(2, 3, pytest.approx(2 / 3))]
    assert removed.rows() == [(False, True)]
    assert leaderboard.row(0) == (1, "shopify.com", "Shopify")
    assert orphans["n"][0] == 0


def test_the_test_tables_have_the_columns_the_pipeline_writes():
    """The dbt builds below run on exactly the columns the Python assets write, so a column the dbt
    models read that the assets stop writing fails them."""
    assert warehouse_data.profiles_frame().schema == profiles.PROFILE_SCHEMA


def test_dbt_build_on_duckdb(tmp_path, dbt_marts):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    warehouse_data.fill(url)

    result = materialize_dbt(dbt_marts, url)

    assert_build_succeeded(result, dbt_marts)
    assert_marts(url)


@pytest.mark.postgres
def test_dbt_build_on_postgres(postgres_url, dbt_marts):
    warehouse_data.fill(postgres_url)

    result = materialize_dbt(dbt_marts, postgres_url)

    assert_build_succeeded(result, dbt_marts)
    assert_marts(postgres_url)
    # The read API finds one company's technologies and changes by index, not by a scan.
    with Warehouse.open(postgres_url, read_only=True) as wh:
        indexed = wh.query(
            "SELECT tablename FROM pg_indexes WHERE schemaname = 'marts' AND indexdef LIKE '%(domain)'"
        )["tablename"].to_list()
    assert {"fct_company_technology", "fct_tech_changes"} <= set(indexed)
    # The connection variables lived only in the dbt subprocess's environment.
    assert not any(name in os.environ for name in DBT_ENV_NAMES)
    password = urlsplit(postgres_url).password
    if password:
        assert all(password not in str(event) for event in result.all_events)
