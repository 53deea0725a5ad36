"""The PostgreSQL dialect: psycopg 3, `%s` placeholders, COPY for bulk loads, row locks.

Connections: each `Warehouse` object holds exactly one psycopg connection (no
pool), opened by `Warehouse.open` and closed by `close()` / the `with` block.
Every Dagster asset or check execution opens one and closes it before it
returns, so a run uses at most one connection per concurrently running step.
The connection is in autocommit mode; `transaction()` issues BEGIN/COMMIT.

The password in the URL never reaches an exception message, `url` or `repr`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import unquote

import polars as pl
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.numeric import FloatLoader
from psycopg.types.string import TextLoader

from enrichment_pipeline.lib.warehouse.base import Warehouse
from enrichment_pipeline.lib.warehouse.schema import (
    SCHEMA_MIGRATIONS,
    WarehouseError,
    column_definitions,
    quoted_columns,
)

SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "postgres+psycopg")
CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "enrichment_pipeline"
# Any constant: `pg_advisory_lock` key serialising migrations across processes.
_MIGRATION_LOCK_KEY = 0x6570_5F77_6172_6568

# Result column type (OID) -> polars dtype, so even an empty result has typed columns.
_UTC = pl.Datetime("us", "UTC")
_PG_DTYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    17: pl.Binary(),
    18: pl.String(),  # "char"
    19: pl.String(),  # name
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    25: pl.String(),
    114: pl.String(),  # json, loaded as text
    700: pl.Float32(),
    701: pl.Float64(),
    1042: pl.String(),
    1043: pl.String(),
    1082: pl.Date(),
    1083: pl.Time(),
    1114: pl.Datetime("us"),
    1184: _UTC,
    1186: pl.Duration("us"),
    1700: pl.Float64(),  # numeric, loaded as float (DuckDB's DOUBLE for avg() etc.)
    2950: pl.String(),  # uuid, loaded as text
    3802: pl.String(),  # jsonb, loaded as text
    1000: pl.List(pl.Boolean()),
    1005: pl.List(pl.Int16()),
    1007: pl.List(pl.Int32()),
    1009: pl.List(pl.String()),
    1014: pl.List(pl.String()),
    1015: pl.List(pl.String()),
    1016: pl.List(pl.Int64()),
    1021: pl.List(pl.Float32()),
    1022: pl.List(pl.Float64()),
    1182: pl.List(pl.Date()),
    1185: pl.List(_UTC),
}

# `?` outside literals, identifiers and comments becomes `%s`; every `%` becomes `%%`.
_SQL_TOKENS = re.compile(
    r"""'(?:[^']|'')*'            # string literal
      | "(?:[^"]|"")*"            # quoted identifier
      | --[^\n]*                  # line comment
      | /\*.*?\*/                 # block comment
      | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$   # dollar-quoted string
      | [?%]""",
    re.S | re.X,
)


def pyformat(sql: str) -> str:
    """A `?`-placeholder statement in psycopg's `%s` style."""

    def swap(match: re.Match[str]) -> str:
        token = match.group()
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return _SQL_TOKENS.sub(swap, sql)


class PostgresTarget:
    """A parsed PostgreSQL URL: what to connect with, and what may be shown (no password)."""

    def __init__(self, url: str) -> None:
        scheme, _, rest = url.partition("://")
        # SQLAlchemy-style driver suffixes name a Python driver, not a server: psycopg 3 it is.
        self.conninfo = f"postgresql://{rest}"
        self._secrets = _password_forms(rest)
        try:
            params = conninfo_to_dict(self.conninfo)
        except psycopg.Error as exc:
            raise WarehouseError(f"invalid PostgreSQL URL {scheme}://…: {self.scrub(exc)}") from None
        if params.get("password"):
            self._secrets |= _password_forms_of(str(params["password"]))
        self.host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.port = str(params.get("port") or "5432")
        self.dbname = str(params.get("dbname") or params.get("user") or "")
        self.user = str(params.get("user") or "")
        self.defaults = {
            k: v
            for k, v in (("connect_timeout", CONNECT_TIMEOUT_S), ("application_name", APPLICATION_NAME))
            if k not in params
        }

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"postgresql://{user}{self.where}/{self.dbname}"

    def scrub(self, exc: BaseException | str) -> str:
        text = " ".join(str(exc).split())
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _password_forms(rest: str) -> set[str]:
    netloc = re.split(r"[/?]", rest, maxsplit=1)[0]
    userinfo = netloc.rpartition("@")[0]
    return _password_forms_of(userinfo.partition(":")[2]) if ":" in userinfo else set()


