"""Fetch many domains from many providers concurrently, within each provider's limits.

Every provider gets its own workers, rate limit and circuit breaker, so a slow
or failing provider never holds back the others. With a waterfall, providers
are called level by level and a lower provider only for the domains whose
field groups are still empty (see `lib/waterfall.py`).

Every answer is handed over as it arrives, in batches at most `flush_interval_s`
apart, so a crash loses at most the answers in flight and the last fraction of a
second: a re-run reads what the stopped run received as cache and pays for
nothing twice. Answers of domains still in progress go to `write` (the
warehouse keeps them in `raw.response_journal`); a domain no provider will be
asked about any more goes to `complete` with its answers not handed over yet,
and the warehouse writes it whole into `raw.provider_responses` in one
transaction, so readers of that table (and the marts built from it) never see
a half-enriched domain. Without `complete`, every answer goes to `write`.

`fetch_into` is the whole raw step over a warehouse: the plan from its cache, the
budget check before any call, the rows of skipped providers, then `fetch_domains`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from enrichment_pipeline.lib import cost
from enrichment_pipeline.lib.fields import filled_groups
from enrichment_pipeline.lib.http_policy import ProviderClient, ProviderStats, QuotaLedger
from enrichment_pipeline.lib.providers.base import CallResult, Emit, Provider
from enrichment_pipeline.lib.redaction import Redactor
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.staging import read_answer
from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse
from enrichment_pipeline.lib.waterfall import Waterfall

log = logging.getLogger(__name__)

# A "queued" answer (Clearbit 202) is asked again soon, not after the full TTL.
_PENDING_RECHECK = timedelta(minutes=10)


@dataclass
class FetchPlan:
    """The run's domains and what the cache already answers."""

    domains: list[str]
    fresh: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # provider -> {(endpoint, domain)}
    # provider -> domain -> endpoint -> payload of fresh `ok` answers (the waterfall reads them)
    cached: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class FetchReport:
    stats: dict[str, ProviderStats]
    rows_written: int
    domains_written: int
    seconds: float
    disabled: dict[str, str]


WriteRows = Callable[[list[ResponseRow]], None]
# Finished domains, and their answers not handed to `write` (all in one transaction).
CompleteDomains = Callable[[list[str], list[ResponseRow]], None]
Progress = Callable[[int, int], None]

# How late an answer may be written after it arrived: what a crash can lose on top of
# the calls in flight. Batching within it keeps the writes few when answers are many.
FLUSH_INTERVAL_S = 0.25


def expires_at(provider: Provider, status: str, fetched_at: datetime) -> datetime:
    if status == "ok":
        return fetched_at + provider.ttl
    if status == "not_found":
        return fetched_at + provider.not_found_ttl
    if status == "pending":
        return fetched_at + _PENDING_RECHECK
    return fetched_at


