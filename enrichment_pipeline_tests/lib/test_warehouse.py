"""The warehouse on both backends: migrations, the upsert rule, the cache query, the quota ledger,
table swaps, type round-trips.

Every test taking `warehouse_url` or `warehouse` runs on DuckDB and on PostgreSQL (a fresh database per
test; skipped without TEST_DATABASE_URL). PostgreSQL-only behaviour lives in test_warehouse_postgres.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib.warehouse import (
    JOURNAL,
    MIGRATIONS,
    QUOTA,
    RESPONSES,
    Warehouse,
    WarehouseError,
)
from enrichment_pipeline_tests.conftest import response_row

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = date(2025, 1, 1)
DATABASE_ERRORS = (duckdb.Error, psycopg.Error)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """This module's tests run once per backend (overrides the DuckDB-only conftest fixture)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'w.duckdb'}"
    return request.getfixturevalue("postgres_url")


def stored(wh: Warehouse) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """(provider, endpoint, domain) -> (status, payload JSON)."""
    frame = wh.responses()
    return {
        (r["provider"], r["endpoint"], r["domain"]): (r["status"], r["payload"])
        for r in frame.iter_rows(named=True)
    }


# --- migrations ---------------------------------------------------------------------------------------


def test_migrate_is_idempotent(warehouse_url: str) -> None:
    with Warehouse.open(warehouse_url) as wh:
        assert wh.schema_version() == MIGRATIONS[-1][0]
        assert wh.migrate() == []
        for table in (RESPONSES, QUOTA, "marts.tech_changes"):
            assert wh.has_table(table), table
        wh.write_responses([response_row()])
    with Warehouse.open(warehouse_url) as wh:  # reopening migrates again: a no-op that keeps the data
        assert wh.schema_version() == MIGRATIONS[-1][0]
        assert wh.migrate() == []
        assert wh.query("SELECT count(*) AS n FROM schema_migrations")["n"][0] == len(MIGRATIONS)
        assert wh.responses().height == 1


