"""After an enrichment: the marts job runs dbt (models + tests as checks) and publishes the serving file."""

from __future__ import annotations

import time

import dagster as dg
import duckdb
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, MARTS_JOB_NAME
from enrichment_pipeline.defs.operations.marts_sensor import marts_after_enrichment
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.instance.daemon_pace import DEFAULT_SENSOR_PASS_SECONDS
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


def test_the_marts_sensor_is_evaluated_every_second_or_two():
    # An interval equal to Dagster's 5-s pass skipped every other pass (marts up to 10 s late);
    # 1 s is Dagster's smallest (0 means its default, 30 s), against the project's 1-s pass.
    assert marts_after_enrichment.minimum_interval_seconds == 1 == DEFAULT_SENSOR_PASS_SECONDS


def _sensor_on(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.RunRequest | dg.SkipReason:
    context = dg.build_run_status_sensor_context(
        sensor_name=marts_after_enrichment.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, run.job_name),
    )
    return marts_after_enrichment(context)


def test_a_partition_dialog_backfill_gets_one_marts_run_after_its_last_run(instance, warehouse_url):
    """Dagster runs such a backfill as two runs (the domains' partitions, then the tables
    downstream on its next pass): the marts wait for the second instead of racing it."""
    domains = DOMAINS[:3]
    instance.add_dynamic_partitions(domains_partitions.name, domains)
    enrich_keys = list(defs.resolve_job_def(ENRICH_JOB_NAME).asset_layer.selected_asset_keys)
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id="bfone",
        asset_graph=defs.resolve_asset_graph(),
        partition_names=domains,
        asset_selection=enrich_keys,
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    data = backfill.asset_backfill_data
    assert data is not None
    graph = defs.resolve_asset_graph()

    def progress(requested: object) -> None:
        instance.update_backfill(
            backfill.with_asset_backfill_data(data.replace_requested_subset(requested), instance, graph)
        )

    def backfill_run(run_id: str, status: dg.DagsterRunStatus, keys: set[dg.AssetKey]) -> dg.DagsterRun:
        tags = {BACKFILL_ID_TAG: "bfone"}
        run = dg.DagsterRun(
            job_name="__ASSET_JOB", run_id=run_id, status=status, tags=tags, asset_selection=frozenset(keys)
        )
        return instance.add_run(run)

    def succeed(run: dg.DagsterRun) -> dg.DagsterRun:
        instance.handle_run_event(
            run.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, run.job_name)
        )
        return instance.get_run_by_id(run.run_id)

    # As the backfill daemon leaves it after its first pass: the raw partitions requested, in one run.
    progress(data.target_subset.filter_asset_keys({RAW_KEY}))
    first = succeed(backfill_run("first", dg.DagsterRunStatus.STARTED, {RAW_KEY}))
    skipped = _sensor_on(instance, first)
    assert isinstance(skipped, dg.SkipReason)
    assert "backfill bfone has still to run" in str(skipped.skip_message)
    assert "marts/company_profiles" in str(skipped.skip_message)
    # Had it been canceled there, nothing more would come: the first run's answers get their marts.
    canceled = instance.get_backfill("bfone").with_status(BulkActionStatus.CANCELED)
    instance.update_backfill(canceled)
    assert isinstance(_sensor_on(instance, first), dg.RunRequest)
    instance.update_backfill(canceled.with_status(BulkActionStatus.REQUESTED))

    # Its next pass requested the rest; while that run is in progress, the first one's success
    # (seen late, say) still waits for it.
    progress(data.target_subset)
    second = backfill_run("second", dg.DagsterRunStatus.STARTED, set(enrich_keys) - {RAW_KEY})
    skipped = _sensor_on(instance, first)
    assert isinstance(skipped, dg.SkipReason) and "1 more run(s) in progress" in str(skipped.skip_message)

    time.sleep(0.01)  # the second run ends after the first on the run storage's clock
    second = succeed(second)
    request = _sensor_on(instance, second)
    assert isinstance(request, dg.RunRequest) and request.run_key == "marts-after-second"
    # A sensor that fell behind sees both successes only now: the first still asks for nothing.
    skipped = _sensor_on(instance, first)
    assert isinstance(skipped, dg.SkipReason) and "ended later" in str(skipped.skip_message)