def _password_forms_of(password: str) -> set[str]:
    return {p for p in (password, unquote(password)) if p}


class PostgresWarehouse(Warehouse):
    """`postgresql://user:pass@host:port/db`: a concurrent server, so the quota row is locked."""

    drop_dependents: ClassVar[str] = " CASCADE"

    def _lock_table(self, table: str) -> None:
        # Two runs rebuilding the same derived table would race on CREATE and on DELETE + COPY;
        # a transaction-scoped advisory lock per table makes the second wait for the first.
        self._execute("SELECT pg_advisory_xact_lock(hashtext(?))", [table])

    schemes: ClassVar[tuple[str, ...]] = SCHEMES
    row_lock: ClassVar[str] = " FOR UPDATE"
    _conn: psycopg.Connection[Any]

    @classmethod
    def _connect(cls, url: str, *, read_only: bool, lock_wait_s: float) -> PostgresWarehouse:
        target = PostgresTarget(url)
        try:
            conn = psycopg.connect(make_conninfo(target.conninfo, **target.defaults), autocommit=True)
        except psycopg.Error as exc:
            raise WarehouseError(
                f"cannot connect to PostgreSQL at {target.where} "
                f"(database {target.dbname!r}, user {target.user!r}): {target.scrub(exc)}"
            ) from None
        try:
            for name in ("json", "jsonb", "uuid"):
                conn.adapters.register_loader(name, TextLoader)
            conn.adapters.register_loader("numeric", FloatLoader)
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute(f"SET lock_timeout = {max(1, round(lock_wait_s * 1000))}")
            if read_only:
                conn.execute("SET default_transaction_read_only = on")
                (found,) = conn.execute(f"SELECT to_regclass('{SCHEMA_MIGRATIONS}') IS NOT NULL").fetchone()
                if not found:
                    raise WarehouseError(
                        f"no warehouse in {target.display}: run `enrichment-pipeline enrich` first"
                    )
        except BaseException:
            conn.close()
            raise
        return cls(conn, target.display)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        if not params:
            return self._conn.execute(sql)  # no parameters: psycopg leaves `%` alone
        return self._conn.execute(pyformat(sql), list(params))

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        cursor = self._execute(sql, params)
        if cursor.description is None:  # a statement, not a query
            return pl.DataFrame()
        names = [column.name for column in cursor.description]
        types = {
            column.name: _PG_DTYPES[column.type_code]
            for column in cursor.description
            if column.type_code in _PG_DTYPES
        }
        return pl.DataFrame(cursor.fetchall(), schema=names, schema_overrides=types, orient="row")

    @contextlib.contextmanager
    def _staged(self, name: str, frame: pl.DataFrame, types: dict[str, pl.DataType]) -> Iterator[str]:
        # ON COMMIT DROP is the safety net; the explicit DROP lets a joined outer transaction stage again.
        self._execute(f"CREATE TEMP TABLE {name} {column_definitions(types)} ON COMMIT DROP")
        self._bulk_insert(name, frame, types)
        yield name
        self._execute(f"DROP TABLE {name}")

    def _bulk_insert(self, table: str, frame: pl.DataFrame, types: dict[str, pl.DataType]) -> None:
        statement = f"COPY {table} ({quoted_columns(frame.columns)}) FROM STDIN (FORMAT csv)"
        with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(copy_csv(frame))

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        self._execute("SELECT pg_advisory_lock(?)", [_MIGRATION_LOCK_KEY])
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                self._execute("SELECT pg_advisory_unlock(?)", [_MIGRATION_LOCK_KEY])


def copy_csv(frame: pl.DataFrame) -> str:
    """The frame as COPY ... (FORMAT csv) text: NULL unquoted-empty, "" an empty string,
    timestamps in UTC, lists as array literals."""
    columns = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            # A naive timestamp means UTC, as DuckDB reads it with TimeZone = 'UTC'.
            utc = column.dt.replace_time_zone("UTC") if dtype.time_zone is None else column
            column = utc.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        elif isinstance(dtype, pl.List):
            column = _array_literal(column)
        columns.append(column.alias(name))
    return frame.select(columns).write_csv(include_header=False, null_value="", quote_style="non_numeric")


def _array_literal(column: pl.Expr) -> pl.Expr:
    element = pl.element().cast(pl.String)
    quoted = pl.concat_str(
        pl.lit('"'),
        element.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True),
        pl.lit('"'),
    ).fill_null(pl.lit("NULL"))
    return pl.concat_str(pl.lit("{"), column.list.eval(quoted).list.join(","), pl.lit("}"))
