"""What an enrichment would cost, worked out from the cache before anything is called.

The estimate replays the fetcher's decisions (`lib/fetching.py`) without calling
anyone: a provider whose answers for a domain are all fresh costs nothing, and
the waterfall is walked level by level from what the cache already fills.

* Level 0 of the waterfall is certain: those providers are called for every
  domain the cache does not answer, whatever the others say.
* Lower levels are only called where the levels above leave a field group
  empty, and that is not known before the answers arrive. They are reported as
  a range: at least 0 calls, at most as if every higher provider came back
  empty. The upper bound is what budgets and quotas are checked against.

Calls are requests as sent once: batch providers put `batch_size` domains in a
call (`ceil(n / batch_size)` calls, times their endpoints for multi-call bulk
flows such as Explorium's match + enrichments); per-domain providers make one
call per endpoint the cache lacks. Retries, SimilarWeb's one country fallback
and rate-limit pauses can add calls; a provider whose calls depend on its
answers (Yahoo's ticker search) says its own range (`Provider.call_range`).

Pure Python over the `Warehouse` API, no Dagster: the CLI, the raw asset and
the stale re-enrich schedule all use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enrichment_pipeline.lib import settings
from enrichment_pipeline.lib.fields import filled_groups
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.registry import configured_providers
from enrichment_pipeline.lib.settings import ProviderSettings, env_float
from enrichment_pipeline.lib.warehouse import Warehouse, duckdb_path
from enrichment_pipeline.lib.waterfall import Waterfall, load_waterfall

__all__ = [
    "BUDGET_ENV",
    "BudgetExceeded",
    "Estimate",
    "Need",
    "ProviderEstimate",
    "cache_state",
    "domain_needs",
    "enforce_budget",
    "estimate",
    "estimate_url",
    "max_cost_usd",
    "plan_needs",
    "quota_used",
    "summarize",
]

BUDGET_ENV = "ENRICHMENT_MAX_COST_USD"

Configured = Sequence[tuple[Provider, ProviderSettings]]


class BudgetExceeded(RuntimeError):
    """The upper-bound cost of a run is above `ENRICHMENT_MAX_COST_USD`; nothing was called."""

    def __init__(self, message: str, estimate: Estimate) -> None:
        super().__init__(message)
        self.estimate = estimate


@dataclass(frozen=True)
class Need:
    """One provider's calls for one domain.

    `certain`: called at waterfall level 0, whatever the others answer; else
    only if the levels above leave a group empty. `calls_min`/`calls_max` are
    per-domain calls for per-domain providers (batch providers are counted per
    batch in `summarize`).
    """

    certain: bool
    calls_min: int
    calls_max: int


DomainNeeds = dict[str, Need]  # provider -> need; a provider not listed is not called


@dataclass(frozen=True)
class ProviderEstimate:
    provider: str
    level: int | None  # first waterfall level that may call it (None: in no group, never called)
    domains_min: int  # domains it is certainly called for
    domains_max: int  # domains it may be called for
    cached_domains: int  # domains it answers entirely from cache
    calls_min: int
    calls_max: int
    cost_per_call: float
    daily_quota: int | None
    quota_used: int

    @property
    def cost_min(self) -> float:
        return self.calls_min * self.cost_per_call

    @property
    def cost_max(self) -> float:
        return self.calls_max * self.cost_per_call

    @property
    def quota_left(self) -> int | None:
        """Calls left today (UTC day, as the HTTP policy counts); None: no daily quota."""
        if self.daily_quota is None:
            return None
        return max(0, self.daily_quota - self.quota_used)

    @property
    def within_quota(self) -> bool:
        left = self.quota_left
        return left is None or self.calls_max <= left


@dataclass(frozen=True)
class Estimate:
    mode: str
    domains: int
    providers: tuple[ProviderEstimate, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)  # provider -> why it will not be called
    forced: bool = False

    @property
    def calls_min(self) -> int:
        return sum(p.calls_min for p in self.providers)

    @property
    def calls_max(self) -> int:
        return sum(p.calls_max for p in self.providers)

    @property
    def cost_min(self) -> float:
        return sum(p.cost_min for p in self.providers)

    @property
    def cost_max(self) -> float:
        return sum(p.cost_max for p in self.providers)

    def provider(self, name: str) -> ProviderEstimate:
        for p in self.providers:
            if p.provider == name:
                return p
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        """JSON-able, for run metadata and logs."""
        return {
            "mode": self.mode,
            "domains": self.domains,
            "calls": [self.calls_min, self.calls_max],
            "cost_usd": [round(self.cost_min, 4), round(self.cost_max, 4)],
            "providers": {
                p.provider: {
                    "calls": [p.calls_min, p.calls_max],
                    "cost_usd": [round(p.cost_min, 4), round(p.cost_max, 4)],
                    "quota_left": p.quota_left,
                }
                for p in self.providers
            },
            "skipped": dict(self.skipped),
        }


# -- inputs -----------------------------------------------------------------------------------------------


def cache_state(
    warehouse: Warehouse | None, provider: str, domains: Sequence[str], mode: str, now: datetime
) -> tuple[set[tuple[str, str]], dict[str, dict[str, Any]]]:
    """Fresh (endpoint, domain) keys and `ok` payloads: exactly what the raw asset will serve
    from cache (`Warehouse.fresh_answers`, which reads only these domains)."""
    if warehouse is None:
        return set(), {}
    return warehouse.fresh_answers(provider, list(dict.fromkeys(domains)), mode, now)


def plan_needs(
    domains: Sequence[str],
    providers: Configured,
    waterfall: Waterfall | None,
    fresh: Mapping[str, Collection[tuple[str, str]]],
    cached: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, DomainNeeds]:
    """Per domain, which providers a run would call, replaying `fetch_domains` on the cache.

    Level 0 is walked exactly; later levels assume the calls above fill nothing,
    which makes them an upper bound.
    """
    by_name = {p.name: p for p, _ in providers}
    active = set(by_name)
    out: dict[str, DomainNeeds] = {}
    for domain in dict.fromkeys(domains):
        called: set[str] = set()
        filled: dict[str, int] = {}
        for name, provider in by_name.items():
            provider_fresh = fresh.get(name, ())
            if all((e, domain) in provider_fresh for e in provider.endpoints(domain)):
                called.add(name)
                payloads = cached.get(name, {}).get(domain, {})
                groups = filled_groups(provider.extract(domain, payloads))
                fills = waterfall.fill_positions(name, groups) if waterfall else dict.fromkeys(groups, 0)
                Waterfall.merge_fills(filled, fills)
        needs: DomainNeeds = {}
        levels = waterfall.depth if waterfall is not None else 1
        for level in range(levels):
            wanted = active - called if waterfall is None else waterfall.wanted(level, filled, called, active)
            for name in sorted(wanted):
                provider, provider_fresh = by_name[name], fresh.get(name, ())
                missing = [e for e in provider.endpoints(domain) if (e, domain) not in provider_fresh]
                low, high = provider.call_range(domain, missing)
                needs[name] = Need(certain=level == 0, calls_min=low, calls_max=high)
            called |= wanted
        out[domain] = needs
    return out


def domain_needs(
    warehouse: Warehouse | None,
    domains: Sequence[str],
    now: datetime,
    mode: str,
    providers: Configured,
    waterfall: Waterfall | None,
    *,
    force: bool = False,
) -> dict[str, DomainNeeds]:
    """`plan_needs` on the warehouse's cache (`force`: as if the cache were empty)."""
    fresh: dict[str, set[tuple[str, str]]] = {}
    cached: dict[str, dict[str, dict[str, Any]]] = {}
    if not force:
        for provider, _ in providers:
            fresh[provider.name], cached[provider.name] = cache_state(
                warehouse, provider.name, domains, mode, now
            )
    return plan_needs(domains, providers, waterfall, fresh, cached)