class _Lander:
    """Hands every answer to `write` within `interval` seconds of its arrival, and each
    finished domain to `complete` after its rows.

    One task writes, in a worker thread, one batch after the other, so a database
    write never stalls the event loop (and with it every provider's pacing) and
    batches land in order. A failed write stops the run: no answer is bought
    that could not be kept."""

    def __init__(
        self,
        write: WriteRows,
        complete: CompleteDomains | None,
        interval: float,
        progress: Progress | None,
        total: int,
    ) -> None:
        self._write = write
        self._complete = complete
        self._interval = interval
        self._rows: list[ResponseRow] = []
        self._finished: list[str] = []
        self._since: float | None = None  # monotonic arrival of the oldest unwritten item
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._progress = progress
        self._step = max(1, total // 100)
        self.total = total
        self.rows_written = 0
        self.domains_written = 0
        self.done = 0

    def add(self, rows: list[ResponseRow]) -> None:
        self._check()
        if rows:
            self._rows.extend(rows)
            self._pending()

    def finish(self, domain: str) -> None:
        self._check()
        self.done += 1
        self._finished.append(domain)
        self._pending()
        if self._progress and (self.done % self._step == 0 or self.done == self.total):
            self._progress(self.done, self.total)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _pending(self) -> None:
        if self._since is None:
            self._since = time.monotonic()
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._since is None:
                    if self._closing:
                        return
                    continue
                wait = self._since + self._interval - time.monotonic()
                if wait > 0 and not self._closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closed.wait(), wait)
                rows, finished = self._rows, self._finished
                self._rows, self._finished, self._since = [], [], None
                await asyncio.to_thread(self._land, rows, finished)
                self.rows_written += len(rows)
                self.domains_written += len(finished)
                if self._closing:
                    self._wake.set()  # write what arrived during this batch, then stop
        except BaseException as exc:
            self._error = exc
            raise

    def _land(self, rows: list[ResponseRow], finished: list[str]) -> None:
        if self._complete is None:
            if rows:
                self._write(rows)
            return
        done = set(finished)
        # A domain finished within this batch is written once, straight to its table.
        open_rows = [r for r in rows if r.domain not in done]
        if open_rows:
            self._write(open_rows)
        if finished:
            self._complete(finished, [r for r in rows if r.domain in done])

    async def drain(self) -> None:
        """Write everything pending now and wait for it (also when the run is cancelled)."""
        if self._task is None:
            return
        self._closing = True
        self._closed.set()
        self._wake.set()
        await asyncio.shield(self._task)


def _row(provider: Provider, endpoint: str, domain: str, result: CallResult, mode: str, run_id: str | None):
    now = datetime.now(UTC)
    return ResponseRow(
        provider=provider.name,
        endpoint=endpoint,
        domain=domain,
        status=result.status,
        http_status=result.http_status,
        payload=result.payload,
        detail=result.detail,
        fetched_at=now,
        expires_at=expires_at(provider, result.status, now),
        attempts=result.attempts,
        latency_ms=result.latency_ms,
        wait_ms=result.wait_ms,
        cost_usd=result.cost,
        mode=mode,
        run_id=run_id,
    )


async def _run_provider_level(
    client: ProviderClient,
    domains: list[str],
    fresh: set[tuple[str, str]],
    land: WriteRows,
    on_done: Callable[[str, dict[str, Any], dict[str, Any] | None], None],
    mode: str,
    run_id: str | None,
) -> None:
    """Workers pull domains (in batches for bulk providers) and fetch what the cache lacks.

    Each answer goes to `land` the moment the provider has it (even while its
    other calls for the domain are still to come); `on_done` follows once the
    provider is done with the domain, with its `ok` payloads and, when there is one, the
    fields its check already read from it."""
    provider = client.provider
    queue: asyncio.Queue[str] = asyncio.Queue()
    for domain in domains:
        queue.put_nowait(domain)

    def missing(endpoint: str, domain: str) -> bool:
        return (endpoint, domain) not in fresh

    def emitter(
        landed: dict[tuple[str, str], CallResult], read: dict[tuple[str, str], dict[str, Any]]
    ) -> Emit:
        def emit(domain: str, endpoint: str, result: CallResult) -> None:
            result, read[(domain, endpoint)] = _check_answer(provider, endpoint, domain, result)
            landed[(domain, endpoint)] = result
            land([_row(provider, endpoint, domain, result, mode, run_id)])

        return emit

    async def worker() -> None:
        while not queue.empty():
            batch = [queue.get_nowait() for _ in range(min(provider.batch_size, queue.qsize()))]
            to_fetch = []
            for domain in batch:
                needed = [e for e in provider.endpoints(domain) if missing(e, domain)]
                client.stats.cache_hits += len(provider.endpoints(domain)) - len(needed)
                if needed:
                    to_fetch.append(domain)
                else:
                    on_done(domain, {}, None)
            if not to_fetch:
                continue
            landed: dict[tuple[str, str], CallResult] = {}
            read: dict[tuple[str, str], dict[str, Any]] = {}  # the fields each check read
            fetched = await provider.fetch_domains(client, to_fetch, missing, emitter(landed, read))
            for domain in to_fetch:
                results = []
                for e, r in fetched.get(domain, []):
                    checked = landed.get((domain, e))
                    if checked is None:
                        checked, read[(domain, e)] = _check_answer(provider, e, domain, r)
                    results.append((e, checked))
                results = _check_together(provider, domain, results)
                # What was not handed over yet, and any answer the check together turned unusable.
                land(
                    [
                        _row(provider, endpoint, domain, r, mode, run_id)
                        for endpoint, r in results
                        if landed.get((domain, endpoint)) is not r
                    ]
                )
                ok = {endpoint: r.payload for endpoint, r in results if r.status == "ok"}
                on_done(domain, ok, read.get((domain, *ok)) if len(ok) == 1 else None)

    workers = max(1, min(client.settings.concurrency, math.ceil(len(domains) / provider.batch_size)))
    # A TaskGroup cancels the siblings when one task fails: nothing keeps writing after a crash.
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())