def test_migrate_applies_only_new_versions(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Warehouse.open(warehouse_url) as wh:
        version = MIGRATIONS[-1][0] + 1
        extra = (version, "test table", ["CREATE TABLE IF NOT EXISTS raw.extra (x INTEGER)"])
        monkeypatch.setattr("enrichment_pipeline.lib.warehouse.schema.MIGRATIONS", [*MIGRATIONS, extra])
        assert wh.migrate() == [version]
        assert wh.migrate() == []
        assert wh.schema_version() == version
        assert wh.has_table("raw.extra")


def test_read_only_open_of_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse"):
        Warehouse.open(f"duckdb:///{tmp_path / 'missing.duckdb'}", read_only=True)


def test_duckdb_file_of_the_previous_release_still_opens(tmp_path: Path) -> None:
    """Files made before PostgreSQL support keep their version table as `main.schema_migrations`."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS main.schema_migrations "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMPTZ)"
        )
        for statement in MIGRATIONS[0][2]:
            conn.execute(statement)
        conn.execute("INSERT INTO main.schema_migrations VALUES (1, 'old', now())")
        conn.execute(f"INSERT INTO {QUOTA} VALUES ('p', DATE '2025-01-01', 3)")
    with Warehouse.open(f"duckdb:///{path}") as wh:
        assert wh.schema_version() == MIGRATIONS[-1][0]  # later migrations are applied on open
        assert wh.migrate() == []
        assert wh.quota_used("p", DAY) == 3
        assert wh.query("SELECT count(*) AS n FROM main.schema_migrations")["n"][0] == len(MIGRATIONS)


@pytest.mark.parametrize(
    "url",
    ["mysql://user:SENTINEL-PW-91@host/db", "sqlite:///tmp/x.db", "user:SENTINEL-PW-91@host/db", ""],
)
def test_unsupported_url_is_rejected_naming_the_accepted_forms(url: str) -> None:
    with pytest.raises(WarehouseError, match="unsupported WAREHOUSE_URL") as caught:
        Warehouse.open(url)
    message = str(caught.value)
    for form in ("duckdb:///", "postgresql://", "postgres://", "postgresql+psycopg2://"):
        assert form in message
    assert "SENTINEL-PW-91" not in message


# --- write_responses ----------------------------------------------------------------------------------

KEY = ("fake", "thing", "a.example")


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        ("ok", "error", "ok"),
        ("ok", "rate_limited", "ok"),
        ("ok", "quota_exhausted", "ok"),
        ("ok", "provider_unavailable", "ok"),
        ("ok", "parse_error", "ok"),
        ("not_found", "error", "not_found"),
        ("error", "ok", "ok"),
        ("error", "not_found", "not_found"),
        ("error", "rate_limited", "rate_limited"),
        ("ok", "not_found", "not_found"),
        ("not_found", "ok", "ok"),
    ],
)
def test_upsert_rule(warehouse: Warehouse, first: str, second: str, kept: str) -> None:
    warehouse.write_responses([response_row(status=first, payload={"n": 1})])
    later = T0 + timedelta(hours=1)
    warehouse.write_responses([response_row(status=second, payload={"n": 2}, fetched_at=later)])
    status, payload = stored(warehouse)[KEY]
    assert status == kept
    assert payload == ('{"n":1}' if kept == first else '{"n":2}')
    assert warehouse.responses().height == 1


def test_error_keeps_every_column_of_the_stored_answer(warehouse: Warehouse) -> None:
    good = response_row(status="ok", payload={"tech": ["nginx"]})
    warehouse.write_responses([good])
    warehouse.write_responses([replace(response_row(status="error"), run_id="run-2", attempts=4)])
    row = warehouse.responses().row(0, named=True)
    assert (row["status"], row["http_status"], row["attempts"], row["run_id"]) == ("ok", 200, 1, None)
    assert row["payload"] == '{"tech":["nginx"]}'


def test_ok_replaces_ok(warehouse: Warehouse) -> None:
    warehouse.write_responses([response_row(status="ok", payload={"v": 1})])
    n = warehouse.write_responses([response_row(status="ok", payload={"v": 2}), response_row("b.example")])
    assert n == 2
    assert stored(warehouse)[KEY] == ("ok", '{"v":2}')
    assert len(stored(warehouse)) == 2


def test_write_nothing(warehouse: Warehouse) -> None:
    assert warehouse.write_responses([]) == 0
    assert warehouse.responses().height == 0


# --- response journal ---------------------------------------------------------------------------------


def journal(wh: Warehouse) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    frame = wh.query(f"SELECT * FROM {JOURNAL}")
    return {
        (r["provider"], r["endpoint"], r["domain"]): (r["status"], r["payload"])
        for r in frame.iter_rows(named=True)
    }


@pytest.mark.parametrize(("first", "second", "kept"), [("ok", "error", "ok"), ("error", "ok", "ok")])
def test_journal_keeps_the_upsert_rule(warehouse: Warehouse, first: str, second: str, kept: str) -> None:
    warehouse.journal_responses([response_row(status=first, payload={"n": 1})])
    warehouse.journal_responses([response_row(status=second, payload={"n": 2})])
    assert journal(warehouse)[KEY][0] == kept
    assert warehouse.responses().height == 0  # readers of the table see nothing yet


def test_promote_moves_whole_domains_only(warehouse: Warehouse) -> None:
    warehouse.write_responses([response_row("a.example", provider="p1", payload={"old": True})])
    warehouse.journal_responses(
        [
            response_row("a.example", provider="p1", payload={"new": True}),
            response_row("a.example", provider="p2"),
            response_row("b.example", provider="p1"),
        ]
    )
    assert warehouse.journaled_domains() == {"a.example", "b.example"}
    assert warehouse.journaled_domains(["b.example", "c.example"]) == {"b.example"}
    assert warehouse.promote_responses(["a.example", "c.example"]) == 2
    assert stored(warehouse) == {
        ("p1", "thing", "a.example"): ("ok", '{"new":true}'),
        ("p2", "thing", "a.example"): ("ok", None),
    }
    assert set(journal(warehouse)) == {("p1", "thing", "b.example")}
    assert warehouse.promote_responses([]) == 0
    assert warehouse.promote_responses(["a.example"]) == 0  # again: nothing left to move


def test_promoted_error_never_replaces_a_stored_answer(warehouse: Warehouse) -> None:
    warehouse.write_responses([response_row(status="ok", payload={"good": 1})])
    warehouse.journal_responses([response_row(status="error")])
    warehouse.promote_responses(["a.example"])
    assert stored(warehouse)[KEY] == ("ok", '{"good":1}')
    assert journal(warehouse) == {}


def test_complete_writes_journaled_and_new_answers_together(warehouse: Warehouse) -> None:
    warehouse.journal_responses([response_row("a.example", provider="p1", payload={"from": "journal"})])
    n = warehouse.complete_responses(
        ["a.example", "b.example"],
        [response_row("a.example", provider="p2"), response_row("b.example", provider="p1")],
    )
    assert n == 3
    assert set(stored(warehouse)) == {
        ("p1", "thing", "a.example"),
        ("p2", "thing", "a.example"),
        ("p1", "thing", "b.example"),
    }
    assert journal(warehouse) == {}


def test_a_failed_completion_leaves_the_domain_in_the_journal(warehouse: Warehouse) -> None:
    """One transaction: if writing the new rows fails, the journaled ones are not moved either."""
    warehouse.journal_responses([response_row("a.example", provider="p1")])
    bad = replace(response_row("a.example", provider="p2"), payload=object())  # not JSON-able
    with pytest.raises(TypeError):
        warehouse.complete_responses(["a.example"], [bad])
    assert stored(warehouse) == {}
    assert set(journal(warehouse)) == {("p1", "thing", "a.example")}


def test_read_only_lookups_on_a_file_from_before_the_journal(tmp_path: Path) -> None:
    """The CLI reads the cache read-only before any run migrates an older DuckDB file."""
    url = f"duckdb:///{tmp_path / 'old.duckdb'}"
    fresh = T0 + timedelta(days=30)
    with Warehouse.open(url) as wh:
        wh.write_responses([response_row("a.example", payload={"v": 1}, expires_at=fresh)])
        # Back to the schema before the journal: no journal, no later column, no later versions.
        journal_version = next(v for v, what, _ in MIGRATIONS if "journal" in what)
        wh.query(f"DROP TABLE {JOURNAL}")
        wh.query(f"ALTER TABLE {RESPONSES} DROP COLUMN wait_ms")
        wh.query(f"DELETE FROM schema_migrations WHERE version >= {journal_version}")
    with Warehouse.open(url, read_only=True) as ro:
        keys, payloads = ro.fresh_answers("fake", ["a.example"], "sandbox", T0)
        assert keys == {("thing", "a.example")}
        assert payloads == {"a.example": {"thing": {"v": 1}}}
        assert ro.journaled_domains(["a.example"]) == set()
    with Warehouse.open(url) as wh:  # the next write-open migrates
        assert wh.has_table(JOURNAL)


def test_a_run_corrects_its_own_journaled_answer(warehouse: Warehouse) -> None:
    """An answer found unreadable once its domain was whole replaces the same run's `ok` row;
    another run's failure never replaces a stored answer."""
    mine = replace(response_row(status="ok", payload={"v": 1}), run_id="run-1")
    warehouse.journal_responses([mine])
    warehouse.journal_responses([replace(response_row(status="error"), run_id="run-2")])
    assert journal(warehouse)[KEY][0] == "ok"
    warehouse.journal_responses([replace(response_row(status="parse_error"), run_id="run-1")])
    assert journal(warehouse)[KEY] == ("parse_error", None)


def test_fresh_lookups_read_journaled_answers(warehouse: Warehouse) -> None:
    """What a stopped run received is cache for the next run, newest first."""
    fresh = T0 + timedelta(days=30)
    warehouse.write_responses(
        [
            response_row("a.example", payload={"v": "table"}, expires_at=fresh),
            response_row("c.example", payload={"v": "table"}, expires_at=fresh),
        ]
    )
    warehouse.journal_responses(
        [
            response_row("a.example", payload={"v": "journal"}, expires_at=fresh),
            response_row("b.example", status="not_found", expires_at=fresh),
            response_row("c.example", status="error"),  # not an answer: the table's stays
            response_row("d.example", status="error"),
        ]
    )
    domains = ["a.example", "b.example", "c.example", "d.example"]
    keys, payloads = warehouse.fresh_answers("fake", domains, "sandbox", T0)
    assert keys == {("thing", "a.example"), ("thing", "b.example"), ("thing", "c.example")}
    assert payloads == {"a.example": {"thing": {"v": "journal"}}, "c.example": {"thing": {"v": "table"}}}


def test_responses_filters(warehouse: Warehouse) -> None:
    warehouse.write_responses(
        [
            response_row("a.example", provider="p1", mode="sandbox"),
            response_row("a.example", provider="p2", mode="live"),
            response_row("b.example", provider="p2", mode="sandbox"),
        ]
    )
    assert warehouse.responses(["p2"]).height == 2
    assert warehouse.responses(mode="sandbox").height == 2
    assert warehouse.responses(["p2"], "live")["domain"].to_list() == ["a.example"]


@pytest.mark.parametrize(
    ("batch", "kept"),
    [
        ([("error", None), ("ok", {"v": 1})], ("ok", '{"v":1}')),
        ([("ok", {"v": 1}), ("ok", {"v": 2})], ("ok", '{"v":2}')),
    ],
    ids=["error-then-ok", "ok-then-newer-ok"],
)
def test_duplicate_keys_in_one_batch(warehouse: Warehouse, batch, kept) -> None:
    rows = [
        response_row(status=status, payload=payload, fetched_at=T0 + timedelta(minutes=i))
        for i, (status, payload) in enumerate(batch)
    ]
    warehouse.write_responses(rows)
    assert stored(warehouse)[KEY] == kept


# --- fresh_answers ------------------------------------------------------------------------------------


def fresh_keys(
    wh: Warehouse, provider: str, domains: list[str], mode: str, now: datetime
) -> set[tuple[str, str]]:
    return wh.fresh_answers(provider, domains, mode, now)[0]


def test_fresh_answers_honour_expiry_mode_status_and_provider(warehouse: Warehouse) -> None:
    now = T0 + timedelta(days=1)
    future, past = now + timedelta(days=3), now - timedelta(seconds=1)
    warehouse.write_responses(
        [
            response_row("fresh-ok.example", "ok", expires_at=future),
            response_row("fresh-nf.example", "not_found", expires_at=future),
            response_row("expired.example", "ok", expires_at=past),
            response_row("at-now.example", "ok", expires_at=now),
            response_row("error.example", "error", expires_at=future),
            response_row("pending.example", "pending", expires_at=future),
            response_row("live.example", "ok", expires_at=future, mode="live"),
            response_row("other.example", "ok", expires_at=future, provider="other"),
            response_row("unasked.example", "ok", expires_at=future),
            response_row("fresh-ok.example", "ok", expires_at=future, endpoint="second", payload={"v": 2}),
            response_row(
                "fresh-nf.example", "not_found", expires_at=future, endpoint="second", payload={"v": 3}
            ),
        ]
    )
    asked = [
        "fresh-ok.example",
        "fresh-nf.example",
        "expired.example",
        "at-now.example",
        "error.example",
        "pending.example",
        "live.example",
        "other.example",
        "missing.example",
    ]
    assert warehouse.fresh_answers("fake", asked, "sandbox", now) == (
        {
            ("thing", "fresh-ok.example"),
            ("second", "fresh-ok.example"),
            ("thing", "fresh-nf.example"),
            ("second", "fresh-nf.example"),
        },
        {"fresh-ok.example": {"second": {"v": 2}}},  # payloads of `ok` answers only
    )
    assert fresh_keys(warehouse, "fake", asked, "live", now) == {("thing", "live.example")}
    assert fresh_keys(warehouse, "other", asked, "sandbox", now) == {("thing", "other.example")}
    assert fresh_keys(warehouse, "fake", [], "sandbox", now) == set()
    assert fresh_keys(warehouse, "fake", asked, "sandbox", future + timedelta(seconds=1)) == set()


def test_fresh_answers_with_many_domains(warehouse: Warehouse) -> None:
    domains = [f"d{i}.example" for i in range(2000)]
    warehouse.write_responses([response_row(d, expires_at=T0 + timedelta(days=1)) for d in domains[::2]])
    fresh = fresh_keys(warehouse, "fake", domains, "sandbox", T0)
    assert fresh == {("thing", d) for d in domains[::2]}


# --- quota ledger -------------------------------------------------------------------------------------


def test_reserve_quota_never_grants_beyond_the_limit(warehouse: Warehouse) -> None:
    grants = [warehouse.reserve_quota("p", DAY, 4, 10) for _ in range(4)]
    assert grants == [4, 4, 2, 0]
    assert warehouse.quota_used("p", DAY) == 10
    warehouse.release_quota("p", DAY, 3)
    assert warehouse.quota_used("p", DAY) == 7
    assert warehouse.reserve_quota("p", DAY, 5, 10) == 3
    assert warehouse.reserve_quota("p", DAY, 1, 10) == 0
    # Other days and providers have their own counts.
    assert warehouse.reserve_quota("p", DAY + timedelta(days=1), 4, 10) == 4
    assert warehouse.reserve_quota("q", DAY, 4, 10) == 4
    assert warehouse.quota_used("p", DAY) == 10
    assert warehouse.quota_used("nobody", DAY) == 0


def test_release_never_goes_below_zero(warehouse: Warehouse) -> None:
    assert warehouse.reserve_quota("p", DAY, 2, 10) == 2
    warehouse.release_quota("p", DAY, 5)
    assert warehouse.quota_used("p", DAY) == 0
    warehouse.release_quota("never-reserved", DAY, 5)
    assert warehouse.quota_used("never-reserved", DAY) == 0


def test_limit_lowered_below_usage_grants_nothing(warehouse: Warehouse) -> None:
    assert warehouse.reserve_quota("p", DAY, 8, 10) == 8
    assert warehouse.reserve_quota("p", DAY, 1, 5) == 0
    assert warehouse.quota_used("p", DAY) == 8


def test_quota_is_shared_by_warehouse_objects_in_sequence(warehouse_url: str) -> None:
    with Warehouse.open(warehouse_url) as first:
        assert first.reserve_quota("p", DAY, 6, 10) == 6
    with Warehouse.open(warehouse_url) as second:
        assert second.quota_used("p", DAY) == 6
        assert second.reserve_quota("p", DAY, 6, 10) == 4
        assert second.reserve_quota("p", DAY, 6, 10) == 0


def test_quota_is_shared_by_two_open_warehouse_objects(warehouse_url: str) -> None:
    with Warehouse.open(warehouse_url) as first, Warehouse.open(warehouse_url) as second:
        assert first.reserve_quota("p", DAY, 6, 10) == 6
        assert second.reserve_quota("p", DAY, 6, 10) == 4
        assert first.reserve_quota("p", DAY, 1, 10) == 0
        assert first.quota_used("p", DAY) == second.quota_used("p", DAY) == 10


_ops = st.lists(st.tuples(st.sampled_from(["reserve", "release"]), st.integers(0, 7)), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, limit=st.integers(0, 20))
def test_quota_ledger_matches_a_simple_model(warehouse: Warehouse, ops, limit: int) -> None:
    provider = "p"
    warehouse.query(f"DELETE FROM {QUOTA}")  # a fresh ledger per example
    used = 0
    for op, n in ops:
        if op == "reserve":
            granted = warehouse.reserve_quota(provider, DAY, n, limit)
            assert granted == max(0, min(n, limit - used))
            used += granted
        else:
            warehouse.release_quota(provider, DAY, n)
            used = max(0, used - n)
        assert 0 <= warehouse.quota_used(provider, DAY) == used <= max(limit, 0)


# --- replace_table ------------------------------------------------------------------------------------

SCHEMA = {"domain": pl.String, "score": pl.Int32, "seen": pl.Datetime("us", "UTC")}


def frame(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"domain": [d for d, _ in rows], "score": [s for _, s in rows], "seen": [T0] * len(rows)},
        schema=SCHEMA,
    )


