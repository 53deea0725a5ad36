"""Where the read API reads: the DuckDB serving snapshot, or PostgreSQL through a read-only pool.

`SnapshotSource` never opens the pipeline's warehouse file. It opens the
serving file read-only and checks on each checkout whether the pipeline swapped
a new file in (`os.replace` gives it a new inode); if so, new requests get a
connection to the new file, and the old connection is closed once its last
request ends. The writer never waits for the API, and no request sees a mix of
two snapshots.

`PostgresSource` knows the marts changed from a marker (each table's identity and
the transaction that last filled it, see `MARKER_SQL`) checked at most every
`change_check_s`; it serves list queries from the same kind of in-memory
listing, built per marker in the background (PostgreSQL answers them meanwhile).

Both also keep a `RowIndex` per version of the data when given `index_sql`: every
row of that query in memory, by key, built in the background. A point lookup is
then a dict hit, not a query: DuckDB scans a column for one row (about 2 ms at
100,000 companies) and PostgreSQL costs a round trip through the pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl
import polars.selectors as cs

from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresTarget, pyformat
from enrichment_pipeline.lib.warehouse.schema import WarehouseError

Row = dict[str, Any]
# table -> {column: type}: what a listing query reads, fetched from PostgreSQL into memory.
ListingInputs = Mapping[str, Mapping[str, pl.DataType]]
# (DuckDB connection, listing table) -> an in-memory ranking of that listing (`listing_index`).
ListingPages = Callable[[duckdb.DuckDBPyConnection, str], Any]

log = logging.getLogger(__name__)


class SourceUnavailable(RuntimeError):
    """The data cannot be read right now (no snapshot yet, database down); the message says why."""


class Session(Protocol):
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class RowIndex:
    """Every row of one query by its key column, for one version of the data."""

    def __init__(self, version: str, frame: pl.DataFrame, key: str) -> None:
        self.version = version
        # Timestamps kept as naive UTC: handing out a zone-aware one costs a time-zone lookup per
        # value, a fifth of a row's time. Readers of rows treat naive timestamps as UTC.
        self.frame = frame.with_columns(
            cs.datetime(time_zone="*").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        )
        self._position = {k: i for i, k in enumerate(frame.get_column(key).to_list())}
        self._columns = frame.columns
        self._selected: dict[tuple[str, ...], pl.DataFrame] = {}

    def get(self, key: str) -> Row | None:
        i = self._position.get(key)
        # Zipped here: half the time of polars' `row(i, named=True)`.
        return None if i is None else dict(zip(self._columns, self.frame.row(i), strict=True))

    def iter_rows(self) -> Iterator[Row]:
        """Every row, in the frame's order (converted in batches: a fraction of `get`'s cost)."""
        columns = self._columns
        for values in self.frame.iter_rows():
            yield dict(zip(columns, values, strict=True))

    def rows(self, keys: Sequence[str], columns: Sequence[str]) -> list[Row]:
        """`columns` of the rows of `keys`, in that order (keys that are absent are skipped)."""
        positions = [i for i in map(self._position.get, keys) if i is not None]
        # Columns first (kept per column list: a select is a query plan), so the gather copies only them.
        selected = self._selected.get(tuple(columns))
        if selected is None:
            selected = self._selected[tuple(columns)] = self.frame.select(columns)
        return selected[positions].rows(named=True)

    def __len__(self) -> int:
        return len(self._position)


class ReadSource(Protocol):
    kind: str

    def session(self) -> contextlib.AbstractContextManager[Session]: ...

    def version(self) -> str:
        """Changes whenever the data may have changed (cache keys, ETags)."""
        ...

    def known_version(self) -> str | None:
        """`version()` when it is known without waiting on I/O (else None): callable from an
        event loop."""
        ...

    def row_index(self) -> RowIndex | None:
        """The current data's index when it is built (else None, and a build starts in the
        background). Never waits on I/O, so an event loop may call it."""
        ...

    def ranked_listing(self) -> tuple[RowIndex, Any] | None:
        """The current data's row index and its listing ranked in memory when both are built (else
        None). Never waits on I/O, so an event loop may call it."""
        ...

    def listing_session(self) -> contextlib.AbstractContextManager[Session]:
        """A session whose `company_listing` names the prebuilt listing of the current data, when
        one is ready (else None, and list queries read the marts), and whose `row_index` is that
        data's row index when built (else None)."""
        ...

    def close(self) -> None: ...


