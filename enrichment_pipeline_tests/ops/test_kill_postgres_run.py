"""kill -9 of a run worker in the middle of a PostgreSQL-warehouse run (Dagster on PostgreSQL too).

The worker fetches 300 domains through a transport that answers after 20 ms; it is killed
as soon as its first batch of domains is in the warehouse. Then: every domain in
raw.provider_responses has all of its rows, the answers of unfinished domains wait in the
journal, the operator's recovery frees what the dead run held, and a re-run calls only for
what the dead run never received and completes."""

from __future__ import annotations

import os
import signal
import time

import dagster as dg
import polars as pl
import psycopg
import pytest

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS as SIMILARWEB_ENDPOINTS
from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresTarget
from enrichment_pipeline_tests.defs.helpers import Recorder, raw_metadata, read_table, run_pipeline
from enrichment_pipeline_tests.ops.conftest import PROVIDER_POOL, Worker

pytestmark = pytest.mark.postgres

N_DOMAINS = 300
ROWS_PER_DOMAIN = {"builtwith": 1, "similarweb": len(SIMILARWEB_ENDPOINTS)}
CALLS_PER_DOMAIN = sum(ROWS_PER_DOMAIN.values())


def _raw_count(warehouse_url: str) -> int:
    with psycopg.connect(PostgresTarget(warehouse_url).conninfo) as conn:
        (exists,) = conn.execute("SELECT to_regclass('raw.provider_responses') IS NOT NULL").fetchone()  # type: ignore[misc]
        if not exists:
            return 0
        (n,) = conn.execute("SELECT count(*) FROM raw.provider_responses").fetchone()  # type: ignore[misc]
        return int(n)


def _assert_no_half_written_domain(raw: pl.DataFrame) -> set[str]:
    """Each domain present has every row of every provider; returns the domains present."""
    per_domain = raw.group_by("domain").agg(
        *(pl.col("provider").eq(p).sum().alias(p) for p in ROWS_PER_DOMAIN), pl.len().alias("rows")
    )
    for provider, expected in ROWS_PER_DOMAIN.items():
        bad = per_domain.filter(pl.col(provider) != expected)
        assert bad.is_empty(), f"half-written domains ({provider}): {bad.head(5).rows()}"
    assert raw.select("provider", "endpoint", "domain").is_unique().all()
    return set(per_domain["domain"])


def test_kill_9_mid_run_then_rerun_fills_every_domain(make_pg_home, new_database, workers):
    home = make_pg_home()
    warehouse_url = new_database()
    domains = [f"company{i}.com" for i in range(N_DOMAINS)]
    env = {**home.env, "BUILTWITH_RPS": "0", "SIMILARWEB_RPS": "0"}  # no rate limit: latency-bound
    with home.instance() as instance:
        instance.add_dynamic_partitions(domains_partitions.name, domains)
        worker = Worker.start(warehouse_url, domains, env=env, latency_ms=20)
        workers.append(worker)
        deadline = time.monotonic() + 120
        while _raw_count(warehouse_url) == 0:
            assert worker.proc.poll() is None, f"the run ended before any write: {worker.result()}"
            assert time.monotonic() < deadline, "no row written in 120 s"
            time.sleep(0.05)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=30)
        assert worker.proc.returncode == -signal.SIGKILL

        raw = read_table(warehouse_url, "raw.provider_responses")
        survivors = _assert_no_half_written_domain(raw)
        assert 0 < len(survivors) < N_DOMAINS, "the kill did not land mid-run"

        # An in-process run (like the CLI's) has no code server watching its process: it stays
        # STARTED and (with the pool) holds the provider slot, so a new run's raw step would wait
        # for it forever. The operator's recovery (deploy/README.md): mark the run failed, free
        # its slot (the daemon does that after free_slots_after_run_end_seconds).
        (dead,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if defs.get_assets_def(RAW_KEY).op.pool == PROVIDER_POOL:
            info = instance.event_log_storage.get_concurrency_info(PROVIDER_POOL)
            assert info.active_run_ids == {dead.run_id}
        instance.report_run_failed(dead, "run worker killed (test)")
        instance.event_log_storage.free_concurrency_slots_for_run(dead.run_id)
        assert instance.event_log_storage.get_concurrency_info(PROVIDER_POOL).active_slot_count == 0

        # Answers of domains the dead run had not finished: paid for, kept in the journal.
        journal = read_table(warehouse_url, "raw.response_journal")
        assert not set(journal["domain"]) & survivors
        kept = journal.filter(pl.col("status").is_in(["ok", "not_found"])).height

        recorder = Recorder()
        result = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
        assert result.success
        missing = N_DOMAINS - len(survivors)
        # Only what the worker never received is fetched again; the rest comes from the cache.
        assert len(recorder.requests) == CALLS_PER_DOMAIN * missing - kept
        meta = raw_metadata(result)
        assert meta["calls"] == CALLS_PER_DOMAIN * missing - kept
        assert meta["cache_hits"] == CALLS_PER_DOMAIN * len(survivors) + kept
        assert set(instance.get_materialized_partitions(RAW_KEY)) == set(domains)

    raw = read_table(warehouse_url, "raw.provider_responses")
    assert _assert_no_half_written_domain(raw) == set(domains)
    # Survivors kept the killed run's answers (served from cache, not rewritten).
    kept = raw.filter(pl.col("domain").is_in(sorted(survivors)))
    assert result.run_id not in set(kept["run_id"])
    profiles = read_table(warehouse_url, "marts.company_profiles")
    assert sorted(profiles["domain"]) == sorted(domains)