def contents(wh: Warehouse) -> list[tuple[str, int]]:
    return sorted(wh.table("marts.scores").select("domain", "score").rows())


def test_replace_table_swaps_contents(warehouse: Warehouse) -> None:
    assert warehouse.replace_table("marts.scores", frame([("a", 1), ("b", 2)]), SCHEMA, ["domain"]) == 2
    assert contents(warehouse) == [("a", 1), ("b", 2)]
    assert warehouse.replace_table("marts.scores", frame([("c", 3)]), SCHEMA, ["domain"]) == 1
    assert contents(warehouse) == [("c", 3)]
    # Extra columns in the frame are dropped; the schema decides.
    extra = frame([("d", 4)]).with_columns(pl.lit("x").alias("ignored"))
    warehouse.replace_table("marts.scores", extra, SCHEMA, ["domain"])
    assert contents(warehouse) == [("d", 4)]
    assert warehouse.replace_table("marts.scores", frame([]), SCHEMA, ["domain"]) == 0
    assert contents(warehouse) == []


@pytest.mark.parametrize(
    "old",
    [
        pytest.param({"domain": pl.String, "seen": SCHEMA["seen"]}, id="column-added"),
        pytest.param({**SCHEMA, "gone": pl.String}, id="column-removed"),
        pytest.param(
            {"score": pl.Int32, "domain": pl.String, "seen": SCHEMA["seen"]}, id="columns-reordered"
        ),
        pytest.param({**SCHEMA, "score": pl.String}, id="column-retyped"),
    ],
)
def test_replace_table_recreates_a_table_whose_columns_changed(
    warehouse: Warehouse, old: dict[str, pl.DataType]
) -> None:
    warehouse.replace_table("marts.scores", pl.DataFrame(schema=old), old, ["domain"])
    assert warehouse.replace_table("marts.scores", frame([("a", 1)]), SCHEMA, ["domain"]) == 1
    assert warehouse.table("marts.scores").schema == pl.Schema(SCHEMA)
    assert contents(warehouse) == [("a", 1)]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(frame([("a", 9), ("a", 10)]), id="duplicate-primary-key"),
        pytest.param(
            pl.DataFrame({"domain": ["z"], "score": ["not a number"], "seen": [T0]}), id="uncastable-value"
        ),
        pytest.param(
            pl.DataFrame({"domain": [None], "score": [1], "seen": [T0]}, schema=SCHEMA), id="null-key"
        ),
    ],
)
def test_failed_replace_leaves_old_contents(warehouse: Warehouse, bad: pl.DataFrame) -> None:
    warehouse.replace_table("marts.scores", frame([("a", 1), ("b", 2)]), SCHEMA, ["domain"])
    with pytest.raises(DATABASE_ERRORS):
        warehouse.replace_table("marts.scores", bad, SCHEMA, ["domain"])
    assert contents(warehouse) == [("a", 1), ("b", 2)]
    # The connection is usable again: no transaction left open.
    warehouse.write_responses([response_row()])
    assert warehouse.responses().height == 1
    warehouse.replace_table("marts.scores", frame([("c", 3)]), SCHEMA, ["domain"])
    assert contents(warehouse) == [("c", 3)]