async def fetch_domains(
    providers: Sequence[tuple[Provider, ProviderSettings]],
    plan: FetchPlan,
    *,
    write: WriteRows,
    mode: str,
    waterfall: Waterfall | None = None,
    run_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    ledger: QuotaLedger | None = None,
    redactor: Redactor | None = None,
    progress: Progress | None = None,
    logger: logging.Logger | None = None,
    complete: CompleteDomains | None = None,
    flush_interval_s: float = FLUSH_INTERVAL_S,
    stats: dict[str, ProviderStats] | None = None,
) -> FetchReport:
    """Enrich `plan.domains`; without a waterfall every provider is called for every domain.

    Every answer row is handed over within `flush_interval_s` of its arrival: to `write`
    while its domain is in progress, else to `complete` (optional) with the domains no
    provider will be called for any more, after their earlier rows went to `write`.
    `stats`, when given, is filled with each provider's accounting and updated as
    calls are made (a progress display reads it while the run goes on)."""
    started = time.perf_counter()
    domains = list(dict.fromkeys(plan.domains))  # each domain once, whatever the caller passed
    by_name = {p.name: (p, s) for p, s in providers}
    active = set(by_name)
    if waterfall is not None:
        # e.g. Apollo's bulk endpoint has no technologies: never wait on it for them.
        waterfall = waterfall.for_capabilities({n: p.fillable_groups() for n, (p, _) in by_name.items()})
    redactor = redactor or Redactor(s.api_key for _, s in providers)
    lander = _Lander(write, complete, flush_interval_s, progress, len(domains))
    stats = {} if stats is None else stats
    stats.update({name: ProviderStats() for name in by_name})
    disabled: dict[str, str] = {}

    # What each domain already has: providers answered from cache and the groups they fill.
    called: dict[str, set[str]] = {d: set() for d in domains}
    # group -> best waterfall position of a provider that filled it (see Waterfall.fill_positions)
    filled: dict[str, dict[str, int]] = {d: {} for d in domains}
    for name, (provider, _) in by_name.items():
        fresh = plan.fresh.get(name, set())
        cached = plan.cached.get(name, {})
        for domain in domains:
            endpoints = provider.endpoints(domain)
            if all((e, domain) in fresh for e in endpoints):
                called[domain].add(name)
                stats[name].cache_hits += len(endpoints)
                _fill(filled[domain], waterfall, name, provider.extract(domain, cached.get(domain, {})))

    outstanding: dict[str, int] = {}  # providers still working on a domain at the current level
    carried: list[str] = []  # domains that may need a later level
    level_now = 0

    def settle(domain: str) -> None:
        """All of this level's providers are done with the domain: write it, or keep it for later."""
        if waterfall is not None and waterfall.may_want_more(
            level_now, filled[domain], called[domain], active
        ):
            carried.append(domain)
        else:
            lander.finish(domain)

    def on_done(name: str):
        provider = by_name[name][0]

        def done(domain: str, payloads: dict[str, Any], values: dict[str, Any] | None) -> None:
            called[domain].add(name)
            if payloads:
                # One answer's fields were read by its check (`values`): not read again.
                _fill(
                    filled[domain],
                    waterfall,
                    name,
                    provider.extract(domain, payloads) if values is None else values,
                )
            outstanding[domain] -= 1
            if outstanding[domain] == 0:
                settle(domain)

        return done

    levels = waterfall.depth if waterfall else 1
    try:
        async with AsyncExitStack() as stack:
            clients: dict[str, ProviderClient] = {}
            for name, (provider, provider_settings) in by_name.items():
                clients[name] = await stack.enter_async_context(
                    ProviderClient(
                        provider,
                        provider_settings,
                        transport=transport,
                        ledger=ledger,
                        redactor=redactor,
                        stats=stats[name],
                        logger=logger,
                    )
                )
            remaining = list(domains)
            for level in range(levels):
                level_now = level
                carried.clear()
                work: dict[str, list[str]] = defaultdict(list)
                for domain in remaining:
                    if waterfall is None:
                        wanted = active - called[domain]
                    else:
                        wanted = waterfall.wanted(level, filled[domain], called[domain], active)
                    outstanding[domain] = len(wanted)
                    for name in wanted:
                        work[name].append(domain)
                for domain in remaining:
                    if outstanding[domain] == 0:
                        settle(domain)
                async with asyncio.TaskGroup() as group:
                    for name, names_domains in work.items():
                        group.create_task(
                            _run_provider_level(
                                clients[name],
                                names_domains,
                                plan.fresh.get(name, set()),
                                lander.add,
                                on_done(name),
                                mode,
                                run_id,
                            )
                        )
                remaining = list(carried)
            for domain in remaining:
                lander.finish(domain)
            for name, client in clients.items():
                if client.disabled_reason:
                    disabled[name] = client.disabled_reason
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None
    finally:
        # Whatever finished is kept, even when the run is cancelled or crashes.
        await lander.drain()

    _count_savings(by_name, domains, called, stats)
    return FetchReport(
        stats=stats,
        rows_written=lander.rows_written,
        domains_written=lander.domains_written,
        seconds=time.perf_counter() - started,
        disabled=disabled,
    )


