"""The PostgreSQL warehouse under concurrent runs, made deterministic: two connections forced
into the interleavings that concurrent runs produce by chance.

- Two raw steps upserting overlapping domains in different orders (no pool: CLI runs, or a
  pool limit above one) must queue, not deadlock.
- Two runs rebuilding the same derived table (CREATE IF NOT EXISTS, DELETE, INSERT) must take
  turns, not fail on a duplicate key.
- A derived step reads tables, computes, and replaces a table: `WarehouseResource.open()` holds
  the derived-tables lock so two such steps never interleave; the raw step holds the fetch lock
  instead, so two fetches never overlap and a fetch never waits for a rebuild. (A DuckDB file
  has one writer at a time anyway: both locks are PostgreSQL advisory locks.)
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse

pytestmark = pytest.mark.postgres

SCHEMA = {"domain": pl.String(), "n": pl.Int64()}


def _rows(n: int, tag: str, *, reverse: bool) -> list[ResponseRow]:
    now = datetime.now(UTC)
    rows = [
        ResponseRow(
            "concurrency", "e", f"d{i}.example", "ok", 200, {"i": i}, None,
            now, now + timedelta(days=1), 1, 1.0, 0.0, "sandbox", tag,
        )
        for i in range(n)
    ]  # fmt: skip
    return rows[::-1] if reverse else rows


def _together(*targets) -> list[BaseException]:
    """Run the callables in threads at the same moment; the exceptions they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target):
        def run():
            try:
                target(barrier)
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_concurrent_upserts_of_the_same_domains_queue_instead_of_deadlocking(postgres_url):
    Warehouse.open(postgres_url).close()
    n = 20_000  # one big flush each, same keys, opposite orders: the worst case for row locks

    def writer(reverse: bool):
        def run(barrier: threading.Barrier) -> None:
            with Warehouse.open(postgres_url) as wh:
                rows = _rows(n, f"writer-{reverse}", reverse=reverse)
                barrier.wait()
                wh.write_responses(rows)

        return run

    errors = _together(writer(False), writer(True))
    assert not errors, f"concurrent upserts failed: {errors!r}"
    with Warehouse.open(postgres_url, read_only=True) as wh:
        assert wh.responses(providers=["concurrency"]).height == n


@pytest.mark.parametrize("table_exists", [False, True], ids=["new-table", "existing-table"])
def test_concurrent_rebuilds_of_one_table_take_turns(postgres_url, table_exists):
    table = "marts.concurrency_probe"
    if table_exists:
        with Warehouse.open(postgres_url) as wh:
            wh.replace_table(table, pl.DataFrame({"domain": ["a", "b"], "n": [0, 0]}), SCHEMA, ("domain",))
    else:
        Warehouse.open(postgres_url).close()
    replaced = threading.Event()

    def first(barrier: threading.Barrier) -> None:
        barrier.wait()
        # Replace inside a longer transaction (as the history asset does): still uncommitted
        # while the second rebuild starts.
        with Warehouse.open(postgres_url) as wh, wh.transaction():
            wh.replace_table(
                table, pl.DataFrame({"domain": ["a", "b", "c"], "n": [1, 1, 1]}), SCHEMA, ("domain",)
            )
            replaced.set()
            time.sleep(0.5)

    def second(barrier: threading.Barrier) -> None:
        barrier.wait()
        assert replaced.wait(30)
        with Warehouse.open(postgres_url) as wh:
            wh.replace_table(
                table, pl.DataFrame({"domain": ["a", "b", "c"], "n": [2, 2, 2]}), SCHEMA, ("domain",)
            )

    errors = _together(first, second)
    assert not errors, f"concurrent rebuilds collided: {errors!r}"
    with Warehouse.open(postgres_url, read_only=True) as wh:
        assert wh.table(table).sort("domain").rows() == [("a", 2), ("b", 2), ("c", 2)]


def _opens_in_turn(open_first, open_second) -> tuple[bool, float]:
    """Hold `open_first()` for 0.6 s while a thread calls `open_second()`: whether the second
    waited for the first to close, and how long it took."""
    holder = open_first()
    took: list[float] = []

    def run() -> None:
        started = time.monotonic()
        with open_second():
            took.append(time.monotonic() - started)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.6)
        waited = not took
    finally:
        holder.close()
    thread.join(30)
    assert took, "the second open never returned"
    return waited, took[0]
