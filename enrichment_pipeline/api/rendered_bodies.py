"""Every company's lookup body and list item, rendered in the background per version of the data.

A lookup whose body is not cached costs reading the row out of the row index,
building the document and serializing it: about half of the server's CPU for such
a lookup, and random lookups over a large warehouse rarely hit the LRU cache. Once
a version's row index exists, one background thread renders every row's body with
the same function a lookup uses (so the answer, ETag and `age_seconds` are the
same), up to a byte budget (`API_PRERENDER_MB`). Lookups read them without a lock;
a domain not rendered yet, or past the budget, is built on demand as before.
Each company's item of a page (`GET /v1/companies`) is rendered beside it, so a
page ranked in memory is its items joined.

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
RenderItem = Callable[[dict[str, Any]], bytes]

# The render's share of a CPU while it runs: BURST_S of work, then PAUSE_S of sleep, in which
# the event loop takes the GIL back.
BURST_S = 0.002
PAUSE_S = 0.002


class RenderedBodies:
    def __init__(
        self, max_bytes: int, render: Render, render_item: RenderItem | None = None, key: str = "domain"
    ) -> None:
        self.max_bytes = max_bytes
        self.render = render
        self.render_item = render_item
        self.key = key
        self._lock = threading.Lock()
        # (version, bodies, items): replaced as a whole, so a reader sees one version's or none.
        self._current: tuple[str, dict[str, Body], dict[str, bytes]] | None = None
        self._wanted: str | None = None  # the version the newest render works on
        self._complete: str | None = None  # the version whose every row is rendered
        self._thread: threading.Thread | None = None

    def get(self, version: str, key: str) -> Body | None:
        current = self._current
        if current is None or current[0] != version:
            return None
        return current[1].get(key)

    def complete(self, version: str) -> bool:
        """Every row of `version` is rendered (none past the budget, none that failed)."""
        return self._complete == version

    def items(self, version: str, keys: list[str]) -> list[bytes] | None:
        """The list items of `keys`, or None unless every one is rendered."""
        current = self._current
        if current is None or current[0] != version:
            return None
        rendered = current[2]
        try:
            return [rendered[k] for k in keys]
        except KeyError:
            return None

    def ensure(self, index: RowIndex) -> None:
        """Start rendering `index`'s rows unless that version is rendered or being rendered."""
        if self.max_bytes <= 0 or self._wanted == index.version:
            return
        with self._lock:
            if self._wanted == index.version:
                return
            self._wanted = index.version
            bodies: dict[str, Body] = {}
            items: dict[str, bytes] = {}
            self._current = (index.version, bodies, items)  # the old version's are freed here
            self._thread = threading.Thread(
                target=self._render_all, args=(index, bodies, items), name="render-bodies", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the current render ends (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _render_all(self, index: RowIndex, bodies: dict[str, Body], items: dict[str, bytes]) -> None:
        started = time.perf_counter()
        size = 0
        outcome = "rendered"
        burst_end = time.perf_counter() + BURST_S
        failed = 0
        for row in index.iter_rows():
            key = row[self.key]
            try:
                item = None if self.render_item is None else self.render_item(row)
                body = self.render(row)
            except Exception:
                # Left to the on-demand path, which answers for that row as it always did.
                failed += 1
                continue
            size += body.size + (0 if item is None else len(item) + 100)
            if size > self.max_bytes:
                outcome = "stopped at the API_PRERENDER_MB budget"
                break
            bodies[key] = body
            if item is not None:
                items[key] = item
            if time.perf_counter() > burst_end:
                if self._wanted != index.version:
                    outcome = "stopped: a newer version of the data is being rendered"
                    break
                time.sleep(PAUSE_S)
                burst_end = time.perf_counter() + BURST_S
        if outcome == "rendered" and not failed:
            self._complete = index.version
        log.info(
            "lookup bodies and list items of %s %s: %d of %d companies (%d left to lookups: not renderable), "
            "%.0f MiB in %.1f s",
            index.version,
            outcome,
            len(bodies),
            len(index),
            failed,
            size / 2**20,
            time.perf_counter() - started,
        )
