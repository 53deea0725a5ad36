"""PostgreSQL specifics: real concurrency on the quota ledger, COPY loads, connection hygiene,
password redaction, URL forms. Each test gets a fresh database (skipped without TEST_DATABASE_URL)."""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl
import psycopg
import pytest

from enrichment_pipeline.lib.warehouse import (
    MIGRATIONS,
    QUOTA,
    PostgresWarehouse,
    Warehouse,
    WarehouseError,
)
from enrichment_pipeline.lib.warehouse.postgres_backend import pyformat
from enrichment_pipeline_tests.conftest import postgres_admin, response_row, with_database

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = date(2025, 1, 1)
PASSWORD = "SENTINEL-PW-91"


def with_scheme(url: str, scheme: str) -> str:
    return scheme + "://" + url.split("://", 1)[1]


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0] or "postgres"
    return f"{scheme}://{user}:{password}@{hostpart or rest}"


def connections(server_url: str, database: str) -> int:
    with postgres_admin(server_url) as admin:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()
    return int(row[0]) if row else 0


def settle(count: Callable[[], int], at_most: int, timeout_s: float = 5.0) -> int:
    """Backends exit a moment after the client closes: poll until the count drops to at_most."""
    deadline = time.monotonic() + timeout_s
    while (n := count()) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


@pytest.fixture
def pg(postgres_url: str):
    with Warehouse.open(postgres_url) as wh:
        yield wh


# --- placeholders (no server needed) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ? , ?", "SELECT %s , %s"),
        ("SELECT '?', \"a?b\", ? -- why?\n", "SELECT '?', \"a?b\", %s -- why?\n"),
        ("SELECT '50%' WHERE x LIKE ? /* 10%? */", "SELECT '50%%' WHERE x LIKE %s /* 10%%? */"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ("SELECT $$ ? $$, $t$ ?% $t$, ?", "SELECT $$ ? $$, $t$ ?%% $t$, %s"),
        ("SELECT 5 % ?", "SELECT 5 %% %s"),
    ],
)
def test_question_marks_become_psycopg_placeholders(sql: str, expected: str) -> None:
    assert pyformat(sql) == expected


# --- URLs, errors, redaction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg", "POSTGRESQL"]
)
def test_url_forms_are_accepted(postgres_url: str, scheme: str) -> None:
    with Warehouse.open(with_scheme(postgres_url, scheme)) as wh:
        assert isinstance(wh, PostgresWarehouse)
        assert wh.schema_version() == MIGRATIONS[-1][0]
        assert wh.url.startswith("postgresql://")


