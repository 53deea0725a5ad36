"""Where the read API reads: the DuckDB serving snapshot, or PostgreSQL through a read-only pool.

`SnapshotSource` never opens the pipeline's warehouse file. It opens the
serving file read-only and checks on each checkout whether the pipeline swapped
a new file in (`os.replace` gives it a new inode); if so, new requests get a
connection to the new file, and the old connection is closed once its last
request ends. The writer never waits for the API, and no request sees a mix of
two snapshots.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb

from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresTarget, pyformat
from enrichment_pipeline.lib.warehouse.schema import WarehouseError

Row = dict[str, Any]


class SourceUnavailable(RuntimeError):
    """The data cannot be read right now (no snapshot yet, database down); the message says why."""


class Session(Protocol):
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class ReadSource(Protocol):
    kind: str

    def session(self) -> contextlib.AbstractContextManager[Session]: ...

    def version(self) -> str:
        """Changes whenever the data may have changed (cache keys, ETags)."""
        ...

    def close(self) -> None: ...


class _DuckSession:
    def __init__(self, cursor: duckdb.DuckDBPyConnection, company_listing: str | None = None) -> None:
        self.cursor = cursor
        self.company_listing = company_listing

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            result = self.cursor.execute(sql, list(params) or None)
        except duckdb.CatalogException as exc:
            raise SourceUnavailable(
                f"the serving snapshot lacks a table the API reads ({exc}): rebuild the marts"
            ) from None
        names = [d[0] for d in result.description]
        return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


class _Snapshot:
    def __init__(self, path: Path, identity: tuple[int, int, int], listing_sql: str | None) -> None:
        self.identity = identity
        # An in-memory database with the file ATTACHed: `duckdb.connect(path)` would hand back the
        # instance already open on that path (DuckDB caches them by path), i.e. the old snapshot.
        self.conn = duckdb.connect(":memory:")
        self.conn.execute("SET TimeZone = 'UTC'")
        escaped = str(path).replace("'", "''")
        self.conn.execute(f"ATTACH '{escaped}' AS snapshot (READ_ONLY)")
        self.conn.execute("USE snapshot")
        self.company_listing: str | None = None
        if listing_sql is not None:
            try:
                # Built once per snapshot, in the in-memory database every cursor shares.
                self.conn.execute(f"CREATE TABLE memory.main.company_listing AS {listing_sql}")
                self.company_listing = "memory.main.company_listing"
            except duckdb.CatalogException:
                pass  # a snapshot without a mart the listing reads: lists use the plain query
        self.users = 0
        self.retired = False


class SnapshotSource:
    kind = "duckdb"

    def __init__(self, path: str | os.PathLike[str], listing_sql: str | None = None) -> None:
        """`listing_sql`: a denormalized copy of what the list queries read, built once per snapshot
        and offered to sessions as `company_listing` (the queries own its SQL)."""
        self.path = Path(path)
        self.listing_sql = listing_sql
        self._lock = threading.Lock()
        self._current: _Snapshot | None = None

    def _identity(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise SourceUnavailable(
                f"no serving snapshot at {self.path.name} yet: run the pipeline (`make run`) first"
            ) from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def version(self) -> str:
        ino, mtime, size = self._identity()
        return f"{ino:x}-{mtime:x}-{size:x}"

    def _checkout(self) -> _Snapshot:
        identity = self._identity()
        with self._lock:
            current = self._current
            if current is None or current.identity != identity:
                try:
                    fresh = _Snapshot(self.path, identity, self.listing_sql)
                except duckdb.Error as exc:
                    raise SourceUnavailable(f"cannot open the serving snapshot: {exc}") from None
                if current is not None:
                    current.retired = True
                    if current.users == 0:
                        current.conn.close()
                self._current = current = fresh
            current.users += 1
            return current

    def _release(self, snap: _Snapshot) -> None:
        with self._lock:
            snap.users -= 1
            if snap.retired and snap.users == 0:
                snap.conn.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        snap = self._checkout()
        try:
            cursor = snap.conn.cursor()  # a cursor per request: DuckDB runs them in parallel
            cursor.execute("USE snapshot")
            try:
                yield _DuckSession(cursor, snap.company_listing)
            finally:
                cursor.close()
        finally:
            self._release(snap)

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.conn.close()
                self._current = None


class _PgSession:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        import psycopg

        try:
            cursor = self.conn.execute(pyformat(sql) if params else sql, list(params) or None)
        except psycopg.errors.UndefinedTable as exc:
            raise SourceUnavailable(
                f"the warehouse lacks a table the API reads ({exc}): run the pipeline"
            ) from None
        if cursor.description is None:
            return []
        names = [c.name for c in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


class PostgresSource:
    """A pool of read-only connections (`default_transaction_read_only`), opened lazily."""

    kind = "postgresql"

    def __init__(self, url: str, *, max_size: int = 10, timeout_s: float = 5.0) -> None:
        from psycopg.conninfo import make_conninfo
        from psycopg.types.numeric import FloatLoader
        from psycopg.types.string import TextLoader
        from psycopg_pool import ConnectionPool

        self.target = PostgresTarget(url)

        def configure(conn: Any) -> None:
            for name in ("json", "jsonb", "uuid"):
                conn.adapters.register_loader(name, TextLoader)
            conn.adapters.register_loader("numeric", FloatLoader)
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute("SET default_transaction_read_only = on")
            conn.execute("SET statement_timeout = 10000")

        self.timeout_s = timeout_s
        self.pool = ConnectionPool(
            make_conninfo(self.target.conninfo, **{**self.target.defaults, "connect_timeout": 5}),
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=configure,
            open=False,
            name="enrichment-api",
        )
        self.pool.open(wait=False)

    def version(self) -> str:
        # Cheap and exact enough: the marts tables are rebuilt (new rows, new stats) on every run.
        with self.session() as s:
            rows = s.rows(
                "SELECT coalesce(max(enriched_at)::text, '') || ':' || count(*)::text AS v "
                "FROM marts.company_profiles"
            )
        return rows[0]["v"]

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            ctx = self.pool.connection(timeout=self.timeout_s)
            conn = ctx.__enter__()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise SourceUnavailable(
                f"PostgreSQL at {self.target.where} unavailable: {self.target.scrub(exc)}"
            ) from None
        try:
            yield _PgSession(conn)
        except psycopg.OperationalError as exc:
            ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise SourceUnavailable(f"PostgreSQL query failed: {self.target.scrub(exc)}") from None
        except BaseException as exc:
            ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            ctx.__exit__(None, None, None)

    def close(self) -> None:
        self.pool.close()


def open_source(
    warehouse_url: str, snapshot_path: Path, *, pool_size: int = 10, listing_sql: str | None = None
) -> ReadSource:
    """PostgreSQL when the warehouse is PostgreSQL, else the DuckDB serving snapshot (with the
    prebuilt listing, see `SnapshotSource`)."""
    scheme = warehouse_url.split("://", 1)[0].lower()
    if scheme.startswith("postgres"):
        return PostgresSource(warehouse_url, max_size=pool_size)
    if scheme == "duckdb":
        return SnapshotSource(snapshot_path, listing_sql)
    raise WarehouseError(f"unsupported WAREHOUSE_URL scheme {scheme}://")
