"""What launched runs (UI, schedules, sensors) depend on: the executor, the project's instance
settings, per-partition status with one planned event per run, the marts sensor."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as db
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.enrichment import enrichment_defs
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, MARTS_JOB_NAME
from enrichment_pipeline.defs.operations.marts_sensor import enriched_tables_changed, marts_after_enrichment
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.instance import DAGSTER_YAML_TEMPLATE, install_instance_config
from enrichment_pipeline.instance.event_log import EVENT_BATCH_SIZE_ENV, ProjectSqliteEventLogStorage
from enrichment_pipeline.lib import cost
from enrichment_pipeline_tests.defs.helpers import Recorder, read_table, run_pipeline, sandbox_domains

PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
MATERIALIZED = dg.DagsterEventType.ASSET_MATERIALIZATION


@pytest.fixture
def project_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """A DAGSTER_HOME set up as `make` and the CLI set it up."""
    monkeypatch.delenv(EVENT_BATCH_SIZE_ENV, raising=False)
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    home = tmp_path / "dagster_home"
    assert install_instance_config(home) == "installed"
    # Not `with instance:` (it leaves the instance's state storage in a context variable
    # that later tests in this process would pick up).
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def events(instance: dg.DagsterInstance, kind: dg.DagsterEventType, run_id: str) -> list[dg.EventLogRecord]:
    records = instance.get_records_for_run(run_id, of_type=kind, limit=100_000).records
    return [r for r in records if r.event_log_entry.dagster_event.asset_key == RAW_KEY]


def partition_statuses(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str | None]:
    statuses = instance.get_status_by_partition(RAW_KEY, keys, domains_partitions) or {}
    return {k: (s.value if s is not None else None) for k, s in statuses.items()}


def test_every_job_runs_its_steps_in_the_run_worker() -> None:
    """No process per step: launched runs import the code location once."""
    for name in (ENRICH_JOB_NAME, MARTS_JOB_NAME):
        assert defs.resolve_job_def(name).executor_def is dg.in_process_executor
    # The UI's Materialize button launches the implicit asset job.
    assert defs.resolve_implicit_global_asset_job_def().executor_def is dg.in_process_executor


def test_the_project_instance_carries_the_bookkeeping_settings(project_instance: dg.DagsterInstance) -> None:
    storage = project_instance.event_log_storage
    assert isinstance(storage, ProjectSqliteEventLogStorage)
    assert storage.supports_partition_subset_in_asset_materialization_planned_events
    assert os.environ[EVENT_BATCH_SIZE_ENV] == "1000"


def test_any_process_that_loads_the_instance_gets_the_settings(tmp_path: Path) -> None:
    """What a webserver, daemon, code server or run worker does: load the instance from DAGSTER_HOME."""
    home = tmp_path / "home"
    install_instance_config(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(home)
    probe = (
        "import os, dagster as dg\n"
        "i = dg.DagsterInstance.get()\n"
        "print(os.environ.get('DAGSTER_EVENT_BATCH_SIZE'),"
        " i.event_log_storage.supports_partition_subset_in_asset_materialization_planned_events)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1000", "True"]


def test_installing_keeps_a_users_own_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # what older CLIs wrote
    assert install_instance_config(home) == "updated"
    assert install_instance_config(home) == "current"
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML_TEMPLATE.read_text()
    (home / "dagster.yaml").write_text("run_coordinator:\n  module: x\n")
    assert install_instance_config(home) == "kept"
    assert (home / "dagster.yaml").read_text() == "run_coordinator:\n  module: x\n"


def test_one_planned_event_per_run_and_every_partition_materialized(
    project_instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    domains = sandbox_domains(6)
    result = run_pipeline(project_instance, warehouse_url, domains, providers=["builtwith"])
    assert result.success
    planned = events(project_instance, PLANNED, result.run_id)
    assert len(planned) == 1
    subset = planned[0].event_log_entry.dagster_event.event_specific_data.partitions_subset
    assert sorted(subset.get_partition_keys()) == sorted(domains)
    assert sorted(r.partition_key for r in events(project_instance, MATERIALIZED, result.run_id)) == sorted(
        domains
    )
    assert set(partition_statuses(project_instance, domains).values()) == {"MATERIALIZED"}
    # the batched writes also updated the asset's latest materialization
    latest = project_instance.get_latest_materialization_event(RAW_KEY)
    assert latest is not None and latest.run_id == result.run_id


def _connection_counter(storage: object) -> tuple[list[str | None], object]:
    """A stand-in for the storage's `_connect` that records the sqlite file (shard) of each call."""
    connections: list[str | None] = []
    connect = storage._connect  # type: ignore[attr-defined]

    def counting_connect(shard: str | None) -> object:
        connections.append(shard)
        return connect(shard)

    return connections, counting_connect