def test_failed_response_write_changes_nothing(warehouse: Warehouse) -> None:
    warehouse.write_responses([response_row(status="ok", payload={"v": 1})])
    bad = replace(response_row("b.example"), payload={1, 2})  # a set is not JSON
    with pytest.raises(TypeError):
        warehouse.write_responses([response_row(status="ok", payload={"v": 2}), bad])
    assert stored(warehouse) == {KEY: ("ok", '{"v":1}')}


# --- transactions -------------------------------------------------------------------------------------


def test_nested_transaction_joins_the_outer_one(warehouse: Warehouse) -> None:
    with pytest.raises(RuntimeError, match="boom"), warehouse.transaction():
        warehouse.write_responses([response_row("a.example")])
        with warehouse.transaction():  # joins: its "commit" is the outer one's
            warehouse.write_responses([response_row("b.example")])
            warehouse.replace_table("marts.scores", frame([("a", 1)]), SCHEMA, ["domain"])
        warehouse.replace_table("marts.scores", frame([("b", 2)]), SCHEMA, ["domain"])
        raise RuntimeError("boom")
    assert warehouse.responses().is_empty()
    assert not warehouse.has_table("marts.scores")
    with warehouse.transaction():
        warehouse.write_responses([response_row("a.example")])
        with warehouse.transaction():
            warehouse.write_responses([response_row("b.example")])
        warehouse.replace_table("marts.scores", frame([("a", 1)]), SCHEMA, ["domain"])
        warehouse.replace_table("marts.scores", frame([("b", 2)]), SCHEMA, ["domain"])
    assert sorted(warehouse.responses()["domain"]) == ["a.example", "b.example"]
    assert contents(warehouse) == [("b", 2)]


