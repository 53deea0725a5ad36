"""`fetch_domains`: many domains, several providers, each domain written whole or not at all.

Two fake providers (`alpha`, `beta`) share one MockTransport that routes by host,
so each test can make one provider slow, failing or rejected while the other
behaves.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, FetchReport, fetch_domains
from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse
from enrichment_pipeline_tests.conftest import FakeProvider, json_response, make_settings, rows_by_domain

DOMAINS = [f"d{i:02d}.example" for i in range(50)]
Handler = Callable[[httpx.Request], Any]


class Router:
    """One transport for both providers; records which (provider, domain) calls were answered."""

    def __init__(self, **handlers: Handler) -> None:
        self.handlers = handlers
        self.calls: Counter[str] = Counter()
        self.answered: set[tuple[str, str]] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host.split(".")[0]
        self.calls[name] += 1
        response = self.handlers.get(name, ok)(request)
        if asyncio.iscoroutine(response):
            response = await response
        self.answered.add((name, request.url.params["domain"]))
        return response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def ok(request: httpx.Request) -> httpx.Response:
    return json_response(200, {"domain": request.url.params["domain"]})


def jittery(max_s: float = 0.003) -> Handler:
    rng = random.Random(7)

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(rng.uniform(0, max_s))
        return ok(request)

    return handler


def providers(**settings: dict[str, Any]):
    """(FakeProvider(name), settings) for alpha and beta, each on its own host."""
    out = []
    for name in ("alpha", "beta"):
        overrides = {
            "name": name,
            "base_url": f"https://{name}.test",
            "concurrency": 4,
            **settings.get(name, {}),
        }
        out.append((FakeProvider(name), make_settings(**overrides)))
    return out


class Writes:
    """The `write` callback: keeps every batch, and can check each one as it arrives."""

    def __init__(self, check: Callable[[list[ResponseRow]], None] | None = None) -> None:
        self.batches: list[list[ResponseRow]] = []
        self.check = check

    def __call__(self, rows: list[ResponseRow]) -> None:
        if self.check:
            self.check(rows)
        self.batches.append(list(rows))

    @property
    def rows(self) -> list[ResponseRow]:
        return [row for batch in self.batches for row in batch]


def assert_domains_whole(writes: Writes, expected_providers: dict[str, set[str]] | None = None) -> None:
    """Each domain appears in exactly one batch, with one row from every provider expected for it."""
    seen: Counter[str] = Counter()
    for batch in writes.batches:
        for domain, rows in rows_by_domain(batch).items():
            seen[domain] += 1
            wanted = (expected_providers or {}).get(domain, {"alpha", "beta"})
            assert sorted(r.provider for r in rows) == sorted(wanted), domain
    assert all(n == 1 for n in seen.values()), [d for d, n in seen.items() if n > 1]


async def run(
    router: Router, plan: FetchPlan | None = None, writes: Writes | None = None, **kwargs: Any
) -> tuple[FetchReport, Writes]:
    writes = writes or Writes()
    kwargs.setdefault("providers", providers())
    report = await fetch_domains(
        kwargs.pop("providers"),
        plan or FetchPlan(domains=list(DOMAINS)),
        write=writes,
        mode="sandbox",
        run_id="run-1",
        transport=router.transport(),
        **kwargs,
    )
    return report, writes


async def test_domains_are_written_whole_in_batches() -> None:
    router = Router(alpha=jittery(), beta=jittery())
    progress: list[tuple[int, int]] = []

    def check(rows: list[ResponseRow]) -> None:
        for row in rows:  # both providers had answered this domain before its rows were handed over
            assert ("alpha", row.domain) in router.answered
            assert ("beta", row.domain) in router.answered

    report, writes = await run(
        router,
        writes=Writes(check),
        providers=providers(alpha={"concurrency": 5}, beta={"concurrency": 3}),
        flush_every=7,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert_domains_whole(writes)
    assert len(writes.rows) == 100
    assert {r.domain for r in writes.rows} == set(DOMAINS)
    per_batch = [len({r.domain for r in batch}) for batch in writes.batches]
    assert per_batch == [7] * 7 + [1]
    assert (report.rows_written, report.domains_written) == (100, 50)
    assert router.calls == {"alpha": 50, "beta": 50}
    assert progress[-1] == (50, 50)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert {t for _, t in progress} == {50}
    assert report.stats["alpha"].calls == report.stats["beta"].calls == 50
    assert report.disabled == {}
    row = writes.rows[0]
    assert (row.status, row.mode, row.run_id, row.endpoint) == ("ok", "sandbox", "run-1", "thing")
    assert row.payload == {"domain": row.domain}
    assert row.expires_at - row.fetched_at == FakeProvider.ttl


async def test_flush_every_larger_than_run_writes_once_at_the_end() -> None:
    report, writes = await run(Router(), flush_every=1000)
    assert len(writes.batches) == 1
    assert len(writes.batches[0]) == 100
    assert report.domains_written == 50


async def test_fresh_keys_are_cache_hits_with_no_calls() -> None:
    router = Router()
    plan = FetchPlan(
        domains=list(DOMAINS),
        fresh={
            "alpha": {("thing", d) for d in DOMAINS[:20]},
            "beta": {("thing", d) for d in DOMAINS[:5]},
        },
    )
    progress: list[tuple[int, int]] = []
    report, writes = await run(
        router, plan, flush_every=10, progress=lambda done, total: progress.append((done, total))
    )
    assert router.calls == {"alpha": 30, "beta": 45}
    assert report.stats["alpha"].cache_hits == 20
    assert report.stats["beta"].cache_hits == 5
    assert report.stats["alpha"].calls == 30
    expected = {d: {"beta"} for d in DOMAINS[5:20]} | {d: {"alpha", "beta"} for d in DOMAINS[20:]}
    assert_domains_whole(writes, expected)
    assert {r.domain for r in writes.rows} == set(DOMAINS[5:])  # nothing to write for fully cached ones
    assert (report.rows_written, report.domains_written) == (75, 50)
    assert progress[-1] == (50, 50)


@pytest.mark.parametrize(
    ("breaker_failures", "expected"),
    # The breaker counts attempts: with 2 attempts per call and a threshold of 3, the first
    # domain fails twice, the second's first attempt opens the breaker and stops its retry.
    [(10_000, {"error": 50}), (3, {"error": 1, "provider_unavailable": 49})],
)
async def test_one_failing_provider_never_stops_the_other(breaker_failures: int, expected: dict) -> None:
    router = Router(alpha=lambda request: json_response(500), beta=jittery())
    settings = {"max_attempts": 2, "breaker_failures": breaker_failures, "concurrency": 1}
    report, writes = await run(router, providers=providers(alpha=settings), flush_every=5)
    assert_domains_whole(writes)
    alpha = [r for r in writes.rows if r.provider == "alpha"]
    beta = [r for r in writes.rows if r.provider == "beta"]
    assert Counter(r.status for r in alpha) == expected
    assert Counter(r.status for r in beta) == {"ok": 50}
    assert all(r.expires_at == r.fetched_at for r in alpha)  # never cached
    errors = [r for r in alpha if r.status == "error"]
    assert all((r.http_status, r.attempts) == (500, 2) for r in errors)
    sent = sum(r.attempts for r in alpha)
    assert router.calls["alpha"] == sent == min(breaker_failures, 100)
    assert report.stats["alpha"].calls == sent
    assert report.stats["alpha"].retries == sum(max(0, r.attempts - 1) for r in alpha)
    assert report.domains_written == 50


async def test_rejected_key_disables_one_provider_only() -> None:
    router = Router(alpha=lambda request: json_response(401), beta=jittery())
    report, writes = await run(router, providers=providers(alpha={"concurrency": 1}))
    assert_domains_whole(writes)
    assert Counter(r.status for r in writes.rows if r.provider == "alpha") == {"auth_failed": 50}
    assert Counter(r.status for r in writes.rows if r.provider == "beta") == {"ok": 50}
    assert router.calls["alpha"] == 1
    assert set(report.disabled) == {"alpha"}


async def test_quota_from_the_warehouse_ledger(warehouse: Warehouse) -> None:
    router = Router()
    report, writes = await run(
        router, providers=providers(alpha={"daily_quota": 10, "concurrency": 3}), ledger=warehouse
    )
    assert report.stats["alpha"].calls == 10
    alpha = Counter(r.status for r in writes.rows if r.provider == "alpha")
    assert alpha == {"ok": 10, "quota_exhausted": 40}
    assert router.calls["alpha"] == 10
    assert warehouse.quota_used("alpha", datetime.now(UTC).date()) == 10
    assert all(r.cost_usd == 0 and r.attempts == 0 for r in writes.rows if r.status == "quota_exhausted")


async def test_second_run_is_served_from_the_warehouse_cache(warehouse: Warehouse) -> None:
    router = Router()
    await fetch_domains(
        providers(), FetchPlan(domains=list(DOMAINS)), write=warehouse.write_responses, mode="sandbox",
        transport=router.transport(),
    )  # fmt: skip
    assert warehouse.responses().height == 100
    now = datetime.now(UTC)
    plan = FetchPlan(
        domains=list(DOMAINS),
        fresh={p: warehouse.fresh_keys(p, DOMAINS, "sandbox", now) for p in ("alpha", "beta")},
    )
    again = Router()
    report, writes = await run(again, plan)
    assert again.calls == {}
    assert writes.rows == []
    assert report.stats["alpha"].cache_hits == report.stats["beta"].cache_hits == 50


async def test_cancellation_flushes_finished_domains_and_never_a_partial_one() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.005)
        return ok(request)

    router = Router(alpha=slow)  # beta is instant and runs far ahead of alpha
    enough = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done >= 10:
            enough.set()

    writes = Writes()
    task = asyncio.create_task(
        run(
            router,
            writes=writes,
            providers=providers(alpha={"concurrency": 2}),
            flush_every=4,
            progress=progress,
        )
    )
    await asyncio.wait_for(enough.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_domains_whole(writes)
    written = {r.domain for r in writes.rows}
    assert 10 <= len(written) < 50
    assert len(writes.batches) >= 3  # regular flushes, then the final one on the way out
    assert router.calls["beta"] > len(written)  # beta finished more domains, held back for alpha
    assert all(("alpha", d) in router.answered for d in written)


async def test_duplicate_domains_are_not_written_partially() -> None:
    """Callers normalise first today (normalize_domains dedupes), so this is latent."""
    domains = ["a.example", "b.example", "a.example"]
    report, writes = await run(Router(), FetchPlan(domains=domains))
    assert report.domains_written == 2
    assert_domains_whole(writes)
    assert {r.domain for r in writes.rows} == {"a.example", "b.example"}


async def test_a_crashing_provider_leaves_no_task_behind() -> None:
    """An unexpected exception in one provider must not leave the other writing after the run ended."""

    class Crashing(FakeProvider):
        def requests_for(self, domain: str):
            if domain == DOMAINS[3]:
                raise RuntimeError("provider bug")
            return super().requests_for(domain)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.002)
        return ok(request)

    pairs = providers(beta={"concurrency": 1})
    pairs[0] = (Crashing("alpha"), pairs[0][1])
    writes = Writes()
    with pytest.raises(RuntimeError, match="provider bug"):
        await run(Router(beta=slow), writes=writes, providers=pairs, flush_every=1)
    written_at_raise = len(writes.rows)
    await asyncio.sleep(0.05)
    written_after = len(writes.rows) - written_at_raise
    orphans = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in orphans:  # clean up before asserting, so nothing leaks into other tests
        task.cancel()
    await asyncio.gather(*orphans, return_exceptions=True)
    assert written_after == 0
    assert orphans == []
