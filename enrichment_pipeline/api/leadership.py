"""Which of the processes serving one API state file runs the enrichment jobs.

With several worker processes (`API_WORKERS`), any of them may accept a job, but
only one may launch its Dagster runs, watch them and send its webhook: the one
holding an exclusive lock on `<state file>.leader`. The kernel frees the lock
when its holder exits, however it exits, and another process takes over.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class Leadership:
    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".leader")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """True when this process leads (now or already); never waits."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the lock
