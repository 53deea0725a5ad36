"""Several API processes on one state file: one carries the jobs, limits are shared, all serve."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from enrichment_pipeline.api.enrichment_worker import EnrichmentWorker
from enrichment_pipeline.api.leadership import Leadership
from enrichment_pipeline.lib.api_keys import KeyStore
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline.lib.enrichment_jobs import JobStore
from enrichment_pipeline_tests.api.test_enrichments import FakeRuns


def _until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_leader_at_a_time_and_a_successor_when_it_goes(tmp_path: Path):
    state = tmp_path / "state.sqlite3"
    first, second = Leadership(state), Leadership(state)
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    assert first.try_acquire()  # holding it already
    first.release()
    assert second.try_acquire()


def test_a_job_accepted_by_a_follower_is_carried_by_the_leader_then_by_its_successor(
    tmp_path: Path, snapshot_dir: Path
):
    from enrichment_pipeline.lib.read_sources import SnapshotSource

    state = tmp_path / "state.sqlite3"
    source = SnapshotSource(snapshot_dir / "serving.duckdb")
    leader_runs, follower_runs = FakeRuns(), FakeRuns()
    leader = EnrichmentWorker(
        JobStore(StateStore(state)), leader_runs, source, leadership=Leadership(state), pickup_s=0.05
    )
    follower = EnrichmentWorker(
        JobStore(StateStore(state)), follower_runs, source, leadership=Leadership(state), pickup_s=0.05
    )
    jobs = JobStore(StateStore(state))
    try:
        leader.start()
        follower.start()
        assert leader.leading and not follower.leading
        job = jobs.create("k", ["company000001.com"], [], force=False, webhook_url=None, estimate=None)
        follower.submit(job)  # what the follower's POST handler does: nothing runs there
        _until(lambda: jobs.get(job.id).status == "succeeded")
        assert [name for name, *_ in leader_runs.launched] == ["enrich_domains", "build_marts"]
        assert follower_runs.launched == []

        leader.shutdown()  # the leading process goes away
        _until(lambda: follower.leading)
        second = jobs.create("k", ["company000002.com"], [], force=False, webhook_url=None, estimate=None)
        follower.submit(second)
        _until(lambda: jobs.get(second.id).status == "succeeded")
        assert len(follower_runs.launched) == 2 and len(leader_runs.launched) == 2
    finally:
        leader.shutdown()
        follower.shutdown()
        source.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_worker_processes_serve_one_port_and_share_each_keys_limit(tmp_path: Path, snapshot_dir: Path):
    state = tmp_path / "state.sqlite3"
    key = KeyStore(StateStore(state)).create("t", ("read",), "standard")[1]
    port = _free_port()
    log = tmp_path / "api.log"
    env = {
        **os.environ,
        "API_WORKERS": "2",
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "API_STATE_DB": str(state),
        "API_START_DAEMON": "0",
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "SERVING_DUCKDB": str(snapshot_dir / "serving.duckdb"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "enrichment_pipeline.api"], env=env, stderr=out)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _until(up, 60)
        statuses = []
        # A new connection per request, so the kernel spreads them over both processes.
        for _ in range(100):
            r = httpx.get(f"{url}/v1/companies/company000001.com", headers={"Authorization": f"Bearer {key}"})
            statuses.append(r.status_code)
        over = httpx.get(f"{url}/v1/companies/company000001.com", headers={"Authorization": f"Bearer {key}"})
        if 429 in statuses or over.headers.get("ratelimit-remaining") == "99":  # a new minute began
            return test_two_worker_processes_serve_one_port_and_share_each_keys_limit(
                tmp_path / "again", snapshot_dir
            )
        assert set(statuses) == {200}
        assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    served_by = set(re.findall(r"\[(\d+)\] INFO enrichment_pipeline\.api\.access: GET /v1/companies", text))
    assert len(served_by) == 2, text[-2000:]
    assert "Traceback" not in text