async def fetch_into(
    warehouse: Warehouse,
    domains: Sequence[str],
    *,
    providers: Sequence[tuple[Provider, ProviderSettings]],
    skipped: Mapping[str, str],
    mode: str,
    waterfall: Waterfall | None = None,
    force: bool = False,
    run_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    logger: logging.Logger | None = None,
    stats: dict[str, ProviderStats] | None = None,
    now: datetime | None = None,
) -> FetchReport:
    """Enrich `domains` into `warehouse` with the run's `providers` (`skipped`: the configured
    ones it does not call, and why).

    The cache answers what it holds within its TTL (nothing when `force`). Before any call, a run
    whose upper-bound cost is over ENRICHMENT_MAX_COST_USD raises `cost.BudgetExceeded` (with the
    estimate). Each answer is durable within a fraction of a second (the journal); a domain goes
    into raw.provider_responses whole, once no provider is left to ask."""
    now = now or datetime.now(UTC)
    plan = FetchPlan(domains=list(domains))
    if not force:
        for provider, _ in providers:
            plan.fresh[provider.name], plan.cached[provider.name] = warehouse.fresh_answers(
                provider.name, domains, mode, now
            )
    estimate = cost.summarize(
        cost.plan_needs(domains, providers, waterfall, plan.fresh, plan.cached),
        providers,
        waterfall=waterfall,
        quota_used=cost.quota_used(warehouse, providers, now),
        mode=mode,
        forced=force,
    )
    cost.enforce_budget(estimate)
    warehouse.write_responses(skipped_rows(skipped, domains, mode=mode, run_id=run_id, now=now))
    return await fetch_domains(
        providers,
        plan,
        write=warehouse.journal_responses,
        complete=warehouse.complete_responses,
        mode=mode,
        waterfall=waterfall,
        run_id=run_id,
        transport=transport,
        ledger=warehouse,
        progress=progress,
        logger=logger,
        stats=stats,
    )


