"""Several API processes on one state file: one carries the jobs, limits are shared, all serve."""

from __future__ import annotations

import collections
import os
import re
import signal
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


def test_a_pickup_that_was_under_way_at_shutdown_does_not_take_the_leadership_back(
    tmp_path: Path, snapshot_dir: Path
):
    from enrichment_pipeline.lib.read_sources import SnapshotSource

    state = tmp_path / "state.sqlite3"
    source = SnapshotSource(snapshot_dir / "serving.duckdb")
    worker = EnrichmentWorker(
        JobStore(StateStore(state)), FakeRuns(), source, leadership=Leadership(state), pickup_s=60
    )
    try:
        worker.start()
        assert worker.leading
        worker.shutdown()
        # The pickup loop's next step, had it passed its wait just before the shutdown.
        worker._take_over()
        assert not worker.leading
        assert Leadership(state).try_acquire()  # free for a successor
    finally:
        worker.shutdown()
        source.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`python -m enrichment_pipeline.api` with API_WORKERS=2 on the test snapshot."""

    def __init__(self, tmp_path: Path, snapshot_dir: Path, port: int | None = None) -> None:
        self.state = tmp_path / "state.sqlite3"
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "api.log"
        env = {
            **os.environ,
            "API_WORKERS": "2",
            "API_PORT": str(self.port),
            "API_HOST": "127.0.0.1",
            "API_STATE_DB": str(self.state),
            "API_START_DAEMON": "0",
            "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
            "SERVING_DUCKDB": str(snapshot_dir / "serving.duckdb"),
        }
        self.key = KeyStore(StateStore(self.state)).create("t", ("read",), "standard")[1]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "enrichment_pipeline.api"], env=env, stderr=out
            )

    def up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def workers(self) -> set[int]:
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        # The spawned workers, not multiprocessing's resource tracker.
        return {
            int(line.split()[0])
            for line in out.stdout.splitlines()
            if "spawn_main" in line and "resource_tracker" not in line
        }

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=60)

    def pids_serving(self, path: str) -> list[str]:
        pattern = rf"\[(\d+)\] INFO enrichment_pipeline\.api\.access: GET {re.escape(path)} "
        return re.findall(pattern, self.log.read_text())


def test_two_worker_processes_serve_one_port_and_share_each_keys_limit(tmp_path: Path, snapshot_dir: Path):
    served = Served(tmp_path, snapshot_dir)
    try:
        _until(served.up, 60)
        headers = {"Authorization": f"Bearer {served.key}"}
        statuses = []
        # The 101 requests take a second or two: started early in a minute, one window holds
        # them (a boundary among them splits the count, and no request is refused).
        if time.time() % 60 > 40:
            time.sleep(60 - time.time() % 60 + 0.2)
        # A new connection per request, so the kernel spreads them over both processes.
        for _ in range(100):
            statuses.append(
                httpx.get(f"{served.url}/v1/companies/company000001.com", headers=headers).status_code
            )
        over = httpx.get(f"{served.url}/v1/companies/company000001.com", headers=headers)
        if 429 in statuses or over.headers.get("ratelimit-remaining") == "99":  # a new minute began
            served.stop()
            return test_two_worker_processes_serve_one_port_and_share_each_keys_limit(
                tmp_path / "again", snapshot_dir
            )
        assert set(statuses) == {200}
        assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    finally:
        assert served.stop() == 0
    assert len(set(served.pids_serving("/v1/companies/company000001.com"))) == 2
    assert "Traceback" not in served.log.read_text()


def test_connections_opened_together_are_spread_over_the_workers(tmp_path: Path, snapshot_dir: Path):
    """A client's pool opens its connections at once; with one shared socket they often all went
    to one worker. Each worker's own SO_REUSEPORT socket gets its share."""
    served = Served(tmp_path, snapshot_dir)
    try:
        _until(served.up, 60)
        time.sleep(1)  # both workers listening
        path = "/v1/companies/company000002.com"
        sockets = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(32)]
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.key}\r\n\r\n".encode()
        for sock in sockets:
            sock.sendall(request)
        for sock in sockets:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.close()
    finally:
        served.stop()
    counts = collections.Counter(served.pids_serving(path))
    assert len(counts) == 2 and min(counts.values()) >= 4, counts


def test_a_worker_that_dies_is_replaced(tmp_path: Path, snapshot_dir: Path):
    served = Served(tmp_path, snapshot_dir)
    try:
        _until(served.up, 60)
        _until(lambda: len(served.workers()) == 2)
        first = served.workers()
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _until(lambda: len(served.workers()) == 2 and victim not in served.workers())
        _until(served.up)
        assert "exited (code -9): starting another" in served.log.read_text()
    finally:
        assert served.stop() == 0


def test_a_port_held_by_another_program_is_a_clear_error(tmp_path: Path, snapshot_dir: Path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        served = Served(tmp_path, snapshot_dir, port=holder.getsockname()[1])
        assert served.proc.wait(timeout=60) == 1
    text = served.log.read_text()
    assert "cannot listen on 127.0.0.1:" in text and "Traceback" not in text
