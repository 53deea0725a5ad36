"""Serialized answers kept per data version: a repeated lookup or page costs no query and no JSON.

Every key starts with the source's version (the snapshot's identity, or the
PostgreSQL marts' marker), so a body built from one version of the data is never
served for another: after a swap the first request for a key misses and reads
the new data. Bounded by bytes, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Body:
    content: bytes
    etag: str | None = None
    # A company's body is cut where `age_seconds` goes, which the clock changes on every request.
    tail: bytes = b""
    enriched_at: float | None = None  # POSIX seconds, for `age_seconds`

    @property
    def size(self) -> int:
        return len(self.content) + len(self.tail) + 200  # + the entry's own overhead, roughly


class BodyCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, Hashable], Body] = OrderedDict()
        self._bytes = 0
        self._version: str | None = None
        self.hits = 0
        self.misses = 0

    def get(self, version: str, key: Hashable) -> Body | None:
        with self._lock:
            body = self._entries.get((version, key))
            if body is None:
                self.misses += 1
                return None
            self._entries.move_to_end((version, key))
            self.hits += 1
            return body

    def put(self, version: str, key: Hashable, body: Body) -> None:
        if body.size > self.max_bytes:
            return
        with self._lock:
            if version != self._version:
                # Another version's bodies can no longer be asked for (keys carry the version); free them.
                self._version = version
                self._entries.clear()
                self._bytes = 0
            old = self._entries.pop((version, key), None)
            if old is not None:
                self._bytes -= old.size
            self._entries[(version, key)] = body
            self._bytes += body.size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    def __len__(self) -> int:
        return len(self._entries)