class _DuckSession:
    """`open_cursor` is called at the first query: a session answered from memory (a page ranked
    in memory) costs no cursor, a quarter of a millisecond."""

    def __init__(
        self,
        open_cursor: Callable[[], duckdb.DuckDBPyConnection],
        company_listing: str | None = None,
        row_index: RowIndex | None = None,
        listing_index: Any = None,
    ) -> None:
        self._open_cursor = open_cursor
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self.company_listing = company_listing
        self.row_index = row_index  # of the same data as the listing, when built
        self.listing_index = listing_index  # the listing ranked in memory, when built

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._cursor is None:
            self._cursor = self._open_cursor()
        try:
            result = self._cursor.execute(sql, list(params) or None)
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
        self.index: RowIndex | None = None
        self.pages: Any = None  # the listing ranked in memory, built with the index
        self.users = 0
        self.retired = False


class SnapshotSource:
    kind = "duckdb"

    def __init__(
        self,
        path: str | os.PathLike[str],
        listing_sql: str | None = None,
        index_sql: str | None = None,
        index_key: str = "domain",
        listing_pages: ListingPages | None = None,
    ) -> None:
        """`listing_sql`: a denormalized copy of what the list queries read, built once per snapshot
        and offered to sessions as `company_listing` (the queries own its SQL). `index_sql`: the
        rows `row_index` holds, by `index_key`. `listing_pages`: builds the listing's in-memory
        ranking, offered to sessions as `listing_index` (built after the row index)."""
        self.path = Path(path)
        self.listing_sql = listing_sql
        self.listing_pages = listing_pages
        self.index_sql = index_sql
        self.index_key = index_key
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
        return _identity_version(self._identity())

    known_version = version  # a stat() does not wait on anyone

    def row_index(self) -> RowIndex | None:
        if self.index_sql is None:
            return None
        identity = self._identity()
        with self._lock:
            snap = self._current
            # A swapped-in file is opened by the next session (off the event loop), not here.
            if snap is None or snap.identity != identity:
                return None
            return snap.index

    def ranked_listing(self) -> tuple[RowIndex, Any] | None:
        identity = self._identity()
        with self._lock:
            snap = self._current
            if snap is None or snap.identity != identity or snap.index is None or snap.pages is None:
                return None
            return snap.index, snap.pages

    def _build_index(self, snap: _Snapshot) -> None:
        assert self.index_sql is not None
        started = time.perf_counter()
        try:
            cursor = snap.conn.cursor()
            try:
                cursor.execute("USE snapshot")
                frame = pl.from_arrow(cursor.sql(self.index_sql).arrow())
            finally:
                cursor.close()
            assert isinstance(frame, pl.DataFrame)
            snap.index = RowIndex(_identity_version(snap.identity), frame, self.index_key)
            log.info(
                "row index of snapshot %s built: %d companies in %.1f s",
                snap.index.version,
                len(snap.index),
                time.perf_counter() - started,
            )
            if self.listing_pages is not None and snap.company_listing is not None:
                snap.pages = _build_pages(self.listing_pages, snap.conn, snap.company_listing)
        except duckdb.CatalogException as exc:
            log.warning("row index not built (the snapshot lacks a mart: %s); lookups will say so", exc)
        except Exception:
            log.exception("row index not built; lookups query the snapshot")
        finally:
            self._release(snap)

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
                if self.index_sql is not None:
                    fresh.users += 1  # the build holds the snapshot open
                    threading.Thread(
                        target=self._build_index, args=(fresh,), name="row-index", daemon=True
                    ).start()
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

        def open_cursor() -> duckdb.DuckDBPyConnection:
            cursor = snap.conn.cursor()  # a cursor per request: DuckDB runs them in parallel
            cursor.execute("USE snapshot")
            return cursor

        try:
            session = _DuckSession(open_cursor, snap.company_listing, snap.index, snap.pages)
            try:
                yield session
            finally:
                session.close()
        finally:
            self._release(snap)

    listing_session = session  # every snapshot session already offers the listing

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.conn.close()
                self._current = None


