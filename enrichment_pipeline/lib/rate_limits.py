"""Per-key request limits by tier: reads and writes per minute, enrichments per day, jobs at once.

Minute limits are fixed one-minute windows counted in the API process (one
`make api` process serves a deployment; several workers would each count their
own). The daily enrichment allowance and concurrent jobs are counted from the
job records, so they hold across restarts.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Literal

Kind = Literal["read", "write"]
WINDOW_S = 60


@dataclass(frozen=True)
class TierLimits:
    reads_per_min: int | None  # None: unlimited
    writes_per_min: int | None
    enrichments_per_day: int | None  # domains accepted per UTC day
    concurrent_jobs: int | None


TIER_LIMITS: dict[str, TierLimits] = {
    "standard": TierLimits(100, 20, 50, 2),
    "power": TierLimits(500, 100, 200, 5),
    "admin": TierLimits(None, None, None, None),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int | None
    remaining: int | None
    reset_s: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        if self.limit is None:
            return {}
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_S}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_s)
        return headers


class MinuteLimiter:
    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, Kind], tuple[int, int]] = {}  # -> (window index, count)

    def hit(self, key_id: str, tier: str, kind: Kind) -> Decision:
        limits = TIER_LIMITS.get(tier, TIER_LIMITS["standard"])
        limit = limits.reads_per_min if kind == "read" else limits.writes_per_min
        now = self._clock()
        window = int(now // WINDOW_S)
        reset = max(1, math.ceil((window + 1) * WINDOW_S - now))
        if limit is None:
            return Decision(True, None, None, reset)
        with self._lock:
            seen_window, count = self._counts.get((key_id, kind), (window, 0))
            if seen_window != window:
                count = 0
            if count >= limit:
                self._counts[(key_id, kind)] = (window, count)
                return Decision(False, limit, 0, reset)
            count += 1
            self._counts[(key_id, kind)] = (window, count)
        return Decision(True, limit, limit - count, reset)
