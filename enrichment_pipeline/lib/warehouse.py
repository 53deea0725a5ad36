"""The warehouse: versioned DDL, idempotent writes, the quota ledger.

DuckDB (a file, the default) and PostgreSQL share the same tables and columns.
Every write that touches a set of domains deletes and inserts their rows in one
transaction, so a run killed at any point leaves each domain either as it was
or fully replaced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

RESPONSES = "raw.provider_responses"
QUOTA = "raw.provider_quota"
ANSWERED = ("ok", "not_found")

# Each migration runs once, in order, inside one transaction; never edit a
# released one — add the next version instead.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "raw responses, quota ledger, staging and marts",
        [
            "CREATE SCHEMA IF NOT EXISTS raw",
            "CREATE SCHEMA IF NOT EXISTS staging",
            "CREATE SCHEMA IF NOT EXISTS marts",
            f"""CREATE TABLE IF NOT EXISTS {RESPONSES} (
                provider VARCHAR NOT NULL,
                endpoint VARCHAR NOT NULL,
                domain VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                http_status INTEGER,
                payload VARCHAR,
                detail VARCHAR,
                fetched_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                attempts INTEGER NOT NULL,
                latency_ms DOUBLE PRECISION,
                cost_usd DOUBLE PRECISION NOT NULL,
                mode VARCHAR NOT NULL,
                run_id VARCHAR,
                PRIMARY KEY (provider, endpoint, domain)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {QUOTA} (
                provider VARCHAR NOT NULL,
                day DATE NOT NULL,
                calls INTEGER NOT NULL,
                PRIMARY KEY (provider, day)
            )""",
            """CREATE TABLE IF NOT EXISTS marts.tech_changes (
                domain VARCHAR NOT NULL,
                technology VARCHAR NOT NULL,
                change VARCHAR NOT NULL,
                seen_at TIMESTAMPTZ NOT NULL,
                provider VARCHAR NOT NULL
            )""",
        ],
    ),
]


@dataclass(frozen=True)
class ResponseRow:
    """One current answer of one provider endpoint for one domain."""

    provider: str
    endpoint: str
    domain: str
    status: str
    http_status: int | None
    payload: Any
    detail: str | None
    fetched_at: datetime
    expires_at: datetime
    attempts: int
    latency_ms: float | None
    cost_usd: float
    mode: str
    run_id: str | None = None


class WarehouseError(RuntimeError):
    pass


def duckdb_path(url: str) -> Path:
    if not url.startswith("duckdb:///"):
        raise WarehouseError(
            f"unsupported WAREHOUSE_URL {url.split('://')[0]}://…: use duckdb:///path/file.duckdb"
        )
    return Path(url.removeprefix("duckdb:///"))


class Warehouse:
    """One connection to the warehouse; open with `Warehouse.open(url)`."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, url: str) -> None:
        self._conn = conn
        self.url = url
        self._depth = 0

    @classmethod
    def open(cls, url: str, *, read_only: bool = False, lock_wait_s: float = 600.0) -> Warehouse:
        path = duckdb_path(url)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise WarehouseError(f"no warehouse at {path}: run `enrichment-pipeline enrich` first")
        deadline = time.monotonic() + lock_wait_s
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                # Another process holds the single DuckDB writer lock: wait, don't fail.
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseError(f"cannot open {path.name}: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        conn.execute("SET TimeZone = 'UTC'")
        warehouse = cls(conn, url)
        if not read_only:
            warehouse.migrate()
        return warehouse

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction; nested uses join the outer one (DuckDB has no savepoints)."""
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

    # -- schema ---------------------------------------------------------------

    def migrate(self) -> list[int]:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS main.schema_migrations "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMPTZ)"
        )
        done = {v for (v,) in self._conn.execute("SELECT version FROM main.schema_migrations").fetchall()}
        applied = []
        for version, description, statements in MIGRATIONS:
            if version in done:
                continue
            with self.transaction() as tx:
                for statement in statements:
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO main.schema_migrations VALUES (?, ?, ?)",
                    [version, description, datetime.now(UTC)],
                )
            applied.append(version)
        return applied

    def schema_version(self) -> int:
        row = self._conn.execute("SELECT max(version) FROM main.schema_migrations").fetchall()[0]
        return int(row[0] or 0)

    # -- raw responses --------------------------------------------------------

    def fresh_keys(
        self, provider: str, domains: Sequence[str], mode: str, now: datetime
    ) -> set[tuple[str, str]]:
        """(endpoint, domain) pairs whose stored answer is still within its TTL."""
        if not domains:
            return set()
        self._conn.register("wanted", pl.DataFrame({"domain": list(domains)}).to_arrow())
        try:
            rows = self._conn.execute(
                f"""SELECT r.endpoint, r.domain FROM {RESPONSES} r JOIN wanted w USING (domain)
                    WHERE r.provider = ? AND r.mode = ? AND r.expires_at > ?
                      AND r.status IN ('ok', 'not_found')""",
                [provider, mode, now],
            ).fetchall()
        finally:
            self._conn.unregister("wanted")
        return {(e, d) for e, d in rows}

    def write_responses(self, rows: Iterable[ResponseRow]) -> int:
        """Upsert in one transaction. Only an answer (ok, not_found) replaces a
        stored answer: after an error, a quota stop or a "queued" (pending)
        reply the last good data stays usable."""
        # One row per key (the last wins): DuckDB applies only the first of several in one INSERT.
        frame = _responses_frame(rows).unique(list(_RESPONSE_KEY), keep="last", maintain_order=True)
        if frame.is_empty():
            return 0
        columns = ", ".join(frame.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in frame.columns if c not in _RESPONSE_KEY)
        with self.transaction() as tx:
            tx.register("incoming", frame.to_arrow())
            tx.execute(
                f"""INSERT INTO {RESPONSES} ({columns}) SELECT {columns} FROM incoming
                    ON CONFLICT (provider, endpoint, domain) DO UPDATE SET {updates}
                    WHERE excluded.status IN ('ok', 'not_found')
                       OR provider_responses.status NOT IN ('ok', 'not_found')"""
            )
            tx.unregister("incoming")
        return frame.height

    def responses(self, providers: Sequence[str] | None = None, mode: str | None = None) -> pl.DataFrame:
        where, args = [], []
        if providers:
            where.append(f"provider IN ({', '.join('?' for _ in providers)})")
            args.extend(providers)
        if mode:
            where.append("mode = ?")
            args.append(mode)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._frame(f"SELECT * FROM {RESPONSES} {clause}", args)

    # -- quota ledger ---------------------------------------------------------

    def reserve_quota(self, provider: str, day: date, want: int, limit: int) -> int:
        """Atomically take up to `want` calls of today's quota; returns how many."""
        with self.transaction() as tx:
            tx.execute(f"INSERT INTO {QUOTA} VALUES (?, ?, 0) ON CONFLICT DO NOTHING", [provider, day])
            (used,) = tx.execute(
                f"SELECT calls FROM {QUOTA} WHERE provider = ? AND day = ?", [provider, day]
            ).fetchall()[0]
            granted = max(0, min(want, limit - used))
            if granted:
                tx.execute(
                    f"UPDATE {QUOTA} SET calls = calls + ? WHERE provider = ? AND day = ?",
                    [granted, provider, day],
                )
        return granted

    def release_quota(self, provider: str, day: date, count: int) -> None:
        with self.transaction() as tx:
            tx.execute(
                f"UPDATE {QUOTA} SET calls = greatest(0, calls - ?) WHERE provider = ? AND day = ?",
                [count, provider, day],
            )

    def quota_used(self, provider: str, day: date) -> int:
        rows = self._conn.execute(
            f"SELECT calls FROM {QUOTA} WHERE provider = ? AND day = ?", [provider, day]
        ).fetchall()
        return int(rows[0][0]) if rows else 0

    # -- derived tables ---------------------------------------------------------

    def replace_table(
        self, table: str, frame: pl.DataFrame, schema: dict[str, pl.DataType], primary_key: Sequence[str] = ()
    ) -> int:
        """Swap a whole derived table's contents in one transaction."""
        frame = frame.select(list(schema))
        with self.transaction() as tx:
            tx.execute(create_table_sql(table, schema, primary_key))
            tx.execute(f"DELETE FROM {table}")
            if frame.height:
                tx.register("incoming", frame.to_arrow())
                names = ", ".join(f'"{c}"' for c in schema)
                tx.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming")
                tx.unregister("incoming")
        return frame.height

    def table(self, table: str) -> pl.DataFrame:
        return self._frame(f"SELECT * FROM {table}")

    def has_table(self, table: str) -> bool:
        schema, name = table.split(".")
        row = self._conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()[0]
        return bool(row and row[0])

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        return self._conn.sql(sql, params=list(params) or None).pl()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        return self._frame(sql, params)


_RESPONSE_KEY = ("provider", "endpoint", "domain")
_RESPONSE_SCHEMA = {
    "provider": pl.String,
    "endpoint": pl.String,
    "domain": pl.String,
    "status": pl.String,
    "http_status": pl.Int32,
    "payload": pl.String,
    "detail": pl.String,
    "fetched_at": pl.Datetime("us", "UTC"),
    "expires_at": pl.Datetime("us", "UTC"),
    "attempts": pl.Int32,
    "latency_ms": pl.Float64,
    "cost_usd": pl.Float64,
    "mode": pl.String,
    "run_id": pl.String,
}


def _responses_frame(rows: Iterable[ResponseRow]) -> pl.DataFrame:
    records = [
        {
            **row.__dict__,
            "payload": None if row.payload is None else json.dumps(row.payload, separators=(",", ":")),
        }
        for row in rows
    ]
    return pl.DataFrame(records, schema=_RESPONSE_SCHEMA)


def sql_type(dtype: pl.DataType) -> str:
    if dtype == pl.String:
        return "VARCHAR"
    if dtype == pl.Int32:
        return "INTEGER"
    if dtype == pl.Int64:
        return "BIGINT"
    if dtype == pl.Float64:
        return "DOUBLE PRECISION"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype == pl.Date:
        return "DATE"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    if isinstance(dtype, pl.List) and dtype.inner == pl.String:
        return "VARCHAR[]"
    raise WarehouseError(f"no SQL type for {dtype}")


def create_table_sql(table: str, schema: dict[str, pl.DataType], primary_key: Sequence[str] = ()) -> str:
    columns = [f'"{name}" {sql_type(dtype)}' for name, dtype in schema.items()]
    if primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join(columns) + "\n)"