def _identity_version(identity: tuple[int, int, int]) -> str:
    ino, mtime, size = identity
    return f"{ino:x}-{mtime:x}-{size:x}"


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


# The tables the API reads. The pipeline rebuilds each in one transaction, either replacing every
# row (`Warehouse.replace_table`: DELETE + COPY, so every visible row carries that transaction's
# id as `xmin`) or creating it anew (dbt, a changed schema: a new oid). A table's oid and the xmin
# of any one visible row thus change exactly when its contents do, and cost an index-free LIMIT 1.
MARKER_TABLES = (
    "marts.company_profiles",
    "marts.icp_scores",
    "marts.fct_company_technology",
    "marts.fct_tech_changes",
    "marts.provider_coverage_and_cost",
)
MARKER_SQL = "SELECT " + ", ".join(
    f"to_regclass('{t}')::oid::text AS t{i}" for i, t in enumerate(MARKER_TABLES)
)


class PostgresSource:
    """A pool of read-only connections (`default_transaction_read_only`), opened lazily."""

    kind = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 10,
        timeout_s: float = 5.0,
        change_check_s: float = 0.5,
        listing_sql: str | None = None,
        listing_inputs: ListingInputs | None = None,
        index_sql: str | None = None,
        index_key: str = "domain",
        listing_pages: ListingPages | None = None,
    ) -> None:
        """`change_check_s`: how long a seen marker is trusted before it is asked again (0: every
        call). `listing_sql` over `listing_inputs`, `index_sql`: see `SnapshotSource`; built in
        memory per marker, in one background build."""
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
        self.change_check_s = change_check_s
        self.listing_sql = listing_sql if listing_inputs else None
        self.listing_inputs = listing_inputs or {}
        self.index_sql = index_sql
        self.index_key = index_key
        self.listing_pages = listing_pages
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
        self._marker_lock = threading.Lock()
        self._marker: tuple[float, str] | None = None  # (monotonic time asked, marker)
        self._asking_lock = threading.Lock()
        # One long-lived thread: starting a thread per ask blocked the event loop until the new
        # thread got the GIL (a sixth of a busy server's time in `Thread.start`).
        self._asker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marker")
        self._asking: Future[None] | None = None
        self._listing_lock = threading.Lock()
        # (marker, database, the listing ranked in memory or None)
        self._listing: tuple[str, duckdb.DuckDBPyConnection, Any] | None = None
        self._index: RowIndex | None = None
        self._building: threading.Thread | None = None
        self._closed = False

    @staticmethod
    def _ask_marker(session: Session) -> str:
        oids = session.rows(MARKER_SQL)[0]
        present = [(i, t) for i, t in enumerate(MARKER_TABLES) if oids[f"t{i}"] is not None]
        xmins = (
            session.rows(
                "SELECT " + ", ".join(f"(SELECT xmin::text FROM {t} LIMIT 1) AS t{i}" for i, t in present)
            )[0]
            if present
            else {}
        )
        return ",".join(f"{oids[f't{i}']}:{xmins.get(f't{i}')}" for i in range(len(MARKER_TABLES)))

    def version(self) -> str:
        known = self._fresh_marker()
        if known is not None:
            return known
        return self._refresh_marker(older_than_s=self.change_check_s)

    def _refresh_marker(self, older_than_s: float) -> str:
        """The marker, asked now unless another thread asked it less than `older_than_s` ago."""
        with self._marker_lock:
            seen = self._marker
            if seen is not None and time.monotonic() - seen[0] < older_than_s:
                return seen[1]
            with self.session() as s:
                marker = self._ask_marker(s)
            self._marker = (time.monotonic(), marker)
            return marker

    def known_version(self) -> str | None:
        if self.change_check_s <= 0:
            return None  # asked on every request, by the request
        seen = self._marker
        # Asked again from half its age on, so that under steady traffic it never goes stale and
        # no request has to wait for it.
        if seen is None or time.monotonic() - seen[0] >= self.change_check_s / 2:
            self._ask_marker_soon()
        return self._fresh_marker()

    def _ask_marker_soon(self) -> None:
        """Ask the marker in the background, so the event loop finds a fresh one next time."""
        with self._asking_lock:
            if self._closed or (self._asking is not None and not self._asking.done()):
                return
            self._asking = self._asker.submit(self._ask_quietly)

    def _ask_quietly(self) -> None:
        try:
            # Still fresh (half its age): asked anyway, so that it never goes stale under traffic.
            self._refresh_marker(older_than_s=self.change_check_s / 2)
        except SourceUnavailable as exc:
            log.warning("marts marker not read: %s", exc)

    def row_index(self) -> RowIndex | None:
        if self.index_sql is None:
            return None
        marker = self.known_version()
        if marker is None:
            return None  # asked in the background; meanwhile the caller asks PostgreSQL
        with self._listing_lock:
            index = self._index
            if index is not None and index.version == marker:
                return index
            self._start_build()
        return None

    def ranked_listing(self) -> tuple[RowIndex, Any] | None:
        marker = self.known_version()
        if marker is None or self.index_sql is None:
            return None
        with self._listing_lock:
            index, listing = self._index, self._listing
            if index is None or listing is None or index.version != marker or listing[0] != marker:
                return None  # `row_index` and `listing_session` start the builds
            return None if listing[2] is None else (index, listing[2])

    def _start_build(self) -> None:
        """Called with `_listing_lock` held."""
        if self._building is None or not self._building.is_alive():
            self._building = threading.Thread(target=self._build, name="listing-build", daemon=True)
            self._building.start()

    def _fresh_marker(self) -> str | None:
        seen = self._marker
        if seen is None or time.monotonic() - seen[0] >= self.change_check_s:
            return None
        return seen[1]

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

    @contextlib.contextmanager
    def listing_session(self) -> Iterator[Session]:
        """The in-memory listing when it was built from the current marker; else PostgreSQL (and
        a build starts in the background)."""
        if self.listing_sql is None:
            with self.session() as s:
                yield s
            return
        marker = self.version()
        with self._listing_lock:
            listing = self._listing
            ready = listing is not None and listing[0] == marker
            if not ready:
                self._start_build()
            db = listing[1] if ready and listing is not None else None
            pages = listing[2] if ready and listing is not None else None
            index = self._index if self._index is not None and self._index.version == marker else None
        if db is None:
            with self.session() as s:
                yield s
            return
        session = _DuckSession(db.cursor, "company_listing", index, pages)
        try:
            yield session
        finally:
            session.close()

    def _build(self) -> None:
        """The listing and the row index of one marker, read in one transaction."""
        started = time.perf_counter()
        try:
            with self.session() as s:
                conn = s.conn  # type: ignore[attr-defined]
                # One snapshot for the marker and every table, so both are exactly that marker's.
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    marker = self._ask_marker(s)
                    frames = {}
                    if self.listing_sql is not None:
                        for table, columns in self.listing_inputs.items():
                            sql = f"SELECT {', '.join(columns)} FROM {table}"
                            frames[table] = _read_frame(conn, sql, dict(columns))
                    index = None
                    if self.index_sql is not None:
                        index_frame = _read_frame(conn, self.index_sql)
                        index = RowIndex(marker, index_frame, self.index_key)
                finally:
                    conn.execute("COMMIT")
            with self._listing_lock:
                self._index = index
            if self.listing_sql is not None:
                self._store_listing(marker, frames)
            log.info(
                "listing and row index of PostgreSQL marker %s built: %s companies in %.1f s",
                marker,
                len(index) if index is not None else "no index,",
                time.perf_counter() - started,
            )
        except SourceUnavailable as exc:
            log.warning("company listing and row index not built: %s", exc)
        except Exception:
            log.exception("company listing or row index not built; PostgreSQL answers meanwhile")

    def _store_listing(self, marker: str, frames: dict[str, pl.DataFrame]) -> None:
        assert self.listing_sql is not None
        try:
            db = duckdb.connect(":memory:")
            db.execute("SET TimeZone = 'UTC'")
            db.execute("CREATE SCHEMA marts")
            for table, frame in frames.items():
                db.register("frame", frame)
                db.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
                db.unregister("frame")
            db.execute(f"CREATE TABLE company_listing AS {self.listing_sql}")
            for table in frames:
                db.execute(f"DROP TABLE {table}")
        except Exception:
            log.exception("company listing not built; lists are read from PostgreSQL")
            return
        pages = None
        if self.listing_pages is not None:
            pages = _build_pages(self.listing_pages, db, "company_listing")
        with self._listing_lock:
            # The old listing is only dropped, not closed: closing would break the cursors of
            # requests still reading it, which keep its database alive until they end.
            self._listing = (marker, db, pages)
            if self._closed:
                db.close()

    def close(self) -> None:
        with self._listing_lock:
            self._closed = True
            if self._listing is not None:
                self._listing[1].close()
                self._listing = None
            self._index = None
        with self._asking_lock:
            self._asker.shutdown(wait=False, cancel_futures=True)
        self.pool.close()


