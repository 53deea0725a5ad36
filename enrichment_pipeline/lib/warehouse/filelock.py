"""One writer at a time on a DuckDB file, across processes, waiting instead of failing.

DuckDB refuses a second process outright ("Could not set lock on file"); dbt's
DuckDB adapter does not retry. Every process of this project that opens the
file (a Warehouse, a dbt build) first takes an exclusive `flock` on a sidecar
`<file>.lock`, waiting for it, so concurrent runs queue up on the file.
Within one process the lock is re-entrant (DuckDB lets one process hold
several connections to a file).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enrichment_pipeline.lib.warehouse.schema import WarehouseError

_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, holders in this process)
_guard = threading.Lock()


def acquire(database: Path, wait_s: float) -> str:
    lock_path = str(database.with_name(database.name + ".lock"))
    with _guard:
        if lock_path in _held:
            fd, count = _held[lock_path]
            _held[lock_path] = (fd, count + 1)
            return lock_path
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise WarehouseError(
                    f"{database.name} is busy: another run held it for more than {wait_s:.0f} s"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    with _guard:
        _held[lock_path] = (fd, 1)
    return lock_path


def release(lock_path: str) -> None:
    with _guard:
        fd, count = _held[lock_path]
        if count > 1:
            _held[lock_path] = (fd, count - 1)
            return
        del _held[lock_path]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def exclusive(database: Path, wait_s: float = 600.0) -> Iterator[None]:
    lock_path = acquire(database, wait_s)
    try:
        yield
    finally:
        release(lock_path)
