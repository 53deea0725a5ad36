"""Per-key request limits by tier: reads and writes per minute, enrichments per day, jobs at once.

Minute limits are fixed one-minute windows counted in the API's state file, so
every worker process of one deployment (`API_WORKERS`) counts against the same
allowance: one small write per request of a limited key (unlimited keys write
nothing). The daily enrichment allowance and concurrent jobs are counted from the
job records, so they hold across restarts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from enrichment_pipeline.lib.api_state import StateStore

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


_HIT_SQL = """
INSERT INTO rate_windows (key_id, kind, minute, count) VALUES (?, ?, ?, 1)
ON CONFLICT (key_id, kind) DO UPDATE SET
    count = CASE WHEN rate_windows.minute = excluded.minute THEN rate_windows.count + 1 ELSE 1 END,
    minute = excluded.minute
RETURNING count
"""


class MinuteLimiter:
    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def hit(self, key_id: str, tier: str, kind: Kind) -> Decision:
        limits = TIER_LIMITS.get(tier, TIER_LIMITS["standard"])
        limit = limits.reads_per_min if kind == "read" else limits.writes_per_min
        now = self._clock()
        window = int(now // WINDOW_S)
        reset = max(1, math.ceil((window + 1) * WINDOW_S - now))
        if limit is None:
            return Decision(True, None, None, reset)
        # One statement: counted atomically however many processes count at once.
        (count,) = self.store.execute(_HIT_SQL, (key_id, kind, window)).fetchone()
        if count > limit:
            return Decision(False, limit, 0, reset)
        return Decision(True, limit, limit - count, reset)