def _build_pages(build: ListingPages, conn: duckdb.DuckDBPyConnection, table: str) -> Any:
    started = time.perf_counter()
    cursor = conn.cursor()
    try:
        pages = build(cursor, table)
    except Exception:
        log.exception("listing not ranked in memory; list queries rank it in DuckDB")
        return None
    finally:
        cursor.close()
    log.info("listing ranked in memory: %d companies in %.1f s", len(pages), time.perf_counter() - started)
    return pages


_CHUNK_ROWS = 20_000


def _read_frame(conn: Any, sql: str, schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    """A query's rows as one frame, streamed through a server-side cursor in chunks, so only one
    chunk at a time exists as Python objects (all at once, 500,000 technology rows took ~1 GB).
    Needs an open transaction."""
    chunks: list[pl.DataFrame] = []
    with conn.cursor(name=f"api_read_{uuid.uuid4().hex[:12]}") as cursor:
        cursor.itersize = _CHUNK_ROWS
        cursor.execute(sql)
        while rows := cursor.fetchmany(_CHUNK_ROWS):
            if schema is None:
                names = [c.name for c in cursor.description]
                chunks.append(pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None))
            else:
                chunks.append(pl.DataFrame(rows, schema=dict(schema), orient="row"))
        if not chunks:
            names = [c.name for c in cursor.description or ()]
            return pl.DataFrame(schema=dict(schema) if schema is not None else names)
    # A column all NULL in one chunk has no type there; "relaxed" takes the others' type.
    return pl.concat(chunks, how="vertical_relaxed")


def open_source(
    warehouse_url: str,
    snapshot_path: Path,
    *,
    pool_size: int = 10,
    change_check_s: float = 0.5,
    listing_sql: str | None = None,
    listing_inputs: ListingInputs | None = None,
    index_sql: str | None = None,
    listing_pages: ListingPages | None = None,
) -> ReadSource:
    """PostgreSQL when the warehouse is PostgreSQL, else the DuckDB serving snapshot; both with the
    prebuilt listing and row index (see `SnapshotSource`, `PostgresSource`)."""
    scheme = warehouse_url.split("://", 1)[0].lower()
    if scheme.startswith("postgres"):
        return PostgresSource(
            warehouse_url,
            max_size=pool_size,
            change_check_s=change_check_s,
            listing_sql=listing_sql,
            listing_inputs=listing_inputs,
            index_sql=index_sql,
            listing_pages=listing_pages,
        )
    if scheme == "duckdb":
        return SnapshotSource(snapshot_path, listing_sql, index_sql, listing_pages=listing_pages)
    raise WarehouseError(f"unsupported WAREHOUSE_URL scheme {scheme}://")
