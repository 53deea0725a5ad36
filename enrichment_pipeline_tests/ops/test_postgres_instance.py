"""Dagster on PostgreSQL (deploy/dagster.yaml) with the PostgreSQL warehouse: several runs at once.

Each test gets fresh databases for the Dagster instance and the warehouse
(skipped without TEST_DATABASE_URL). Concurrent runs are separate processes
(`worker.py`), as they are in a deployment."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

import dagster as dg
import polars as pl
import pytest

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS as SIMILARWEB_ENDPOINTS
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.defs.helpers import (
    Recorder,
    raw_metadata,
    read_table,
    run_pipeline,
    sandbox_domains,
)
from enrichment_pipeline_tests.ops.conftest import PROVIDER_POOL, Worker

ROWS_PER_DOMAIN = {"builtwith": 1, "similarweb": len(SIMILARWEB_ENDPOINTS)}
CALLS_PER_DOMAIN = sum(ROWS_PER_DOMAIN.values())

pytestmark = pytest.mark.postgres


def _register(instance: dg.DagsterInstance, domains: Sequence[str]) -> None:
    instance.add_dynamic_partitions(domains_partitions.name, list(domains))


def _fetch_windows(warehouse_url: str, run_ids: Sequence[str]) -> list[tuple[datetime, datetime]]:
    """First and last `fetched_at` of the raw rows each run wrote, in time order. Rows are
    written while the raw step holds the warehouse's fetch lock, so runs that took turns have
    windows that do not interleave."""
    raw = read_table(warehouse_url, "raw.provider_responses")
    windows = (
        raw.filter(pl.col("run_id").is_in(list(run_ids)))
        .group_by("run_id")
        .agg(pl.col("fetched_at").min().alias("first"), pl.col("fetched_at").max().alias("last"))
        .sort("first")
    )
    return list(zip(windows["first"], windows["last"], strict=True))


def _assert_took_turns(windows: list[tuple[datetime, datetime]]) -> None:
    assert len(windows) == 2, windows
    assert windows[0][1] <= windows[1][0], f"the two runs fetched at the same time: {windows}"


def _run_two_at_once(
    warehouse_url: str, a: Sequence[str], b: Sequence[str], workers: list[Worker], **kwargs
) -> tuple[dict, dict]:
    """Two worker processes, released at the same moment once both have imported everything."""
    pair = [Worker.start(warehouse_url, domains, wait_for_go=True, **kwargs) for domains in (a, b)]
    workers.extend(pair)
    for worker in pair:
        worker.wait_ready()
    for worker in pair:
        worker.go()
    first, second = (worker.result() for worker in pair)
    for result in (first, second):
        assert result["success"], f"run failed: {result}"
    return first, second


def _assert_whole_and_unique(warehouse_url: str, domains: Sequence[str]) -> pl.DataFrame:
    """Every domain has exactly its rows for every provider; one profile and one score per domain."""
    raw = read_table(warehouse_url, "raw.provider_responses")
    assert raw.select("provider", "endpoint", "domain").is_unique().all()
    per_provider = raw.group_by("domain", "provider").len()
    assert set(per_provider["domain"]) == set(domains)
    for provider, expected in ROWS_PER_DOMAIN.items():
        counts = per_provider.filter(pl.col("provider") == provider)
        assert counts.height == len(domains), provider
        assert counts["len"].unique().to_list() == [expected], provider
    for table in ("marts.company_profiles", "marts.icp_scores"):
        frame = read_table(warehouse_url, table)
        assert frame["domain"].is_unique().all(), f"duplicate domains in {table}"
        # The last build of each table ran after every raw write: all domains are there.
        assert sorted(frame["domain"]) == sorted(domains), table
    return raw


def test_deploy_config_is_the_production_instance(make_pg_home):
    home = make_pg_home()
    with home.instance() as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config is not None
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity is not None
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        storage = instance.event_log_storage
        assert type(storage).__name__ == "ProjectPostgresEventLogStorage"
        assert storage.supports_global_concurrency_limits
        # the project's bookkeeping settings, from this file alone
        assert storage.supports_partition_subset_in_asset_materialization_planned_events
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "1000"
        # psycopg2: with psycopg 3 every event write fails on `NOTIFY run_events, $1`.
        assert storage.postgres_url.startswith("postgresql+psycopg2://")  # type: ignore[attr-defined]


def test_raw_fetch_step_is_in_the_provider_pool():
    """The pool that deploy/dagster.yaml limits to one step at a time across all runs."""
    assert defs.get_assets_def(RAW_KEY).op.pool == PROVIDER_POOL


def test_two_runs_at_once_take_turns_and_keep_the_daily_quota(make_pg_home, new_database, workers):
    """deploy/dagster.yaml as shipped, two runs released at the same moment over overlapping
    domains, a BuiltWith daily quota that binds: both succeed; one fetches after the other (pool
    `provider_calls`, limit 1, and the warehouse's fetch lock); the later one finds the overlap
    in the cache; the quota is never exceeded; no duplicate rows; every table has every domain."""
    home = make_pg_home()
    warehouse_url = new_database()
    quota = 30
    domains = sandbox_domains(60)
    a, b = domains[:40], domains[20:]
    env = {**home.env, "BUILTWITH_DAILY_QUOTA": str(quota)}
    with home.instance() as instance:
        _register(instance, domains)
        first, second = _run_two_at_once(warehouse_url, a, b, workers, env=env, latency_ms=5)
        info = instance.event_log_storage.get_concurrency_info(PROVIDER_POOL)
        assert info.slot_count == 1
        assert info.active_slot_count == 0, "a finished run still holds the provider slot"
        assert set(instance.get_materialized_partitions(RAW_KEY)) == set(domains)
    _assert_took_turns(_fetch_windows(warehouse_url, [first["run_id"], second["run_id"]]))
    raw = _assert_whole_and_unique(warehouse_url, domains)

    # SimilarWeb (no quota): the overlap was fetched once; the later run found it in the cache.
    calls = {p: first["provider_calls"][p] + second["provider_calls"][p] for p in ROWS_PER_DOMAIN}
    assert calls["similarweb"] == ROWS_PER_DOMAIN["similarweb"] * len(domains)
    # BuiltWith: the quota binds across both runs and is never exceeded.
    assert 0 < calls["builtwith"] <= quota
    builtwith = raw.filter(pl.col("provider") == "builtwith")
    assert builtwith.filter(pl.col("status") == "ok").height <= quota
    assert builtwith.filter(pl.col("status") == "quota_exhausted").height > 0, "the quota never bound"
    assert set(builtwith["status"]) <= {"ok", "not_found", "quota_exhausted"}
    with Warehouse.open(warehouse_url, read_only=True) as wh:
        ledger = wh.query("SELECT provider, day, calls FROM raw.provider_quota WHERE provider = 'builtwith'")
    assert ledger.height == 1
    assert calls["builtwith"] <= ledger["calls"][0] <= quota
    similarweb = raw.filter(pl.col("provider") == "similarweb")
    assert set(similarweb["status"]) <= {"ok", "not_found"}


def _profiles_content(profiles: pl.DataFrame) -> pl.DataFrame:
    """Profiles without the build time; provider_statuses compared as a set."""
    return (
        profiles.sort("domain")
        .with_columns(
            pl.col("provider_statuses")
            .str.json_decode(pl.List(pl.Struct({"provider": pl.String, "status": pl.String})))
            .list.sort()
        )
        .drop("enriched_at")
    )


def test_whole_pipeline_on_postgres_twice_second_run_is_all_cache(make_pg_home, new_database):
    """Dagster instance and warehouse both on PostgreSQL: a re-run makes zero provider calls and
    leaves the tables as they were."""
    home = make_pg_home()
    warehouse_url = new_database()
    domains = sandbox_domains(10)
    recorder = Recorder()
    started = datetime.now().timestamp()
    with home.instance() as instance:
        first = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
        assert first.success
        assert len(recorder.requests) == CALLS_PER_DOMAIN * len(domains)
        before = {
            t: read_table(warehouse_url, t)
            for t in ("raw.provider_responses", "marts.company_profiles", "marts.icp_scores")
        }

        second = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
        assert second.success
        assert len(recorder.requests) == CALLS_PER_DOMAIN * len(domains), "the re-run called a provider"
        meta = raw_metadata(second)
        assert meta["calls"] == 0
        assert meta["cache_hits"] == CALLS_PER_DOMAIN * len(domains)

        # Both runs are in the PostgreSQL run storage, with their partitions.
        records = instance.get_run_records(
            filters=dg.RunsFilter(created_after=datetime.fromtimestamp(started))
        )
        assert {r.dagster_run.run_id for r in records} == {first.run_id, second.run_id}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        assert set(instance.get_materialized_partitions(RAW_KEY)) == set(domains)

    key = ["provider", "endpoint", "domain"]
    raw_after = read_table(warehouse_url, "raw.provider_responses")
    assert raw_after.sort(key).equals(before["raw.provider_responses"].sort(key))
    assert raw_after["run_id"].unique().to_list() == [first.run_id]
    profiles_after = read_table(warehouse_url, "marts.company_profiles")
    assert _profiles_content(profiles_after).equals(_profiles_content(before["marts.company_profiles"]))
    scores_after = read_table(warehouse_url, "marts.icp_scores")
    assert (
        scores_after.drop("scored_at")
        .sort("domain")
        .equals(before["marts.icp_scores"].drop("scored_at").sort("domain"))
    )


def test_the_warehouse_locks_alone_make_fetches_and_rebuilds_take_turns(make_pg_home, new_database, workers):
    """Pool limit raised to 2, so nothing in Dagster keeps two runs apart: the warehouse's fetch
    lock still makes their fetches take turns (so a provider's per-process rate limit holds
    across runs), and the derived-rebuild lock leaves every derived table equal to a fresh
    rebuild after both runs, whichever finished last."""
    from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME
    from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource

    home = make_pg_home()
    warehouse_url = new_database()
    domains = sandbox_domains(50)
    a, b = domains[:30], domains[20:]
    with home.instance() as instance:
        instance.event_log_storage.set_concurrency_slots(PROVIDER_POOL, 2)
        _register(instance, domains)
        first, second = _run_two_at_once(warehouse_url, a, b, workers, env=home.env, latency_ms=5)
        _assert_took_turns(_fetch_windows(warehouse_url, [first["run_id"], second["run_id"]]))
        _assert_whole_and_unique(warehouse_url, domains)
        after_both = {t: read_table(warehouse_url, t) for t in ("marts.company_profiles", "marts.icp_scores")}

        job = defs.resolve_job_def(ENRICH_JOB_NAME)
        downstream = {k for k in job.asset_layer.selected_asset_keys if k != RAW_KEY}
        fresh = job.get_subset(asset_selection=downstream).execute_in_process(
            instance=instance,
            resources={
                "warehouse": WarehouseResource(url=warehouse_url),
                "providers": ProvidersResource(mode="sandbox", providers=["builtwith", "similarweb"]),
            },
        )
        assert fresh.success
    rebuilt = {t: read_table(warehouse_url, t) for t in after_both}
    assert _profiles_content(rebuilt["marts.company_profiles"]).equals(
        _profiles_content(after_both["marts.company_profiles"])
    )
    assert (
        rebuilt["marts.icp_scores"].drop("scored_at").sort("domain")
        .equals(after_both["marts.icp_scores"].drop("scored_at").sort("domain"))
    )  # fmt: skip


def test_two_runs_at_once_never_exceed_the_rate_limit_together(make_pg_home, new_database, workers):
    """Two runs released at the same moment call one provider over HTTP (a local server that
    notes when each request arrives): in no 1-second window does the server see more than
    `BUILTWITH_RPS` requests, although each run paces only its own calls. The pool limit is
    raised to 2, so only the warehouse's fetch lock keeps the runs apart: the hand-over from
    one run's fetch to the other's is the moment a second process could burst."""
    from benchmarks.provider_server import ServerThread, max_in_window

    rps = 5
    home = make_pg_home()
    warehouse_url = new_database()
    domains = sandbox_domains(24)
    a, b = domains[:12], domains[12:]
    with ServerThread(latency_ms=5, max_seconds=300) as server, home.instance() as instance:
        instance.event_log_storage.set_concurrency_slots(PROVIDER_POOL, 2)
        _register(instance, domains)
        env = {
            **home.env,
            "BUILTWITH_API_KEY": "test-key-builtwith",
            "BUILTWITH_BASE_URL": server.url,
            "BUILTWITH_RPS": str(rps),
        }
        pair = [
            Worker.start(warehouse_url, part, env=env, wait_for_go=True, live=True, providers="builtwith")
            for part in (a, b)
        ]
        workers.extend(pair)
        for worker in pair:
            worker.wait_ready()
        for worker in pair:
            worker.go()
        results = [worker.result() for worker in pair]
        stats = server.stats()
    for result in results:
        assert result["success"], f"run failed: {result}"
    assert stats["requests"] == len(domains), stats["by_provider"]
    most, at = max_in_window(stats["timestamps"])
    assert most <= rps, f"{most} requests in the 1-s window from {at}: the two runs' calls overlapped"
