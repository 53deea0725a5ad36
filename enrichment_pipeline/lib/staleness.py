"""Which enriched domains are due for a refresh, in SQL DuckDB and PostgreSQL share.

Every row of `raw.provider_responses` carries `expires_at`: fetch time plus the
provider's TTL for an answer (`ok`), its `not_found_ttl` for a `not_found`,
ten minutes for a queued answer, and the fetch time itself for anything else
(an error, a quota stop, a skipped provider), which is asked again next time.
The fetcher serves a row from cache while `expires_at > now`; a domain is
*stale* as soon as one of its rows is not served any more, i.e. its oldest
`expires_at` is at or before `now`. Oldest first, so a `limit` keeps the most
overdue.

Only rows of the providers a run would call count (a disabled provider's old
rows would otherwise make a domain stale forever), and only rows of one mode
(sandbox answers never make a live domain fresh).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from enrichment_pipeline.lib.cost import Configured, DomainNeeds
from enrichment_pipeline.lib.warehouse import RESPONSES, Warehouse
from enrichment_pipeline.lib.warehouse.schema import answered_sql

__all__ = [
    "KeyRange",
    "RefreshPlan",
    "Staleness",
    "plan_refresh",
    "stale_domains",
    "staleness",
    "unfetched_domains",
]


def _filters(
    mode: str | None, providers: Collection[str] | None, answered_only: bool = False
) -> tuple[str, list[Any]]:
    where, args = [], []
    if answered_only:
        where.append(answered_sql())
    if mode is not None:
        where.append("mode = ?")
        args.append(mode)
    if providers is not None:
        names = sorted(set(providers))
        if not names:
            return "WHERE 1 = 0", []
        where.append(f"provider IN ({', '.join('?' for _ in names)})")
        args.extend(names)
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


def stale_domains(
    warehouse: Warehouse,
    now: datetime,
    limit: int | None = None,
    *,
    mode: str | None = None,
    providers: Collection[str] | None = None,
) -> list[str]:
    """Domains whose oldest provider row has expired (`expires_at <= now`), most overdue first."""
    where, args = _filters(mode, providers)
    sql = f"""SELECT domain, min(expires_at) AS oldest
              FROM {RESPONSES} {where}
              GROUP BY domain
              HAVING min(expires_at) <= ?
              ORDER BY oldest, domain"""
    args.append(now)
    if limit is not None:
        sql += " LIMIT ?"
        args.append(max(0, int(limit)))
    return [domain for domain, _ in warehouse.query(sql, args).iter_rows()]


def unfetched_domains(warehouse: Warehouse, keys: Sequence[str], *, mode: str | None = None) -> list[str]:
    """The keys with no row at all (registered, never written: a crashed run, a lost sensor tick)."""
    where, args = _filters(mode, None)
    seen = {
        d for (d,) in warehouse.query(f"SELECT DISTINCT domain FROM {RESPONSES} {where}", args).iter_rows()
    }
    return [k for k in keys if k not in seen]


@dataclass(frozen=True)
class Staleness:
    domains: int  # domains with at least one row
    stale: int  # of which stale
    oldest_expiry: datetime | None  # the most overdue stale row's expires_at


def staleness(
    warehouse: Warehouse,
    now: datetime,
    *,
    mode: str | None = None,
    providers: Collection[str] | None = None,
    answered_only: bool = False,
) -> Staleness:
    """How much of the cache is past its TTL, in one query (for checks and logs).

    `answered_only`: count only answers (`ok`, `not_found`), i.e. data that has aged, not
    failures that are due for a retry at once.
    """
    where, args = _filters(mode, providers, answered_only)
    row = warehouse.query(
        f"""SELECT count(*) AS domains,
                   count(*) FILTER (WHERE oldest <= ?) AS stale,
                   min(oldest) FILTER (WHERE oldest <= ?) AS oldest_expiry
            FROM (SELECT domain, min(expires_at) AS oldest FROM {RESPONSES} {where} GROUP BY domain) t""",
        [now, now, *args],
    ).row(0)
    return Staleness(domains=int(row[0] or 0), stale=int(row[1] or 0), oldest_expiry=row[2])


# -- what one tick re-enriches -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRange:
    """One run's contiguous partition range: every key in it is a target or costs no call."""

    keys: tuple[str, ...]
    targets: tuple[str, ...]

    @property
    def start(self) -> str:
        return self.keys[0]

    @property
    def end(self) -> str:
        return self.keys[-1]


@dataclass(frozen=True)
class RefreshPlan:
    ranges: tuple[KeyRange, ...]
    deferred: dict[str, str]  # target -> why it waits for a later tick
    calls: dict[str, int]  # provider -> upper-bound calls of all ranges together


