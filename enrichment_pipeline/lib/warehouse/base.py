"""`Warehouse`: every rule of the warehouse, in SQL that DuckDB and PostgreSQL share.

A dialect subclass (`duckdb_backend`, `postgres_backend`) supplies only what
differs: how to connect, how to run a statement (placeholders), how to read a
result into polars, how to load a frame in bulk, and how to lock.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import polars as pl

from enrichment_pipeline.lib.warehouse import schema
from enrichment_pipeline.lib.warehouse.schema import (
    JOURNAL,
    QUOTA,
    RESPONSE_KEY,
    RESPONSE_SCHEMA,
    RESPONSES,
    SCHEMA_MIGRATIONS,
    ResponseRow,
    WarehouseError,
    answered_sql,
    create_table_sql,
    quoted_columns,
    responses_frame,
    sql_type,
)

ACCEPTED_URLS = (
    "duckdb:///path/file.duckdb or postgresql://user:pass@host:port/db "
    "(also postgres://, postgresql+psycopg://, postgresql+psycopg2://)"
)
_COLUMNS = ", ".join(RESPONSE_SCHEMA)
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in RESPONSE_SCHEMA if c not in RESPONSE_KEY)


def _replaces(table: str) -> str:
    """ON CONFLICT condition: only an answer (ok, not_found) replaces a stored answer, except
    the same run's own correction (an answer it found unreadable once the domain was whole)."""
    stored = table.split(".")[-1]
    return (
        f"{answered_sql('excluded.status')} OR NOT {answered_sql(f'{stored}.status')} "
        f"OR excluded.run_id = {stored}.run_id"
    )


def _current_answers_sql(journal: bool) -> str:
    """Every stored answer, journaled ones first-class: a subquery with the responses' columns.

    A key in both tables is the journal's when that one is an answer (it is the newer), so
    a cache lookup never calls a provider again for what a stopped run already received.
    `journal=False`: a read-only connection to a file from before the journal existed."""
    if not journal:
        return RESPONSES
    return f"""(SELECT {_COLUMNS} FROM {JOURNAL}
                UNION ALL
                SELECT {_COLUMNS} FROM {RESPONSES} r WHERE NOT EXISTS (
                    SELECT 1 FROM {JOURNAL} j WHERE j.provider = r.provider AND j.endpoint = r.endpoint
                    AND j.domain = r.domain AND {answered_sql("j.status")}))"""