def quota_used(warehouse: Warehouse | None, providers: Configured, now: datetime) -> dict[str, int]:
    """Calls each provider has used of today's quota (the UTC day, as the HTTP policy counts)."""
    if warehouse is None:
        return {p.name: 0 for p, _ in providers}
    return {p.name: warehouse.quota_used(p.name, now.astimezone(UTC).date()) for p, _ in providers}


def _first_level(waterfall: Waterfall | None, name: str) -> int | None:
    if waterfall is None:
        return 0
    levels = [
        0 if rule.strategy == "all" else rule.providers.index(name)
        for rule in waterfall.groups.values()
        if name in rule.providers
    ]
    return min(levels) if levels else None


def summarize(
    needs: Mapping[str, DomainNeeds],
    providers: Configured,
    *,
    waterfall: Waterfall | None,
    quota_used: Mapping[str, int],
    mode: str,
    skipped: Mapping[str, str] | None = None,
    forced: bool = False,
) -> Estimate:
    """Per provider: calls (min..max), cost and quota, for the domains in `needs`."""
    rows = []
    for provider, provider_settings in providers:
        name = provider.name
        mine = [(d, n[name]) for d, n in needs.items() if name in n]
        certain = [d for d, need in mine if need.certain]
        if provider.batch_size > 1:
            per_batch = max((len(provider.endpoints(d)) for d, _ in mine), default=1)
            calls_min = math.ceil(len(certain) / provider.batch_size)
            calls_max = math.ceil(len(mine) / provider.batch_size) * per_batch
        else:
            calls_min = sum(need.calls_min for _, need in mine if need.certain)
            calls_max = sum(need.calls_max for _, need in mine)
        rows.append(
            ProviderEstimate(
                provider=name,
                level=_first_level(waterfall, name),
                domains_min=len(certain),
                domains_max=len(mine),
                cached_domains=len(needs) - len(mine),
                calls_min=calls_min,
                calls_max=calls_max,
                cost_per_call=provider_settings.cost_per_call,
                daily_quota=provider_settings.daily_quota,
                quota_used=quota_used.get(name, 0),
            )
        )
    return Estimate(
        mode=mode, domains=len(needs), providers=tuple(rows), skipped=dict(skipped or {}), forced=forced
    )


