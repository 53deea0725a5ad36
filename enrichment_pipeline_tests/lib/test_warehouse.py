"""The DuckDB warehouse: migrations, the upsert rule, the cache query, the quota ledger, table swaps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib.warehouse import MIGRATIONS, QUOTA, RESPONSES, Warehouse, WarehouseError
from enrichment_pipeline_tests.conftest import response_row

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = date(2025, 1, 1)


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
        assert wh.schema_version() == MIGRATIONS[-1][0] == 1
        assert wh.migrate() == []
        for table in (RESPONSES, QUOTA, "marts.tech_changes"):
            assert wh.has_table(table), table
        wh.write_responses([response_row()])
    with Warehouse.open(warehouse_url) as wh:  # reopening migrates again: a no-op that keeps the data
        assert wh.schema_version() == 1
        assert wh.migrate() == []
        assert wh.query("SELECT count(*) AS n FROM main.schema_migrations")["n"][0] == 1
        assert wh.responses().height == 1


def test_migrate_applies_only_new_versions(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Warehouse.open(warehouse_url) as wh:
        extra = (2, "test table", ["CREATE TABLE IF NOT EXISTS raw.extra (x INTEGER)"])
        monkeypatch.setattr("enrichment_pipeline.lib.warehouse.MIGRATIONS", [*MIGRATIONS, extra])
        assert wh.migrate() == [2]
        assert wh.migrate() == []
        assert wh.schema_version() == 2
        assert wh.has_table("raw.extra")


def test_read_only_open_of_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse"):
        Warehouse.open(f"duckdb:///{tmp_path / 'missing.duckdb'}", read_only=True)


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(WarehouseError, match="unsupported WAREHOUSE_URL postgresql://"):
        Warehouse.open("postgresql://user:secret@host/db")


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


# --- fresh_keys ---------------------------------------------------------------------------------------


def test_fresh_keys_honours_expiry_mode_status_and_provider(warehouse: Warehouse) -> None:
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
            response_row("fresh-ok.example", "ok", expires_at=future, endpoint="second"),
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
    assert warehouse.fresh_keys("fake", asked, "sandbox", now) == {
        ("thing", "fresh-ok.example"),
        ("second", "fresh-ok.example"),
        ("thing", "fresh-nf.example"),
    }
    assert warehouse.fresh_keys("fake", asked, "live", now) == {("thing", "live.example")}
    assert warehouse.fresh_keys("other", asked, "sandbox", now) == {("thing", "other.example")}
    assert warehouse.fresh_keys("fake", [], "sandbox", now) == set()
    assert warehouse.fresh_keys("fake", asked, "sandbox", future + timedelta(seconds=1)) == set()


def test_fresh_keys_with_many_domains(warehouse: Warehouse) -> None:
    domains = [f"d{i}.example" for i in range(2000)]
    warehouse.write_responses([response_row(d, expires_at=T0 + timedelta(days=1)) for d in domains[::2]])
    fresh = warehouse.fresh_keys("fake", domains, "sandbox", T0)
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
    with pytest.raises(duckdb.Error):
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