def test_a_new_runs_planned_events_are_stored_as_dagsters_sqlite_storage_stores_them(
    project_instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new marts run plans every dbt model and test: written with one connection per sqlite file."""
    job = defs.resolve_job_def(MARTS_JOB_NAME)
    storage = project_instance.event_log_storage
    connections, counting_connect = _connection_counter(storage)

    monkeypatch.setattr(storage, "_connect", counting_connect)
    run = project_instance.create_run_for_job(job)
    assert len(connections) <= 2, connections  # the run's file and the index
    monkeypatch.undo()

    (tmp_path / "plain").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "plain")) as plain:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        plain_run = plain.create_run_for_job(job)

        def planned(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
            kinds = (PLANNED, dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)
            return {
                kind.value: sorted(
                    str(r.event_log_entry.dagster_event.asset_key)
                    for r in instance.get_records_for_run(run_id, of_type=kind, limit=1000).records
                )
                for kind in kinds
            }

        assert planned(project_instance, run.run_id) == planned(plain, plain_run.run_id)
        assert len(planned(project_instance, run.run_id)["ASSET_CHECK_EVALUATION_PLANNED"]) > 50
        for instance, run_id in ((project_instance, run.run_id), (plain, plain_run.run_id)):
            for key in job.asset_layer.selected_asset_keys:
                info = instance.get_latest_planned_materialization_info(key)
                assert info is not None and info.run_id == run_id, key
            for check_key in job.asset_layer.asset_graph.asset_check_keys:
                history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1)
                assert [(h.run_id, h.status.value) for h in history] == [(run_id, "PLANNED")], check_key
        # each check execution points at its planned event in the index
        checks = AssetCheckExecutionsTable
        with storage.index_connection() as conn:
            rows = conn.execute(
                db.select(checks.c.check_name, SqlEventLogStorageTable.c.dagster_event_type)
                .join(
                    SqlEventLogStorageTable,
                    SqlEventLogStorageTable.c.id == checks.c.evaluation_event_storage_id,
                )
                .where(checks.c.run_id == run.run_id)
            ).fetchall()
        assert {kind for _, kind in rows} == {"ASSET_CHECK_EVALUATION_PLANNED"}
        assert sorted(name for name, _ in rows) == sorted(
            k.name for k in job.asset_layer.asset_graph.asset_check_keys
        )


def test_a_check_result_is_stored_with_one_connection_per_sqlite_file(
    project_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dg.asset
    def table() -> None:
        return None

    @dg.asset_check(asset=table)
    def has_rows() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False)

    storage = project_instance.event_log_storage
    connections, counting_connect = _connection_counter(storage)

    original_store_event = storage.store_event

    def store_event(event: dg.EventLogEntry) -> None:
        connections.clear()
        original_store_event(event)
        if event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            counts.append(len(connections))

    counts: list[int] = []
    monkeypatch.setattr(storage, "_connect", counting_connect)
    monkeypatch.setattr(storage, "store_event", store_event)
    result = dg.materialize([table, has_rows], instance=project_instance)
    monkeypatch.undo()
    assert counts == [2]  # the run's file and the index

    key = dg.AssetCheckKey(dg.AssetKey("table"), "has_rows")
    [record] = storage.get_asset_check_execution_history(key, limit=5)
    assert (record.run_id, record.status.value) == (result.run_id, "FAILED")
    assert (
        record.event is not None
        and record.event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    evaluation = record.event.dagster_event.event_specific_data
    materialization = project_instance.get_latest_materialization_event(dg.AssetKey("table"))
    assert materialization is not None and evaluation.target_materialization_data.run_id == result.run_id


def test_a_failed_run_shows_its_partitions_failed(
    project_instance: dg.DagsterInstance, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = sandbox_domains(3)
    assert run_pipeline(project_instance, warehouse_url, done, providers=["builtwith"]).success
    later = [d for d in sandbox_domains(8) if d not in done]
    monkeypatch.setenv(cost.BUDGET_ENV, "0.0001")  # the raw step refuses: the run fails
    failed = run_pipeline(
        project_instance, warehouse_url, later, providers=["builtwith"], raise_on_error=False
    )
    assert not failed.success
    assert len(events(project_instance, PLANNED, failed.run_id)) == 1
    statuses = partition_statuses(project_instance, done + later)
    assert {statuses[d] for d in done} == {"MATERIALIZED"}
    assert {statuses[d] for d in later} == {"FAILED"}
    # A later successful run of the same partitions clears the failure.
    monkeypatch.delenv(cost.BUDGET_ENV)
    assert run_pipeline(project_instance, warehouse_url, later, providers=["builtwith"]).success
    assert set(partition_statuses(project_instance, later).values()) == {"MATERIALIZED"}


def test_domains_no_provider_answered_are_named_by_a_check(
    project_instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    domains = sandbox_domains(4)
    broken = domains[1]

    def garbage(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(200, text="<html>") if broken in str(request.url) else None

    result = run_pipeline(
        project_instance,
        warehouse_url,
        domains,
        providers=["builtwith"],
        transport=Recorder(garbage).transport(),
    )
    assert result.success
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "every_domain_answered"
    ]
    assert not evaluation.passed
    assert evaluation.metadata["unanswered_domains"].value == 1
    assert list(evaluation.metadata["domains"].value) == [broken]


def test_the_marts_follow_the_uis_materialize_runs_too(instance: dg.DagsterInstance) -> None:
    enrich_keys = frozenset(defs.resolve_job_def(ENRICH_JOB_NAME).asset_layer.selected_asset_keys)
    ui_run = dg.DagsterRun(job_name="__ASSET_JOB", run_id="a", asset_selection=frozenset({RAW_KEY}))
    marts_run = dg.DagsterRun(
        job_name="__ASSET_JOB", run_id="b", asset_selection=frozenset({dg.AssetKey(["marts", "dim_company"])})
    )
    assert enriched_tables_changed(dg.DagsterRun(job_name=ENRICH_JOB_NAME, run_id="c"), enrich_keys)
    assert enriched_tables_changed(ui_run, enrich_keys)
    assert not enriched_tables_changed(marts_run, enrich_keys)
    assert not enriched_tables_changed(dg.DagsterRun(job_name=MARTS_JOB_NAME, run_id="d"), enrich_keys)
    context = dg.build_run_status_sensor_context(
        sensor_name=marts_after_enrichment.name,
        dagster_instance=instance,
        dagster_run=ui_run,
        dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, "__ASSET_JOB"),
    )
    request = marts_after_enrichment(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == "marts-after-a"


def test_scattered_domains_are_reenriched_in_one_run(
    project_instance: dg.DagsterInstance, warehouse_url: str
) -> None:
    domains = sandbox_domains(8)
    broken = {domains[2], domains[5]}

    def garbage(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(200, text="<html>") if any(b in str(request.url) for b in broken) else None

    first = run_pipeline(
        project_instance,
        warehouse_url,
        domains,
        providers=["builtwith"],
        transport=Recorder(garbage).transport(),
    )
    assert first.success
    listed = sandbox_domains(12)[10]  # a domain never registered, from an uploaded list
    recorder = Recorder()
    rerun = defs.resolve_job_def(ENRICH_JOB_NAME).execute_in_process(
        run_config={
            "ops": {
                "raw__provider_responses": {"config": {"failed": True, "domains": [listed, "not a domain"]}}
            }
        },
        instance=project_instance,
        partition_key=domains[0],
        resources={
            "warehouse": WarehouseResource(url=warehouse_url),
            "providers": ProvidersResource(mode="sandbox", providers=["builtwith"]),
            "http_transport": recorder.transport(),
        },
    )
    assert rerun.success
    # only the failed ones and the listed one were called (the run's own partition is cached)
    assert sorted({r.url.params["LOOKUP"] for r in recorder.requests}) == sorted([*broken, listed])
    assert listed in project_instance.get_dynamic_partitions(domains_partitions.name)
    by_partition = {
        r.partition_key: r.run_id
        for r in project_instance.fetch_materializations(RAW_KEY, limit=1000).records
        if r.run_id == rerun.run_id
    }
    assert sorted(by_partition) == sorted([domains[0], *broken, listed])
    assert len(events(project_instance, PLANNED, rerun.run_id)) == 1  # one run, planned once
    # the tables downstream were rebuilt in the same run: the broken ones now have profiles
    profiles = read_table(warehouse_url, "marts.company_profiles")
    assert set(broken) | {listed} <= set(profiles["domain"].to_list())


def test_an_enrichment_alone_never_imports_dbt() -> None:
    """The CLI's enrichment runs load `defs/enrichment.py` only (dagster_dbt is ~40% of a load)."""
    probe = (
        "import sys, enrichment_pipeline.defs.enrichment, enrichment_pipeline.cli\n"
        "print('dagster_dbt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    full = set(defs.resolve_job_def(ENRICH_JOB_NAME).asset_layer.selected_asset_keys)
    assert set(enrichment_defs.resolve_job_def(ENRICH_JOB_NAME).asset_layer.selected_asset_keys) == full
