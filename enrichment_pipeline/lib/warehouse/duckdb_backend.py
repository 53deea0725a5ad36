"""The DuckDB dialect: a local file, one writer process at a time, frames through Arrow."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import polars as pl
import pyarrow  # noqa: F401  (imported here, not lazily inside the first write of a run)

from enrichment_pipeline.lib.warehouse import filelock
from enrichment_pipeline.lib.warehouse.base import Warehouse
from enrichment_pipeline.lib.warehouse.schema import WarehouseError


def duckdb_path(url: str) -> Path:
    if not url.startswith("duckdb:///"):
        raise WarehouseError(
            f"unsupported WAREHOUSE_URL {url.split('://')[0]}://…: use duckdb:///path/file.duckdb"
        )
    return Path(url.removeprefix("duckdb:///"))


class DuckDBWarehouse(Warehouse):
    """`duckdb:///path/file.duckdb`. Writers queue on DuckDB's file lock, so no row lock is needed."""

    schemes: ClassVar[tuple[str, ...]] = ("duckdb",)
    _conn: duckdb.DuckDBPyConnection

    @classmethod
    def _connect(cls, url: str, *, read_only: bool, lock_wait_s: float) -> DuckDBWarehouse:
        path = duckdb_path(url)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise WarehouseError(f"no warehouse at {path}: run `enrichment-pipeline enrich` first")
        deadline = time.monotonic() + lock_wait_s
        # Our own processes queue on the sidecar lock; the retry below covers anything else.
        lock = filelock.acquire(path, lock_wait_s)
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                # Another process holds the single DuckDB writer lock: wait, don't fail.
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    filelock.release(lock)
                    raise WarehouseError(f"cannot open {path.name}: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except BaseException:
                filelock.release(lock)
                raise
        conn.execute("SET TimeZone = 'UTC'")
        warehouse = cls(conn, url)
        warehouse._file_lock = lock
        return warehouse

    def close(self) -> None:
        try:
            super().close()
        finally:
            lock, self._file_lock = getattr(self, "_file_lock", None), None
            if lock is not None:
                filelock.release(lock)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> duckdb.DuckDBPyConnection:
        return self._conn.execute(sql, list(params) or None)

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        return self._conn.sql(sql, params=list(params) or None).pl()

    @contextlib.contextmanager
    def _staged(self, name: str, frame: pl.DataFrame, types: dict[str, pl.DataType]) -> Iterator[str]:
        # Zero-copy: DuckDB scans the Arrow buffers in place.
        self._conn.register(name, frame.to_arrow())
        try:
            yield name
        finally:
            self._conn.unregister(name)