def estimate(
    warehouse: Warehouse | None,
    domains: Sequence[str],
    now: datetime,
    mode: settings.Mode,
    *,
    providers: Configured | None = None,
    waterfall: Waterfall | None = None,
    force: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Estimate:
    """The calls and cost of enriching `domains` now (normalized partition keys).

    `providers` default to what the environment configures (`configured_providers`),
    `waterfall` to `load_waterfall()`. `force` ignores the cache, like the raw
    asset's `force` config. `warehouse=None` means an empty cache and no quota used.
    """
    skipped: dict[str, str] = {}
    if providers is None:
        providers, skipped = configured_providers(mode, environ)
    if waterfall is None:
        waterfall = load_waterfall(environ=environ)
    needs = domain_needs(warehouse, domains, now, mode, providers, waterfall, force=force)
    return summarize(
        needs,
        providers,
        waterfall=waterfall,
        quota_used=quota_used(warehouse, providers, now),
        mode=mode,
        skipped=skipped,
        forced=force,
    )


def estimate_url(
    url: str, domains: Sequence[str], now: datetime, mode: settings.Mode, **kwargs: Any
) -> Estimate:
    """`estimate` against the warehouse at `url`, without creating one: a DuckDB file that does
    not exist yet is an empty cache (PostgreSQL is opened, and migrated, as a run would)."""
    if url.startswith("duckdb:"):
        if not duckdb_path(url).exists():
            return estimate(None, domains, now, mode, **kwargs)
        with Warehouse.open(url, read_only=True) as wh:
            return estimate(wh, domains, now, mode, **kwargs)
    with Warehouse.open(url) as wh:
        return estimate(wh, domains, now, mode, **kwargs)


# -- budget -----------------------------------------------------------------------------------------------


def max_cost_usd(environ: Mapping[str, str] | None = None) -> float | None:
    """`ENRICHMENT_MAX_COST_USD`: the most one run may cost in US dollars (upper bound), None when unset."""
    return env_float(os.environ if environ is None else environ, BUDGET_ENV, None)


def enforce_budget(estimate: Estimate, environ: Mapping[str, str] | None = None) -> None:
    """Raise `BudgetExceeded` when the estimate's upper bound is above `ENRICHMENT_MAX_COST_USD`."""
    budget = max_cost_usd(environ)
    if budget is None or estimate.cost_max <= budget + 1e-9:
        return
    worst = sorted(estimate.providers, key=lambda p: p.cost_max, reverse=True)
    parts = ", ".join(f"{p.provider} ${p.cost_max:.2f}" for p in worst if p.cost_max > 0)
    raise BudgetExceeded(
        f"estimated cost of {estimate.domains} domain(s) is up to ${estimate.cost_max:.2f} "
        f"(at least ${estimate.cost_min:.2f}; {parts}), above {BUDGET_ENV}=${budget:.2f}. "
        f"Nothing was called. Enrich fewer domains, raise {BUDGET_ENV}, or see the estimate with --dry-run.",
        estimate,
    )