# --- types and queries --------------------------------------------------------------------------------

ALL_TYPES = {
    "s": pl.String,
    "i32": pl.Int32,
    "i64": pl.Int64,
    "f": pl.Float64,
    "b": pl.Boolean,
    "d": pl.Date,
    "ts": pl.Datetime("us", "UTC"),
    "tags": pl.List(pl.String),
}
AWKWARD_TEXT = ['{"k":"v, \\"q\\""}', "", "NULL", 'comma, quote " back\\slash', "line\nbreak", "ünïcødé ✓"]


def all_types_frame() -> pl.DataFrame:
    n = len(AWKWARD_TEXT)
    return pl.DataFrame(
        {
            "s": AWKWARD_TEXT,
            "i32": [2**31 - 1, -(2**31), 0, None, 7, 8],
            "i64": [2**62, -(2**62), None, 0, 1, 2],
            "f": [0.1, -1e300, None, 1 / 3, float("inf"), 2.5],
            "b": [True, False, None, True, False, True],
            "d": [date(1999, 12, 31), date(2025, 1, 1), None, date(1970, 1, 1), date(2100, 2, 28), DAY],
            "ts": [T0 + timedelta(microseconds=123_456 * i, days=i) for i in range(n - 1)] + [None],
            "tags": [["a", "b,c"], [], None, ['q"x', "back\\slash", "", "NULL"], [None, "z"], ["ünï"]],
        },
        schema=ALL_TYPES,
    )