class _Tally:
    """Upper-bound calls per provider of a set of domains, counted the way `cost.summarize` does."""

    def __init__(self, providers: Configured) -> None:
        self._providers = {p.name: p for p, _ in providers}
        self._price = {p.name: s.cost_per_call for p, s in providers}
        self.domains: Counter[str] = Counter()
        self.per_domain: Counter[str] = Counter()
        self.per_batch: dict[str, int] = {}

    def copy(self) -> _Tally:
        other = _Tally([])
        other._providers, other._price = self._providers, self._price
        other.domains, other.per_domain = Counter(self.domains), Counter(self.per_domain)
        other.per_batch = dict(self.per_batch)
        return other

    def add(self, domain: str, needs: DomainNeeds) -> None:
        for name, need in needs.items():
            self.domains[name] += 1
            self.per_domain[name] += need.calls_max
            provider = self._providers[name]
            self.per_batch[name] = max(self.per_batch.get(name, 1), len(provider.endpoints(domain)))

    def calls(self, name: str) -> int:
        provider = self._providers[name]
        if provider.batch_size > 1:
            return math.ceil(self.domains[name] / provider.batch_size) * self.per_batch.get(name, 1)
        return self.per_domain[name]

    def all_calls(self) -> dict[str, int]:
        return {name: self.calls(name) for name in self.domains}

    def cost(self) -> float:
        return sum(self.calls(name) * self._price[name] for name in self.domains)


def plan_refresh(
    span: Sequence[str],
    targets: Collection[str],
    needs: Mapping[str, DomainNeeds],
    providers: Configured,
    *,
    quota_left: Mapping[str, int | None],
    budget: float | None = None,
    busy: Collection[str] = (),
    max_domains: int | None = None,
    max_ranges: int = 5,
) -> RefreshPlan:
    """Cut `span` (partition keys in partition order) into the fewest contiguous ranges that hold the
    targets that fit, walking in partition order.

    A key inside a range is either a target (counted against the day's quota and the per-run
    budget) or a key the run would make no call for (fresh in cache: free). A key that would cost
    calls but is not a target, a target beyond the quota or the budget, and a key a running
    enrichment is working on all end the current range, since a run over them would fetch them.
    """
    wanted = set(targets)
    busy_keys = set(busy)
    ranges: list[KeyRange] = []
    deferred: dict[str, str] = {}
    closed: Counter[str] = Counter()
    current: list[str] = []
    tally = _Tally(providers)
    taken = 0

    def costs(name_needs: DomainNeeds) -> bool:
        return any(n.calls_max > 0 for n in name_needs.values())

    def within_quota(candidate: _Tally) -> bool:
        for name, calls in candidate.all_calls().items():
            left = quota_left.get(name)
            if left is not None and closed[name] + calls > left:
                return False
        return True

    def within_budget(candidate: _Tally) -> bool:
        return budget is None or candidate.cost() <= budget + 1e-9

    def close() -> None:
        nonlocal current, tally
        while current and current[-1] not in wanted:
            current.pop()
        if current:
            ranges.append(KeyRange(tuple(current), tuple(k for k in current if k in wanted)))
            closed.update(tally.all_calls())
        current, tally = [], _Tally(providers)

    for key in span:
        if len(ranges) >= max_ranges or (max_domains is not None and taken >= max_domains):
            break
        key_needs = needs.get(key, {})
        if key in busy_keys:
            if key in wanted:
                deferred[key] = "a running enrichment covers it"
            close()
            continue
        if not costs(key_needs):
            if current:
                current.append(key)  # free: served from cache (kept only if a target follows)
            continue
        if key not in wanted:
            close()  # would be fetched, but is not stale
            continue
        candidate = tally.copy()
        candidate.add(key, key_needs)
        if within_quota(candidate) and within_budget(candidate):
            current.append(key)
            tally = candidate
            taken += 1
            continue
        alone = _Tally(providers)
        alone.add(key, key_needs)
        if current and not within_budget(candidate) and within_budget(alone):
            close()  # this run is full: the key starts the next one
            if len(ranges) >= max_ranges:
                deferred[key] = f"this tick already launches {max_ranges} runs"
                break
            if within_quota(alone):
                current, tally = [key], alone
                taken += 1
                continue
        close()
        deferred[key] = "over today's quota" if not within_quota(alone) else "over the per-run budget"
    close()
    ranges = ranges[:max_ranges]
    calls: Counter[str] = Counter()
    for r in ranges:
        t = _Tally(providers)
        for k in r.keys:
            t.add(k, needs.get(k, {}))
        calls.update(t.all_calls())
    return RefreshPlan(ranges=tuple(ranges), deferred=deferred, calls=dict(calls))