def skipped_rows(
    skipped: Mapping[str, str], domains: Sequence[str], *, mode: str, run_id: str | None, now: datetime
) -> list[ResponseRow]:
    """A `skipped` row per provider the run does not call and domain, with the reason, so a
    domain's rows name every configured provider; it expires at once (asked again next run)."""
    return [
        ResponseRow(
            provider=name,
            endpoint="*",
            domain=domain,
            status="skipped",
            http_status=None,
            payload=None,
            detail=reason,
            fetched_at=now,
            expires_at=now,
            attempts=0,
            latency_ms=None,
            cost_usd=0.0,
            mode=mode,
            run_id=run_id,
        )
        for name, reason in skipped.items()
        for domain in domains
    ]


def _readable(
    provider: Provider, domain: str, results: list[tuple[str, CallResult]]
) -> list[tuple[str, CallResult]]:
    """A domain's answers through both checks the fetcher applies (each on arrival, then together)."""
    return _check_together(
        provider, domain, [(e, _check_answer(provider, e, domain, r)[0]) for e, r in results]
    )


def _check_answer(
    provider: Provider, endpoint: str, domain: str, result: CallResult
) -> tuple[CallResult, dict[str, Any]]:
    """An `ok` answer staging could not read becomes a `parse_error` row (with the reason);
    one bad body never reaches, let alone stops, a later step. Also the fields the answer
    alone gives (empty unless `ok`)."""
    if result.status != "ok":
        return result, {}
    problem, values = read_answer(provider, endpoint, domain, result.payload)
    if problem is not None:
        return replace(result, status="parse_error", payload=None, detail=problem), {}
    return result, values


def _check_together(
    provider: Provider, domain: str, checked: list[tuple[str, CallResult]]
) -> list[tuple[str, CallResult]]:
    """A domain's `ok` answers that only fail when read together: none of them is usable."""
    ok = {e: r.payload for e, r in checked if r.status == "ok"}
    if len(ok) > 1:
        try:
            provider.extract(domain, ok)
        except Exception as exc:
            detail = f"answers could not be read together ({type(exc).__name__})"
            checked = [
                (e, replace(r, status="parse_error", payload=None, detail=detail) if e in ok else r)
                for e, r in checked
            ]
    return checked


def _fill(target: dict[str, int], waterfall: Waterfall | None, provider: str, values: dict[str, Any]) -> None:
    """Record the groups a provider's values fill, at that provider's place in each group's order."""
    groups = filled_groups(values)
    if waterfall is None:
        Waterfall.merge_fills(target, dict.fromkeys(groups, 0))
    else:
        Waterfall.merge_fills(target, waterfall.fill_positions(provider, groups))


def _count_savings(
    by_name: Mapping[str, tuple[Provider, ProviderSettings]],
    domains: Sequence[str],
    called: Mapping[str, set[str]],
    stats: Mapping[str, ProviderStats],
) -> None:
    """Domains a provider was spared by the waterfall, and the calls that saved."""
    for name, (provider, _) in by_name.items():
        skipped = [d for d in domains if name not in called[d]]
        stats[name].waterfall_skipped = len(skipped)
        if provider.batch_size > 1:
            stats[name].calls_saved = math.ceil(len(skipped) / provider.batch_size)
        else:
            stats[name].calls_saved = sum(len(provider.endpoints(d)) for d in skipped)


def _first_error(error: BaseException) -> BaseException:
    """The exception that started it, out of (nested) task groups, so callers see the real error."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
