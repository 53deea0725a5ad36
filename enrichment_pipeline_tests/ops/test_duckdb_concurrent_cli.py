"""Two `enrichment-pipeline enrich` processes on one DuckDB warehouse file at the same time.

A DuckDB file has one writer process at a time. Every writer must wait for the lock, never
fail with "Could not set lock on file": the pipeline's own connections (`Warehouse.open`
retries for up to `lock_wait_s`) and dbt's, in the marts run each CLI call ends with
(dbt-duckdb's `retries.connect_attempts` in dbt_models/profiles.yml). To make both processes
wait for sure, the test holds the file's lock until both have registered their domains (the
next thing the CLI does is read the warehouse), then lets go."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl

from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, MARTS_JOB_NAME
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.defs.helpers import read_table, sandbox_domains
from enrichment_pipeline_tests.ops.conftest import subprocess_env

TIMEOUT_S = 180


def _registered(home: Path) -> set[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return set(instance.get_dynamic_partitions(domains_partitions.name))


def test_two_cli_runs_on_one_duckdb_file_wait_for_each_other(tmp_path):
    home = tmp_path / "dagster"  # one sqlite DAGSTER_HOME for both, as `make run` twice would use
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    env = subprocess_env(
        {
            "DAGSTER_HOME": str(home),
            "WAREHOUSE_URL": url,
            "ENRICHMENT_MODE": "sandbox",
            "ENRICHMENT_PROVIDERS": "builtwith,similarweb",
        }
    )
    domains = sandbox_domains(40)
    lists = (domains[:20], domains[20:])

    holder = Warehouse.open(url)  # migrated, and the file's writer lock is ours
    procs: list[subprocess.Popen[str]] = []
    try:
        for chunk in lists:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "enrichment_pipeline.cli", "enrich", *chunk],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=tmp_path,
                )
            )
        deadline = time.monotonic() + TIMEOUT_S
        while not set(domains) <= _registered(home):
            for p in procs:
                assert p.poll() is None, f"a CLI run ended while the lock was held: {p.communicate()}"
            assert time.monotonic() < deadline, "the two CLI calls never registered their domains"
            time.sleep(0.2)
        time.sleep(1.0)  # both are now retrying the lock
        for p in procs:
            assert p.poll() is None, f"a CLI run gave up on the lock: {p.communicate()}"
    finally:
        holder.close()
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=TIMEOUT_S))
            except subprocess.TimeoutExpired:
                p.kill()
                outputs.append(p.communicate())

    for p, (out, err) in zip(procs, outputs, strict=True):
        assert "Could not set lock" not in out + err
        assert p.returncode == 0, f"exit {p.returncode}\n{out[-2000:]}\n{err[-2000:]}"
        assert "enrichment summary" in out

    raw = read_table(url, "raw.provider_responses")
    assert set(raw["domain"]) == set(domains)
    assert raw.select("provider", "endpoint", "domain").is_unique().all()
    assert raw.group_by("domain").len()["len"].unique().to_list() == [7]
    profiles = read_table(url, "marts.company_profiles")
    assert sorted(profiles["domain"]) == sorted(domains)
    assert set(profiles.filter(pl.col("domain").is_in(domains))["status"]) == {"enriched"}
    # Each CLI call made an enrichment run and a marts run (dbt build): all successful.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    assert sorted(r.job_name for r in runs) == sorted([ENRICH_JOB_NAME, MARTS_JOB_NAME] * 2)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
