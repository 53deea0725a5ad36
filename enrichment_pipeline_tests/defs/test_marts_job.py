"""After an enrichment: the marts job runs dbt (models + tests as checks) and publishes the serving file."""

from __future__ import annotations

import dagster as dg
import duckdb

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.operations.jobs import MARTS_JOB_NAME
from enrichment_pipeline.defs.operations.marts_sensor import marts_after_enrichment
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib.warehouse import duckdb_path
from enrichment_pipeline_tests.defs.helpers import run_pipeline

DOMAINS = [f"company{i}.com" for i in range(12)]


def test_marts_job_builds_dbt_and_publishes_the_serving_file(instance, warehouse_url):
    enrichment = run_pipeline(instance, warehouse_url, DOMAINS, providers=None)
    assert enrichment.success

    result = defs.resolve_job_def(MARTS_JOB_NAME).execute_in_process(
        instance=instance, resources={"warehouse": WarehouseResource(url=warehouse_url)}
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks, "dbt tests should show as asset checks"
    assert all(c.passed for c in checks), [c.asset_check_key for c in checks if not c.passed]

    serving = duckdb_path(warehouse_url).parent / "serving.duckdb"
    with duckdb.connect(str(serving), read_only=True) as conn:
        tables = {t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
        ).fetchall()}  # fmt: skip
        assert {"company_profiles", "icp_scores", "dim_company", "icp_leaderboard"} <= tables
        assert conn.execute("SELECT count(*) FROM marts.dim_company").fetchall()[0][0] == len(DOMAINS)


def test_marts_follow_every_successful_enrichment(instance, warehouse_url):
    enrichment = run_pipeline(instance, warehouse_url, DOMAINS[:2], providers=["builtwith"])
    context = dg.build_run_status_sensor_context(
        sensor_name=marts_after_enrichment.name,
        dagster_instance=instance,
        dagster_run=enrichment.dagster_run,
        dagster_event=enrichment.get_run_success_event(),
    )
    request = marts_after_enrichment(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"marts-after-{enrichment.run_id}"


def test_runs_of_api_jobs_are_left_to_the_api(instance, warehouse_url):
    enrichment = run_pipeline(instance, warehouse_url, DOMAINS[:1], providers=["builtwith"])
    run = enrichment.dagster_run.with_tags({**enrichment.dagster_run.tags, "enrichment/api_job": "abc"})
    context = dg.build_run_status_sensor_context(
        sensor_name=marts_after_enrichment.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=enrichment.get_run_success_event(),
    )
    assert isinstance(marts_after_enrichment(context), dg.SkipReason)


def test_the_marts_sensor_is_evaluated_on_every_pass_of_the_daemon():
    # A minimum interval equal to the daemon's pass skipped every other pass (marts up to 10 s late).
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    assert marts_after_enrichment.minimum_interval_seconds < MIN_INTERVAL_LOOP_TIME
