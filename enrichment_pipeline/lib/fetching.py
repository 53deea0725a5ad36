"""Fetch many domains from many providers concurrently, within each provider's limits.

Every provider gets its own workers, rate limit and circuit breaker, so a slow
or failing provider never holds back the others. A domain's rows are handed to
the writer only once every provider has finished with it, so a crash leaves
each domain either fully written or untouched, and everything finished before
the crash is kept (and served from cache on the re-run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from enrichment_pipeline.lib.http_policy import ProviderClient, ProviderStats, QuotaLedger
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.redaction import Redactor
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow

log = logging.getLogger(__name__)

# Answers worth keeping until the provider's TTL; anything else is retried next run.
_PENDING_RECHECK = timedelta(minutes=10)


@dataclass
class FetchPlan:
    """Which (provider, endpoint, domain) calls a run needs, after the cache."""

    domains: list[str]
    fresh: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # provider -> fresh keys


@dataclass
class FetchReport:
    stats: dict[str, ProviderStats]
    rows_written: int
    domains_written: int
    seconds: float
    disabled: dict[str, str]


WriteRows = Callable[[list[ResponseRow]], None]
Progress = Callable[[int, int], None]


def expires_at(provider: Provider, status: str, fetched_at: datetime) -> datetime:
    if status == "ok":
        return fetched_at + provider.ttl
    if status == "not_found":
        return fetched_at + provider.not_found_ttl
    if status == "pending":
        return fetched_at + _PENDING_RECHECK
    return fetched_at


class _Assembler:
    """Holds each domain's rows until every provider is done with it."""

    def __init__(self, domains: Sequence[str], n_providers: int, write: WriteRows, flush_every: int) -> None:
        self._remaining = dict.fromkeys(domains, n_providers)
        self._rows: dict[str, list[ResponseRow]] = defaultdict(list)
        self._ready: list[ResponseRow] = []
        self._ready_domains = 0
        self._write = write
        self._flush_every = flush_every
        self.rows_written = 0
        self.domains_written = 0
        self.done = 0

    def add(self, domain: str, rows: list[ResponseRow]) -> None:
        self._rows[domain].extend(rows)
        self._remaining[domain] -= 1
        if self._remaining[domain] == 0:
            self.done += 1
            self._ready.extend(self._rows.pop(domain, []))
            self._ready_domains += 1
            if self._ready_domains >= self._flush_every:
                self.flush()

    def flush(self) -> None:
        if self._ready:
            self._write(self._ready)
            self.rows_written += len(self._ready)
        self.domains_written += self._ready_domains
        self._ready, self._ready_domains = [], 0


async def fetch_domains(
    providers: Sequence[tuple[Provider, ProviderSettings]],
    plan: FetchPlan,
    *,
    write: WriteRows,
    mode: str,
    run_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    ledger: QuotaLedger | None = None,
    redactor: Redactor | None = None,
    progress: Progress | None = None,
    logger: logging.Logger | None = None,
    flush_every: int = 200,
) -> FetchReport:
    started = time.perf_counter()
    plan.domains = list(dict.fromkeys(plan.domains))  # each domain once, whatever the caller passed
    redactor = redactor or Redactor(s.api_key for _, s in providers)
    assembler = _Assembler(plan.domains, len(providers), write, flush_every)
    total = len(plan.domains)
    step = max(1, total // 100)

    def unit_done(domain: str, rows: list[ResponseRow]) -> None:
        assembler.add(domain, rows)
        if progress and (assembler.done % step == 0 or assembler.done == total):
            progress(assembler.done, total)

    stats: dict[str, ProviderStats] = {}
    disabled: dict[str, str] = {}

    async def run_provider(provider: Provider, settings: ProviderSettings) -> None:
        fresh = plan.fresh.get(provider.name, set())
        async with ProviderClient(
            provider, settings, transport=transport, ledger=ledger, redactor=redactor, logger=logger
        ) as client:
            stats[provider.name] = client.stats
            queue: asyncio.Queue[str] = asyncio.Queue()
            for domain in plan.domains:
                queue.put_nowait(domain)

            async def worker() -> None:
                while True:
                    try:
                        domain = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    rows: list[ResponseRow] = []
                    for request in provider.requests_for(domain):
                        if (request.endpoint, domain) in fresh:
                            client.stats.cache_hits += 1
                            continue
                        result = await client.fetch(request)
                        now = datetime.now(UTC)
                        rows.append(
                            ResponseRow(
                                provider=provider.name,
                                endpoint=request.endpoint,
                                domain=domain,
                                status=result.status,
                                http_status=result.http_status,
                                payload=result.payload,
                                detail=result.detail,
                                fetched_at=now,
                                expires_at=expires_at(provider, result.status, now),
                                attempts=result.attempts,
                                latency_ms=result.latency_ms,
                                cost_usd=result.cost,
                                mode=mode,
                                run_id=run_id,
                            )
                        )
                    unit_done(domain, rows)

            # A TaskGroup cancels the siblings when one task fails: nothing keeps writing after a crash.
            async with asyncio.TaskGroup() as workers:
                for _ in range(settings.concurrency):
                    workers.create_task(worker())
            if client.disabled_reason:
                disabled[provider.name] = client.disabled_reason

    try:
        async with asyncio.TaskGroup() as group:
            for provider, provider_settings in providers:
                group.create_task(run_provider(provider, provider_settings))
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None
    finally:
        # Whatever finished is kept, even when the run is cancelled or crashes.
        assembler.flush()
    return FetchReport(
        stats=stats,
        rows_written=assembler.rows_written,
        domains_written=assembler.domains_written,
        seconds=time.perf_counter() - started,
        disabled=disabled,
    )


def _first_error(error: BaseException) -> BaseException:
    """The exception that started it, out of (nested) task groups, so callers see the real error."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