def test_every_column_type_round_trips(warehouse: Warehouse) -> None:
    written = all_types_frame()
    assert warehouse.replace_table("marts.types", written, ALL_TYPES) == written.height
    read = warehouse.table("marts.types")
    assert read.schema == pl.Schema(ALL_TYPES)
    assert read.sort("i64", nulls_last=True).equals(written.sort("i64", nulls_last=True))


def test_an_unchanged_table_is_never_dropped(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a changed schema recreates a table (on PostgreSQL that drops the dbt views over it)."""
    warehouse.replace_table("marts.types", all_types_frame(), ALL_TYPES)
    statements: list[str] = []
    execute = warehouse._execute

    def recording(sql: str, params=()):
        statements.append(sql)
        return execute(sql, params)

    monkeypatch.setattr(warehouse, "_execute", recording)
    warehouse.replace_table("marts.types", all_types_frame(), ALL_TYPES)
    assert statements and not [s for s in statements if s.lstrip().upper().startswith("DROP TABLE")]


def test_empty_results_keep_their_column_types(warehouse: Warehouse) -> None:
    warehouse.replace_table("marts.types", all_types_frame().clear(), ALL_TYPES)
    assert warehouse.table("marts.types").schema == pl.Schema(ALL_TYPES)
    responses = warehouse.responses()
    assert responses.is_empty()
    assert responses.schema["fetched_at"] == pl.Datetime("us", "UTC")
    assert responses.schema["http_status"] == pl.Int32
    assert responses.schema["payload"] == pl.String
    empty = warehouse.query(
        f"SELECT domain, count(*) AS n FROM {RESPONSES} WHERE domain = ? GROUP BY 1", ["x"]
    )
    assert empty.schema == pl.Schema({"domain": pl.String, "n": pl.Int64})


def test_response_payloads_and_timestamps_round_trip(warehouse: Warehouse) -> None:
    payload = {
        "tech": ["nginx", "Ünïcode ✓"],
        "quote": 'say "hi", ok?',
        "nested": {"n": None, "x": [1.5, True]},
    }
    fetched = datetime(2025, 3, 4, 5, 6, 7, 891_011, tzinfo=UTC)
    row = replace(response_row(payload=payload, fetched_at=fetched), run_id="run-1")
    warehouse.write_responses([row, replace(response_row("none.example"), http_status=None, latency_ms=None)])
    stored_rows = {r["domain"]: r for r in warehouse.responses().iter_rows(named=True)}
    got = stored_rows["a.example"]
    assert json.loads(got["payload"]) == payload
    assert got["payload"] == json.dumps(payload, separators=(",", ":"))
    assert got["fetched_at"] == fetched and got["fetched_at"].tzinfo is not None
    assert got["run_id"] == "run-1"
    none = stored_rows["none.example"]
    assert (none["payload"], none["http_status"], none["latency_ms"], none["run_id"]) == (
        None,
        None,
        None,
        None,
    )


def test_query_placeholders_and_literals(warehouse: Warehouse) -> None:
    warehouse.write_responses([response_row("a.example"), response_row("b.example", provider="p%q")])
    result = warehouse.query(
        f"SELECT domain, 'what?' AS q, '100%' AS pct FROM {RESPONSES} "
        "WHERE provider LIKE ? AND domain <> ? -- a comment? with 50% \n ORDER BY domain",
        ["p%", "x?"],
    )
    assert result.rows() == [("b.example", "what?", "100%")]
    assert warehouse.query("SELECT '50%' AS pct, ? AS n", [3]).rows() == [("50%", 3)]
    assert warehouse.query("SELECT '50%' AS pct").rows() == [("50%",)]
    assert warehouse.query(f"SELECT domain FROM {RESPONSES} ORDER BY domain LIMIT ?", [1]).rows() == [
        ("a.example",)
    ]
    assert warehouse.query(f"DELETE FROM {RESPONSES} WHERE domain = ?", ["a.example"]) is not None
    assert warehouse.responses()["domain"].to_list() == ["b.example"]


def test_read_only_open_reads_but_does_not_write(warehouse_url: str) -> None:
    with Warehouse.open(warehouse_url) as wh:
        wh.write_responses([response_row()])
    with Warehouse.open(warehouse_url, read_only=True) as ro:
        assert ro.responses().height == 1
        assert ro.schema_version() == MIGRATIONS[-1][0]
        with pytest.raises(DATABASE_ERRORS):
            ro.write_responses([response_row("b.example")])
        assert ro.responses().height == 1