def test_server_down_is_a_one_line_error_with_host_and_port(postgres_server_url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test"
    started = time.monotonic()
    with pytest.raises(WarehouseError) as caught:
        Warehouse.open(url)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "cannot connect to PostgreSQL" in message
    assert "\n" not in message
    assert_no_password(caught.value)


@pytest.mark.parametrize(
    "variant",
    ["missing-database", "bad-port", "bad-percent-escape", "bad-query-option", "percent-encoded"],
)
def test_password_never_appears_in_errors(postgres_server_url: str, variant: str) -> None:
    base = with_password(postgres_server_url, PASSWORD)
    url = {
        "missing-database": with_database(base, "ep_no_such_database"),
        "bad-port": f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/test",
        "bad-percent-escape": f"postgresql://postgres:%zz{PASSWORD}@127.0.0.1/test",
        "bad-query-option": base + f"?nonsense_option={PASSWORD}",
        "percent-encoded": with_database(with_password(postgres_server_url, "SENTINEL%2DPW%2D91"), "ep_nope"),
    }[variant]
    with pytest.raises(WarehouseError) as caught:
        Warehouse.open(url)
    assert_no_password(caught.value)


def test_password_never_appears_in_url_or_repr(postgres_url: str) -> None:
    # Trust auth accepts any password: the connection succeeds and still shows none.
    with Warehouse.open(with_password(postgres_url, PASSWORD)) as wh:
        assert PASSWORD not in wh.url
        assert PASSWORD not in repr(wh)
        assert wh.url == f"postgresql://postgres@{wh.url.split('@', 1)[1]}"
        with pytest.raises(psycopg.Error) as caught:
            wh.query("SELECT * FROM no_such_table")
        assert_no_password(caught.value)


def assert_no_password(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    assert PASSWORD not in text
    assert "SENTINEL%2DPW" not in text


def test_read_only_open_of_an_empty_database_is_a_clear_error(postgres_url: str) -> None:
    with pytest.raises(WarehouseError, match="no warehouse in postgresql://"):
        Warehouse.open(postgres_url, read_only=True)


def test_session_is_utc(pg: Warehouse) -> None:
    assert pg.query("SHOW TimeZone").item() == "UTC"
    stamp = pg.query("SELECT TIMESTAMPTZ '2025-06-01 12:00:00+02' AS t")["t"]
    assert stamp.dtype == pl.Datetime("us", "UTC")
    assert stamp.item() == datetime(2025, 6, 1, 10, tzinfo=UTC)


def test_postgres_only_types_come_back_as_text_numbers_and_lists(pg: Warehouse) -> None:
    sql = """SELECT '{"a": [1, "x"]}'::jsonb AS jb, '{"b":null}'::json AS j, 1.25::numeric AS n,
                    ARRAY['x', NULL] AS arr, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,
                    7::smallint AS small, 3::bigint AS big, DATE '2025-01-02' AS d
             WHERE ? """
    full, empty = pg.query(sql, [True]), pg.query(sql, [False])
    expected_schema = {
        "jb": pl.String,
        "j": pl.String,
        "n": pl.Float64,
        "arr": pl.List(pl.String),
        "u": pl.String,
        "small": pl.Int16,
        "big": pl.Int64,
        "d": pl.Date,
    }
    assert full.schema == pl.Schema(expected_schema) == empty.schema
    assert empty.is_empty()
    assert full.row(0) == (
        '{"a": [1, "x"]}',
        '{"b":null}',
        1.25,
        ["x", None],
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        7,
        3,
        date(2025, 1, 2),
    )


# --- quota ledger under real concurrency -----------------------------------------------------------------


def run_together(n: int, work: Callable[[int], object]) -> list[object]:
    """work(i) on n threads released at once; re-raises the first failure."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_quota_never_over_grants_under_concurrency(postgres_url: str) -> None:
    threads, block, limit = 8, 3, 50
    for day in (DAY + timedelta(days=i) for i in range(3)):  # three races, each on a fresh day

        def take_until_refused(_: int, day: date = day) -> list[int]:
            grants = []
            with Warehouse.open(postgres_url) as wh:
                while granted := wh.reserve_quota("p", day, block, limit):
                    grants.append(granted)
            return grants

        grants = [g for gs in run_together(threads, take_until_refused) for g in gs]  # type: ignore[union-attr]
        assert sum(grants) == limit
        assert sorted(grants) == [limit % block] + [block] * (limit // block)
        with Warehouse.open(postgres_url) as wh:
            assert wh.quota_used("p", day) == limit


def test_quota_reserve_and_release_from_many_connections_stay_consistent(postgres_url: str) -> None:
    def churn(_: int) -> None:
        with Warehouse.open(postgres_url) as wh:
            for _ in range(20):
                got = wh.reserve_quota("p", DAY, 2, 10)
                assert 0 <= got <= 2
                wh.release_quota("p", DAY, got)

    run_together(6, churn)
    with Warehouse.open(postgres_url) as wh:
        assert wh.quota_used("p", DAY) == 0


def test_lock_wait_bounds_how_long_a_writer_waits(postgres_url: str) -> None:
    with Warehouse.open(postgres_url) as holder, Warehouse.open(postgres_url, lock_wait_s=0.2) as waiter:
        holder.reserve_quota("p", DAY, 1, 10)
        with holder.transaction() as conn:
            conn.execute(f"SELECT * FROM {QUOTA} FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(psycopg.errors.LockNotAvailable):
                waiter.reserve_quota("p", DAY, 1, 10)
            assert time.monotonic() - started < 5
        assert waiter.reserve_quota("p", DAY, 1, 10) == 1  # usable again after the failed transaction


# --- upsert rule, set-based -----------------------------------------------------------------------------


def test_upsert_rule_on_many_keys_in_one_statement(pg: Warehouse) -> None:
    n = 2000
    pg.write_responses(
        [response_row(f"d{i}.example", "ok" if i % 2 == 0 else "error", payload={"v": 1}) for i in range(n)]
    )
    later = T0 + timedelta(hours=1)
    second = ["error", "ok", "not_found", "rate_limited"]
    pg.write_responses(
        [response_row(f"d{i}.example", second[i % 4], payload={"v": 2}, fetched_at=later) for i in range(n)]
    )
    stored = {r["domain"]: (r["status"], r["payload"]) for r in pg.responses().iter_rows(named=True)}
    assert len(stored) == n
    for i in range(n):
        first = "ok" if i % 2 == 0 else "error"
        new = second[i % 4]
        kept = new if new in ("ok", "not_found") or first not in ("ok", "not_found") else first
        payload = '{"v":2}' if kept == new else '{"v":1}'
        assert stored[f"d{i}.example"] == (kept, payload), i


def test_two_writers_keep_the_answer(postgres_url: str) -> None:
    with Warehouse.open(postgres_url) as a, Warehouse.open(postgres_url) as b:
        a.write_responses([response_row(status="ok", payload={"v": 1})])
        b.write_responses([response_row(status="error", fetched_at=T0 + timedelta(hours=1))])
        assert a.responses().select("status", "payload").row(0) == ("ok", '{"v":1}')


# --- COPY ------------------------------------------------------------------------------------------------


def test_replace_table_loads_50k_rows_with_copy(pg: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 50_000
    schema = {
        "domain": pl.String,
        "score": pl.Int32,
        "rank": pl.Int64,
        "share": pl.Float64,
        "active": pl.Boolean,
        "day": pl.Date,
        "seen": pl.Datetime("us", "UTC"),
        "tags": pl.List(pl.String),
    }
    frame = pl.DataFrame(
        {
            "domain": [f"d{i}.example" for i in range(n)],
            "score": range(n),
            "rank": [i * 1_000_003 for i in range(n)],
            "share": [i / 7 for i in range(n)],
            "active": [i % 3 == 0 for i in range(n)],
            "day": [DAY + timedelta(days=i % 400) for i in range(n)],
            "seen": [T0 + timedelta(seconds=i, microseconds=i % 1000) for i in range(n)],
            "tags": [[f"t{i % 5}", "a,b"] if i % 4 else None for i in range(n)],
        },
        schema=schema,
    )
    copies: list[str] = []
    original_copy = psycopg.Cursor.copy

    def spy(self, statement, *args, **kwargs):
        copies.append(str(statement))
        return original_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", spy)
    monkeypatch.setattr(psycopg.Cursor, "executemany", lambda *a, **k: pytest.fail("executemany used"))
    started = time.perf_counter()
    assert pg.replace_table("marts.big", frame, schema, ["domain"]) == n
    seconds = time.perf_counter() - started
    assert copies == [
        'COPY marts.big ("domain", "score", "rank", "share", "active", "day", "seen", "tags") '
        "FROM STDIN (FORMAT csv)"
    ]
    assert seconds < 10, f"50k rows took {seconds:.1f}s"
    read = pg.table("marts.big").sort("score")
    assert read.schema == pl.Schema(schema)
    assert read.equals(frame)
    # Replacing again swaps, never appends.
    assert pg.replace_table("marts.big", frame.head(10), schema, ["domain"]) == 10
    assert pg.query("SELECT count(*) AS n FROM marts.big").item() == 10


# --- connections ---------------------------------------------------------------------------------------


def test_one_connection_per_warehouse_and_none_leak(
    postgres_server_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = database_of(postgres_url)

    def count() -> int:
        return connections(postgres_server_url, database)

    Warehouse.open(postgres_url).close()  # migrated once
    baseline = settle(count, 0)
    assert baseline == 0
    opened = [Warehouse.open(postgres_url) for _ in range(3)]
    assert count() == baseline + 3  # exactly one each
    for wh in opened:
        wh.close()
    for i in range(50):
        with Warehouse.open(postgres_url, read_only=i % 2 == 1) as wh:
            wh.reserve_quota("p", DAY, 1, 100) if i % 2 == 0 else wh.quota_used("p", DAY)
            with pytest.raises(psycopg.Error):
                wh.query("SELECT * FROM no_such_table")
    # Failed opens close what they opened too.
    broken = (99, "broken", ["CREATE TABLE raw.broken (x NO_SUCH_TYPE)"])
    monkeypatch.setattr("enrichment_pipeline.lib.warehouse.schema.MIGRATIONS", [*MIGRATIONS, broken])
    for _ in range(5):
        with pytest.raises(psycopg.Error):
            Warehouse.open(postgres_url)
    assert settle(count, baseline) == baseline


def test_concurrent_first_opens_migrate_exactly_once(postgres_url: str) -> None:
    run_together(6, lambda _: Warehouse.open(postgres_url).close())
    with Warehouse.open(postgres_url) as wh:
        assert wh.query("SELECT count(*) AS n FROM schema_migrations").item() == len(MIGRATIONS)