class Warehouse:
    """One connection to the warehouse; open with `Warehouse.open(url)`.

    Every write that touches a set of domains deletes and inserts their rows in
    one transaction, so a run killed at any point leaves each domain either as
    it was or fully replaced. Statements use `?` placeholders; the dialect
    translates them.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    # Appended to the quota ledger's SELECT so concurrent reservations queue up.
    row_lock: ClassVar[str] = ""

    def __init__(self, conn: Any, url: str) -> None:
        self._conn = conn
        self.url = url  # never holds a password: dialects pass a display form
        self._depth = 0
        # Serializes transactions: the fetcher writes from a worker thread while the
        # quota ledger is asked from the event loop, on the same connection.
        self._lock = threading.RLock()

    # -- dialect hooks ----------------------------------------------------------------------------------

    @classmethod
    def _connect(cls, url: str, *, read_only: bool, lock_wait_s: float) -> Warehouse:
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement with `?` placeholders; returns something with `fetchall()`."""
        raise NotImplementedError

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        raise NotImplementedError

    @contextlib.contextmanager
    def _staged(self, name: str, frame: pl.DataFrame, types: dict[str, pl.DataType]) -> Iterator[str]:
        """The frame as a relation that SQL in this transaction can select from; yields its name."""
        raise NotImplementedError
        yield name  # pragma: no cover

    def _bulk_insert(self, table: str, frame: pl.DataFrame, types: dict[str, pl.DataType]) -> None:
        with self._staged("_wh_incoming", frame, types) as incoming:
            names = quoted_columns(frame.columns)
            self._execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {incoming}")

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Held while migrating, so two processes never apply the same version."""
        yield

    # -- connection -------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, read_only: bool = False, lock_wait_s: float = 600.0) -> Warehouse:
        """Connect (DuckDB file or PostgreSQL database, by URL scheme) and, unless read-only, migrate.

        `lock_wait_s`: how long to wait for another writer (DuckDB: the file's
        single-writer lock; PostgreSQL: any table or row lock, as `lock_timeout`).
        """
        warehouse = backend_for(url)._connect(url, read_only=read_only, lock_wait_s=lock_wait_s)
        if not read_only:
            try:
                warehouse.migrate()
            except BaseException:
                warehouse.close()
                raise
        return warehouse

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction (yields the driver's connection); nested uses join the outer one.

        Thread-safe: a transaction from another thread waits for this one to end."""
        with self._lock:
            yield from self._transaction()

    def _transaction(self) -> Iterator[Any]:
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        self._execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._depth = 0
            # A failed ROLLBACK (connection lost) must not hide the error that caused it.
            with contextlib.suppress(Exception):
                self._execute("ROLLBACK")
            raise
        self._depth = 0
        self._execute("COMMIT")

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # Reads share the connection with the fetcher's writer thread: one statement at a time.
        with self._lock:
            return self._execute(sql, params).fetchall()

    # -- schema -----------------------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        with self._migration_lock():
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA_MIGRATIONS} "
                "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMPTZ)"
            )
            done = {v for (v,) in self._fetchall(f"SELECT version FROM {SCHEMA_MIGRATIONS}")}
            applied = []
            for version, description, statements in schema.MIGRATIONS:
                if version in done:
                    continue
                with self.transaction():
                    for statement in statements:
                        self._execute(statement)
                    self._execute(
                        f"INSERT INTO {SCHEMA_MIGRATIONS} VALUES (?, ?, ?)",
                        [version, description, datetime.now(UTC)],
                    )
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        row = self._fetchall(f"SELECT max(version) FROM {SCHEMA_MIGRATIONS}")[0]
        return int(row[0] or 0)

    # -- raw responses ----------------------------------------------------------------------------------

    def fresh_answers(
        self, provider: str, domains: Sequence[str], mode: str, now: datetime
    ) -> tuple[set[tuple[str, str]], dict[str, dict[str, Any]]]:
        """What the cache answers for `domains`: the (endpoint, domain) keys whose stored answer
        (journaled or not) is still within its TTL at `now`, and the payloads of those that are
        `ok`, by domain and endpoint. The fetcher calls no provider for such a key."""
        if not domains:
            return set(), {}
        rows = self._fetchall(
            f"""SELECT r.endpoint, r.domain, r.status, r.payload
                FROM {_current_answers_sql(self.has_table(JOURNAL))} r
                JOIN unnest(?::VARCHAR[]) AS wanted(domain) USING (domain)
                WHERE r.provider = ? AND r.mode = ? AND r.expires_at > ? AND {answered_sql("r.status")}""",
            [list(domains), provider, mode, now],
        )
        keys: set[tuple[str, str]] = set()
        payloads: dict[str, dict[str, Any]] = defaultdict(dict)
        for endpoint, domain, status, payload in rows:
            keys.add((endpoint, domain))
            if status == "ok" and payload is not None:
                payloads[domain][endpoint] = json.loads(payload)
        return keys, dict(payloads)

    def write_responses(self, rows: Iterable[ResponseRow]) -> int:
        """Upsert in one transaction. Only an answer (ok, not_found) replaces a
        stored answer: after an error, a quota stop or a "queued" (pending)
        reply the last good data stays usable."""
        return self._upsert_responses(RESPONSES, rows)

    def journal_responses(self, rows: Iterable[ResponseRow]) -> int:
        """Keep answers durable as they arrive, before their domain is complete (same upsert
        rule as `write_responses`); `promote_responses` moves them once it is."""
        return self._upsert_responses(JOURNAL, rows)

    def promote_responses(self, domains: Sequence[str]) -> int:
        """Move every journaled answer of `domains` into raw.provider_responses, in one
        transaction: readers of that table see a domain's answers all at once or not at all."""
        domains = sorted(set(domains))
        if not domains:
            return 0
        with self.transaction():
            self._lock_table(JOURNAL)
            (moved,) = self._fetchall(
                f"SELECT count(*) FROM {JOURNAL} WHERE domain IN (SELECT unnest(?::VARCHAR[]))", [domains]
            )[0]
            if moved:
                self._execute(
                    f"""INSERT INTO {RESPONSES} ({_COLUMNS})
                        SELECT {_COLUMNS} FROM {JOURNAL} WHERE domain IN (SELECT unnest(?::VARCHAR[]))
                        ORDER BY provider, endpoint, domain
                        ON CONFLICT (provider, endpoint, domain) DO UPDATE SET {_UPDATES}
                        WHERE {_replaces(RESPONSES)}""",
                    [domains],
                )
                self._execute(
                    f"DELETE FROM {JOURNAL} WHERE domain IN (SELECT unnest(?::VARCHAR[]))", [domains]
                )
        return int(moved)

    def complete_responses(self, domains: Sequence[str], rows: Iterable[ResponseRow] = ()) -> int:
        """Domains no provider will be asked about any more: their journaled answers and `rows`
        (their answers not journaled yet) go into raw.provider_responses in one transaction.
        Returns the rows written."""
        with self.transaction():
            moved = self.promote_responses(domains)
            return moved + self.write_responses(rows)

    def journaled_domains(self, domains: Sequence[str] | None = None) -> set[str]:
        """Domains with answers waiting in the journal (a run stopped before completing them)."""
        if not self.has_table(JOURNAL):  # read-only, on a file from before the journal
            return set()
        if domains is None:
            rows = self._fetchall(f"SELECT DISTINCT domain FROM {JOURNAL}")
        else:
            rows = self._fetchall(
                f"SELECT DISTINCT domain FROM {JOURNAL} WHERE domain IN (SELECT unnest(?::VARCHAR[]))",
                [list(domains)],
            )
        return {d for (d,) in rows}

    def _upsert_responses(self, table: str, rows: Iterable[ResponseRow]) -> int:
        # One row per key (the last wins): one INSERT may not touch a key twice.
        frame = responses_frame(rows).unique(list(RESPONSE_KEY), keep="last", maintain_order=True)
        if frame.is_empty():
            return 0
        columns = ", ".join(frame.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in frame.columns if c not in RESPONSE_KEY)
        # Rows in key order: two runs upserting overlapping domains then lock them in the same
        # order and queue instead of deadlocking (PostgreSQL).
        frame = frame.sort(list(RESPONSE_KEY))
        with self.transaction(), self._staged("_wh_responses", frame, RESPONSE_SCHEMA) as incoming:
            if table == JOURNAL:
                self._lock_table(JOURNAL)  # one journal writer at a time: no lock-order deadlock
            self._execute(
                f"""INSERT INTO {table} ({columns}) SELECT {columns} FROM {incoming}
                    ORDER BY provider, endpoint, domain
                    ON CONFLICT (provider, endpoint, domain) DO UPDATE SET {updates}
                    WHERE {_replaces(table)}"""
            )
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
        return self.query(f"SELECT * FROM {RESPONSES} {clause}", args)

    # -- quota ledger -----------------------------------------------------------------------------------

    def reserve_quota(self, provider: str, day: date, want: int, limit: int) -> int:
        """Atomically take up to `want` calls of the day's quota; returns how many."""
        with self.transaction():
            self._execute(f"INSERT INTO {QUOTA} VALUES (?, ?, 0) ON CONFLICT DO NOTHING", [provider, day])
            (used,) = self._fetchall(
                f"SELECT calls FROM {QUOTA} WHERE provider = ? AND day = ?{self.row_lock}", [provider, day]
            )[0]
            granted = max(0, min(want, limit - used))
            if granted:
                self._execute(
                    f"UPDATE {QUOTA} SET calls = calls + ? WHERE provider = ? AND day = ?",
                    [granted, provider, day],
                )
        return granted

    def release_quota(self, provider: str, day: date, count: int) -> None:
        with self.transaction():
            self._execute(
                f"UPDATE {QUOTA} SET calls = greatest(0, calls - ?) WHERE provider = ? AND day = ?",
                [count, provider, day],
            )

    def quota_used(self, provider: str, day: date) -> int:
        rows = self._fetchall(f"SELECT calls FROM {QUOTA} WHERE provider = ? AND day = ?", [provider, day])
        return int(rows[0][0]) if rows else 0

    # -- derived tables ---------------------------------------------------------------------------------

    def replace_table(
        self, table: str, frame: pl.DataFrame, schema: dict[str, pl.DataType], primary_key: Sequence[str] = ()
    ) -> int:
        """Swap a whole derived table's contents in one transaction.

        This is how a derived table's schema changes: a table whose columns (names, order or
        types) no longer match `schema` (the code added, renamed or retyped a column) is dropped
        and created anew, since derived tables hold nothing the next rebuild does not write again."""
        frame = frame.select(list(schema))
        with self.transaction():
            self._lock_table(table)
            if self.has_table(table) and self._stored_columns(table) != _sql_columns(schema):
                self._execute(f"DROP TABLE {table}{self.drop_dependents}")
            self._execute(create_table_sql(table, schema, primary_key))
            self._execute(f"DELETE FROM {table}")
            if frame.height:
                self._bulk_insert(table, frame, schema)
        return frame.height

    def table(self, table: str) -> pl.DataFrame:
        return self.query(f"SELECT * FROM {table}")

    def hold_lock(self, name: str) -> None:
        """Wait for, then hold until `close()`, the cross-process lock `name` (e.g. one step kind
        of every run: only one fetch at a time, only one derived rebuild at a time).

        A DuckDB file already has one writing process at a time (the sidecar file lock held
        while it is open), so this is a no-op there; PostgreSQL holds a session advisory lock,
        which the server also releases if the process dies."""
        return None

    def _lock_table(self, table: str) -> None:
        """Serialize rebuilds of one table across processes (a no-op where one writer is the rule)."""
        return None

    # Postgres refuses to drop a table that dbt's views read; they are rebuilt by the next dbt run.
    drop_dependents: ClassVar[str] = ""

    def _stored_columns(self, table: str) -> list[tuple[str, str | None]]:
        """The table's columns as they are stored, with their SQL types (as `_sql_columns`)."""
        return _sql_columns(self.query(f"SELECT * FROM {table} LIMIT 0").schema)

    def has_table(self, table: str) -> bool:
        schema_name, name = table.split(".")
        row = self._fetchall(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema_name, name],
        )[0]
        return bool(row and row[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        """Any SQL, `?` placeholders; the result as a polars frame (empty frame for statements)."""
        with self._lock:
            return self._frame(sql, params)


def _sql_columns(types: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(name, SQL type) in order; None for a type no derived table declares (so it never matches)."""
    columns: list[tuple[str, str | None]] = []
    for name, dtype in types.items():
        try:
            columns.append((name, sql_type(dtype)))
        except WarehouseError:
            columns.append((name, None))
    return columns


def backend_for(url: str) -> type[Warehouse]:
    """The dialect that opens `url`, by its scheme.

    Each dialect subclasses `Warehouse` and names its `schemes`; the package imports every
    dialect module, so all are defined by the time a URL is opened and this module imports none."""
    scheme = url.split("://", 1)[0].strip().lower() if "://" in url else ""
    for backend in Warehouse.__subclasses__():
        if scheme in backend.schemes:
            return backend
    # Only the scheme is echoed: the rest of a URL may hold a password.
    shown = f"{scheme}://…" if re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) else "without a valid scheme://"
    raise WarehouseError(f"unsupported WAREHOUSE_URL {shown}: use {ACCEPTED_URLS}")
