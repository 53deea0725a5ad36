"""The serving file: a read-only copy of the marts that BI tools open while the pipeline writes.

DuckDB allows one writer process per file, and while it holds the file no other
process can open it, not even to read. So BI tools never open the warehouse:
after each successful run, the process that holds the warehouse copies every
table of the `marts` schema (Python-written and dbt-built) into a new DuckDB
file at a temporary path next to the serving file, then `os.replace`s it over
the serving file. The swap is atomic: a reader that opened the old file keeps
reading a consistent snapshot (the old inode lives until it closes), a new
reader gets the new file, and nobody ever sees half a copy. Works from a DuckDB
or a PostgreSQL warehouse (frames are read through `Warehouse.table`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from enrichment_pipeline.lib.warehouse import Warehouse, duckdb_path

SERVING_ENV = "SERVING_DUCKDB"
SERVING_FILE = "serving.duckdb"
SCHEMAS = ("marts",)
# One row describing the snapshot, for a BI tool (or a person) asking how fresh it is.
INFO_TABLE = "main.serving_info"
# Written in DuckDB 1.0's storage format, so BI tools bundling an older DuckDB (JDBC/ODBC
# drivers, Metabase, DBeaver) can open it; every type the marts use exists there.
STORAGE_VERSION = "v1.0.0"


def serving_path(url: str, environ: Mapping[str, str] | None = None) -> Path:
    """`SERVING_DUCKDB`, else `serving.duckdb` next to a DuckDB warehouse, else `data/serving.duckdb`."""
    env = os.environ if environ is None else environ
    override = env.get(SERVING_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    if url.strip().lower().startswith("duckdb:"):
        return duckdb_path(url).parent / SERVING_FILE
    return Path.cwd() / "data" / SERVING_FILE


def tables_to_publish(warehouse: Warehouse, schemas: tuple[str, ...] = SCHEMAS) -> list[str]:
    """`schema.table` of every table and view in the schemas, sorted."""
    marks = ", ".join("?" for _ in schemas)
    frame = warehouse.query(
        f"SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ({marks})",
        list(schemas),
    )
    return sorted(f"{s}.{t}" for s, t in frame.iter_rows())


def publish(
    warehouse: Warehouse,
    path: str | os.PathLike[str],
    schemas: tuple[str, ...] = SCHEMAS,
    *,
    storage_version: str = STORAGE_VERSION,
) -> dict[str, int]:
    """Copy the schemas' tables into a new DuckDB file and swap it in atomically.

    Returns rows per `schema.table`. On any error the previous serving file is
    left as it was and the temporary file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per publisher, in the same directory (same filesystem) so the rename is atomic.
    tmp = target.with_name(f"{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    counts: dict[str, int] = {}
    try:
        conn = duckdb.connect(str(tmp), config={"storage_compatibility_version": storage_version})
        try:
            conn.execute("SET TimeZone = 'UTC'")
            for schema in schemas:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for table in tables_to_publish(warehouse, schemas):
                frame = _portable(warehouse.table(table))
                schema, name = table.split(".")
                conn.register("_serving_incoming", frame.to_arrow())
                try:
                    conn.execute(f'CREATE TABLE "{schema}"."{name}" AS SELECT * FROM _serving_incoming')
                finally:
                    conn.unregister("_serving_incoming")
                if "domain" in frame.columns:
                    # Lookups by domain (the read API, BI drill-downs) use the index instead of a scan.
                    conn.execute(f'CREATE INDEX "{name}_domain" ON "{schema}"."{name}" (domain)')
                counts[table] = frame.height
            conn.execute(
                f"CREATE TABLE {INFO_TABLE} AS SELECT ?::TIMESTAMPTZ AS published_at, "
                "?::VARCHAR AS warehouse, ?::INTEGER AS tables, ?::BIGINT AS total_rows",
                [datetime.now(UTC), warehouse.url, len(counts), sum(counts.values())],
            )
            conn.execute("CHECKPOINT")
        finally:
            conn.close()
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    return counts


def _portable(frame: pl.DataFrame) -> pl.DataFrame:
    """All-NULL columns of unknown type (PostgreSQL can return those) as text."""
    nulls = [name for name, dtype in frame.schema.items() if dtype == pl.Null]
    return frame.with_columns(pl.col(nulls).cast(pl.String)) if nulls else frame


def _fsync(path: Path) -> None:
    """Flush a file (or a directory entry) to disk, so a crash never leaves a renamed empty file."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
