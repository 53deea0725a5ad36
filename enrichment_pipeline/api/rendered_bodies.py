"""Every company's lookup body, rendered in the background for the current version of the data.

A lookup whose body is not cached costs reading the row out of the row index,
building the document and serializing it: about half of the server's CPU for such
a lookup, and random lookups over a large warehouse rarely hit the LRU cache. Once
a version's row index exists, one background thread renders every row's body with
the same function a lookup uses (so the answer, ETag and `age_seconds` are the
same), up to a byte budget (`API_PRERENDER_MB`). Lookups read them without a lock;
a domain not rendered yet, or past the budget, is built on demand as before.

The thread works in short bursts and sleeps between them, so the event loop keeps
most of the CPU while a render runs; a newer version stops an older render.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from enrichment_pipeline.api.body_cache import Body
from enrichment_pipeline.lib.read_sources import RowIndex

log = logging.getLogger(__name__)

Render = Callable[[dict[str, Any]], Body]

# The render's share of a CPU while it runs: BURST_S of work, then PAUSE_S of sleep, in which
# the event loop takes the GIL back.
BURST_S = 0.002
PAUSE_S = 0.002


class RenderedBodies:
    def __init__(self, max_bytes: int, render: Render, key: str = "domain") -> None:
        self.max_bytes = max_bytes
        self.render = render
        self.key = key
        self._lock = threading.Lock()
        # (version, bodies): replaced as a whole, so a reader sees one version's dict or none.
        self._current: tuple[str, dict[str, Body]] | None = None
        self._wanted: str | None = None  # the version the newest render works on
        self._thread: threading.Thread | None = None

    def get(self, version: str, key: str) -> Body | None:
        current = self._current
        if current is None or current[0] != version:
            return None
        return current[1].get(key)

    def ensure(self, index: RowIndex) -> None:
        """Start rendering `index`'s rows unless that version is rendered or being rendered."""
        if self.max_bytes <= 0 or self._wanted == index.version:
            return
        with self._lock:
            if self._wanted == index.version:
                return
            self._wanted = index.version
            bodies: dict[str, Body] = {}
            self._current = (index.version, bodies)  # the old version's bodies are freed here
            self._thread = threading.Thread(
                target=self._render_all, args=(index, bodies), name="render-bodies", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the current render ends (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _render_all(self, index: RowIndex, bodies: dict[str, Body]) -> None:
        started = time.perf_counter()
        size = 0
        outcome = "rendered"
        burst_end = time.perf_counter() + BURST_S
        failed = 0
        for row in index.iter_rows():
            try:
                body = self.render(row)
            except Exception:
                # Left to the on-demand path, which answers for that row as it always did.
                failed += 1
                continue
            size += body.size
            if size > self.max_bytes:
                outcome = "stopped at the API_PRERENDER_MB budget"
                break
            bodies[row[self.key]] = body
            if time.perf_counter() > burst_end:
                if self._wanted != index.version:
                    outcome = "stopped: a newer version of the data is being rendered"
                    break
                time.sleep(PAUSE_S)
                burst_end = time.perf_counter() + BURST_S
        log.info(
            "lookup bodies of %s %s: %d of %d companies (%d left to lookups: not renderable), "
            "%.0f MiB in %.1f s",
            index.version,
            outcome,
            len(bodies),
            len(index),
            failed,
            size / 2**20,
            time.perf_counter() - started,
        )
