"""kill -9 in the middle of a big write: the warehouse reopens and every domain is all-or-nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import polars as pl

from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.defs.helpers import read_table, run_pipeline, sandbox_domains

ROWS_PER_DOMAIN = 7
DOMAINS_PER_BATCH = 10_000

# Batch b writes domains [b*N/2, b*N/2 + N): half of them overwrite the previous batch.
WRITER = textwrap.dedent(
    """
    import sys
    from contextlib import contextmanager
    from datetime import UTC, datetime, timedelta

    from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse

    url, n, per_domain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    wh = Warehouse.open(url)
    original = Warehouse.transaction

    @contextmanager
    def announced(self):
        with original(self) as conn:
            print("mid-write", flush=True)
            yield conn

    Warehouse.transaction = announced
    now = datetime.now(UTC)
    for b in range(1000):
        first = b * n // 2
        rows = [
            ResponseRow("crashtest", f"e{e}", f"d{i}.crash.example", "ok", 200, {"batch": b, "i": i}, None,
                        now, now + timedelta(days=30), 1, 1.0, 0.0, "sandbox", f"batch-{b}")
            for i in range(first, first + n)
            for e in range(per_domain)
        ]
        print(f"batch {b}", flush=True)
        wh.write_responses(rows)
        print(f"done {b}", flush=True)
    """
)


def test_kill_9_mid_write_leaves_whole_domains(instance, warehouse_url, tmp_path):
    Warehouse.open(warehouse_url).close()  # migrations done before the writer starts
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, warehouse_url, str(DOMAINS_PER_BATCH), str(ROWS_PER_DOMAIN)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            assert line, f"writer exited early: {seen}"
            seen.append(line)
            # Second batch's transaction has begun (the first one is committed): kill now.
            if line == "mid-write" and "batch 1" in seen:
                time.sleep(0.02)
                os.kill(proc.pid, signal.SIGKILL)
                break
        else:
            raise AssertionError(f"writer never reached batch 1: {seen}")
    finally:
        if proc.poll() is None:
            proc.kill()  # only reached when an assertion above failed before the SIGKILL
        proc.wait(timeout=30)
        rest = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == -signal.SIGKILL
    seen += rest.splitlines()
    assert "done 1" not in seen, "the kill landed after the transaction committed"
    assert [line for line in seen if line.startswith("done")] == ["done 0"]

    with Warehouse.open(warehouse_url) as wh:  # opens (replays the WAL) and migrates
        rows = wh.responses(providers=["crashtest"])
    per_domain = rows.group_by("domain").agg(
        pl.len().alias("n"), pl.col("run_id").n_unique().alias("runs"), pl.col("run_id").first()
    )
    assert per_domain["n"].unique().to_list() == [ROWS_PER_DOMAIN], "a domain is half written"
    assert per_domain["runs"].unique().to_list() == [1], "a domain mixes two batches"
    assert set(per_domain["run_id"]) == {"batch-0"}
    assert per_domain.height == DOMAINS_PER_BATCH

    # A clean run on the same file works and leaves the survivors alone.
    domains = sandbox_domains(3)
    result = run_pipeline(instance, warehouse_url, domains)
    assert result.success
    assert set(domains) <= set(read_table(warehouse_url, "marts.company_profiles")["domain"])
    with Warehouse.open(warehouse_url, read_only=True) as wh:
        assert wh.responses(providers=["crashtest"]).height == DOMAINS_PER_BATCH * ROWS_PER_DOMAIN
