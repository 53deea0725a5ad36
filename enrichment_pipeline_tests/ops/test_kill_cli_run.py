"""kill -9 of a live `enrichment-pipeline enrich` run, then the same command again: nothing the
killed run had received a second before it died is bought twice.

The providers (BuiltWith and SimilarWeb, seven calls per domain) are a local HTTP server on
127.0.0.1 answering with the sandbox's bodies; it records every request it receives and when
it finished answering each one. The test kills the CLI process once a good share of the calls
are answered, re-runs the command to completion and compares what the server saw: no answer
sent one second or more before the kill is asked for again, every domain ends up whole in
raw.provider_responses, and the journal is empty. Runs on DuckDB and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks.provider_server import RecordingServer, ServerThread
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS as SIMILARWEB_ENDPOINTS
from enrichment_pipeline.lib.warehouse import JOURNAL, RESPONSES
from enrichment_pipeline_tests.defs.helpers import read_table, sandbox_domains
from enrichment_pipeline_tests.ops.conftest import subprocess_env

CLI = Path(sys.executable).with_name("enrichment-pipeline")
N_DOMAINS = 40
ROWS_PER_DOMAIN = 1 + len(SIMILARWEB_ENDPOINTS)
# What the issue allows a crash to lose: answers received less than this before the kill.
DURABLE_AFTER_S = 1.0


@pytest.fixture
def provider_server() -> Any:
    thread = ServerThread(latency_ms=20, max_seconds=600)
    thread.server = RecordingServer(latency_ms=20, max_seconds=600)
    with thread:
        yield thread


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_url")


def cli_env(tmp_path: Path, warehouse_url: str, server_url: str) -> dict[str, str]:
    home = tmp_path / "dagster"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess_env(
        {
            "DAGSTER_HOME": str(home),
            "WAREHOUSE_URL": warehouse_url,
            "ENRICHMENT_MODE": "live",
            "ENRICHMENT_PROVIDERS": "builtwith,similarweb",
            "BUILTWITH_API_KEY": "test-key-builtwith",
            "SIMILARWEB_API_KEY": "test-key-similarweb",
            "BUILTWITH_BASE_URL": server_url,
            "SIMILARWEB_BASE_URL": server_url,
            # Slow enough that the kill lands mid-run: 240 SimilarWeb calls take about 8 s.
            "BUILTWITH_RPS": "10",
            "SIMILARWEB_RPS": "30",
        }
    )


def test_kill_9_of_a_cli_run_then_rerun_buys_nothing_twice(
    tmp_path: Path, warehouse_url: str, provider_server: ServerThread
) -> None:
    server: RecordingServer = provider_server.server  # type: ignore[assignment]
    domains = sandbox_domains(N_DOMAINS)
    domain_file = tmp_path / "domains.txt"
    domain_file.write_text("\n".join(domains) + "\n")
    env = cli_env(tmp_path, warehouse_url, provider_server.url)
    command = [str(CLI), "enrich", "--file", str(domain_file), "--no-marts"]

    killed = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        # Kill once a third of the calls are answered and the first answers are well over a second old.
        while True:
            _, answered = server.snapshot()
            if len(answered) >= N_DOMAINS * ROWS_PER_DOMAIN // 3 and (
                time.monotonic() - answered[0][1] > 3 * DURABLE_AFTER_S
            ):
                break
            assert killed.poll() is None, f"the run ended before the kill: {killed.communicate()[0][-2000:]}"
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        os.kill(killed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()  # only when an assertion above failed before the SIGKILL
            killed.wait(timeout=30)
        if killed.stdout:
            killed.stdout.close()
    assert killed.returncode == -signal.SIGKILL
    time.sleep(0.2)  # let requests the dead process had sent finish on the server side
    requested_before, answered_before = server.snapshot()
    paid = {key for key, at in answered_before if at <= killed_at - DURABLE_AFTER_S}
    assert len(paid) >= N_DOMAINS  # the kill landed after real progress...
    assert len(set(requested_before)) < N_DOMAINS * ROWS_PER_DOMAIN  # ...and before the end

    # Readers of raw.provider_responses never see a half-enriched domain, even after a kill -9.
    raw = read_table(warehouse_url, RESPONSES)
    per_domain = raw.group_by("domain").agg(pl.len().alias("rows"))
    assert set(per_domain["rows"]) <= {ROWS_PER_DOMAIN}

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    requested_all, _ = server.snapshot()
    again = requested_all[len(requested_before) :]
    rebought = [key for key in again if key in paid]
    assert rebought == [], f"{len(rebought)} calls bought twice, e.g. {rebought[:3]}"
    # Only calls the killed run never received (or received in its last second) are made again.
    received_before = {key for key, _ in answered_before}
    late = received_before - paid
    assert set(again) <= (set(requested_all) - received_before) | late
    assert len(again) == len(set(again))

    raw = read_table(warehouse_url, RESPONSES)
    assert raw.height == N_DOMAINS * ROWS_PER_DOMAIN
    assert set(raw["domain"]) == set(domains)
    assert raw.group_by("domain").agg(pl.len().alias("rows"))["rows"].unique().to_list() == [ROWS_PER_DOMAIN]
    assert read_table(warehouse_url, JOURNAL).height == 0
