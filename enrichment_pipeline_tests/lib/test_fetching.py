"""`fetch_domains`: many domains, several providers; every answer is written as it arrives and
each domain is completed whole, once no provider is left to ask.

Two fake providers (`alpha`, `beta`) share one MockTransport that routes by host,
so each test can make one provider slow, failing or rejected while the other
behaves. `Store` stands for the warehouse: `write` keeps answers in a journal,
`complete` moves a domain's answers into the table readers see.
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

from enrichment_pipeline.lib import cost
from enrichment_pipeline.lib.fetching import FetchPlan, FetchReport, fetch_domains, fetch_into
from enrichment_pipeline.lib.providers.base import ProviderRequest
from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse
from enrichment_pipeline_tests.conftest import FakeProvider, json_response, make_settings

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


class Store:
    """The `write` and `complete` callbacks, with the warehouse's journal-then-table behaviour.

    `events` keeps every call in order; `table` is what readers see (whole domains only)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []
        self.journal: dict[str, list[ResponseRow]] = {}
        self.table: dict[str, list[ResponseRow]] = {}
        self.arrived = asyncio.Event()  # set on every write; tests wait on it instead of sleeping

    def write(self, rows: list[ResponseRow]) -> None:
        assert rows, "empty batches are not written"
        for row in rows:
            assert row.domain not in self.table, f"{row.domain}: answer written after it was completed"
            self.journal.setdefault(row.domain, []).append(row)
        self.events.append(("rows", list(rows)))
        self.arrived.set()

    def complete(self, domains: list[str], rows: list[ResponseRow]) -> None:
        assert domains, "empty completions are not written"
        assert {r.domain for r in rows} <= set(domains)
        for domain in domains:
            assert domain not in self.table, f"{domain} completed twice"
            self.table[domain] = self.journal.pop(domain, []) + [r for r in rows if r.domain == domain]
        self.events.append(("complete", list(domains)))
        self.events.append(("completed_rows", list(rows)))
        self.arrived.set()

    @property
    def batches(self) -> list[list[ResponseRow]]:
        """Rows as handed over, journaled or with their completed domain."""
        return [rows for kind, rows in self.events if kind in ("rows", "completed_rows") and rows]

    @property
    def rows(self) -> list[ResponseRow]:
        return [row for batch in self.batches for row in batch]

    @property
    def completed(self) -> list[str]:
        return [d for kind, domains in self.events if kind == "complete" for d in domains]

    def providers_of(self, domain: str) -> list[str]:
        return sorted(r.provider for r in self.journal.get(domain, []))


def assert_domains_whole(store: Store, expected_providers: dict[str, set[str]] | None = None) -> None:
    """Each completed domain arrived in the table with one row from every provider expected for it."""
    for domain, rows in store.table.items():
        wanted = (expected_providers or {}).get(domain, {"alpha", "beta"})
        assert sorted(r.provider for r in rows) == sorted(wanted), domain
    assert len(store.completed) == len(set(store.completed))


async def run(
    router: Router, plan: FetchPlan | None = None, store: Store | None = None, **kwargs: Any
) -> tuple[FetchReport, Store]:
    store = store or Store()
    kwargs.setdefault("providers", providers())
    report = await fetch_domains(
        kwargs.pop("providers"),
        plan or FetchPlan(domains=list(DOMAINS)),
        write=store.write,
        complete=store.complete,
        mode="sandbox",
        run_id="run-1",
        transport=router.transport(),
        **kwargs,
    )
    return report, store


async def test_every_answer_is_written_and_every_domain_completed_whole() -> None:
    router = Router(alpha=jittery(), beta=jittery())
    progress: list[tuple[int, int]] = []
    report, store = await run(
        router,
        providers=providers(alpha={"concurrency": 5}, beta={"concurrency": 3}),
        flush_interval_s=0.01,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert_domains_whole(store)
    assert sorted(store.completed) == DOMAINS
    assert store.journal == {}
    assert len(store.rows) == 100
    assert len(store.batches) > 1  # written as they came, not in one go at the end
    assert (report.rows_written, report.domains_written) == (100, 50)
    assert router.calls == {"alpha": 50, "beta": 50}
    assert progress[-1] == (50, 50)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert {t for _, t in progress} == {50}
    assert report.stats["alpha"].calls == report.stats["beta"].calls == 50
    assert report.disabled == {}
    row = store.rows[0]
    assert (row.status, row.mode, row.run_id, row.endpoint) == ("ok", "sandbox", "run-1", "thing")
    assert row.payload == {"domain": row.domain}
    assert row.expires_at - row.fetched_at == FakeProvider.ttl


async def test_answers_are_written_before_their_domain_is_complete() -> None:
    """beta's answers are durable while alpha has not answered yet: a crash then loses no paid call."""
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return ok(request)

    store = Store()
    router = Router(alpha=held)
    task = asyncio.create_task(
        run(router, store=store, providers=providers(beta={"concurrency": 8}), flush_interval_s=0.01)
    )
    while sum(1 for r in store.rows if r.provider == "beta") < 50:
        store.arrived.clear()
        await asyncio.wait_for(store.arrived.wait(), 10)
    assert store.completed == []  # no domain is complete while alpha holds every one back
    assert all(store.providers_of(d) == ["beta"] for d in DOMAINS)
    release.set()
    report, _ = await asyncio.wait_for(task, 10)
    assert_domains_whole(store)
    assert sorted(store.completed) == DOMAINS
    assert report.rows_written == 100


async def test_each_endpoint_is_written_before_the_next_call_of_the_domain() -> None:
    """A provider with two calls per domain: the first answer is durable before the second returns."""

    class TwoCalls(FakeProvider):
        def requests_for(self, domain: str):
            return [
                ProviderRequest("first", "GET", "/v1/first", {"domain": domain}),
                ProviderRequest("second", "GET", "/v1/second", {"domain": domain}),
            ]

    store = Store()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/second":
            domain = request.url.params["domain"]
            while not any(r.domain == domain and r.endpoint == "first" for r in store.rows):
                store.arrived.clear()
                await asyncio.wait_for(store.arrived.wait(), 10)
        return ok(request)

    pair = [(TwoCalls("alpha"), make_settings(name="alpha", base_url="https://alpha.test"))]
    report, _ = await run(
        Router(alpha=handler), FetchPlan(domains=DOMAINS[:5]), store, providers=pair, flush_interval_s=0.01
    )
    assert report.rows_written == 10
    assert sorted(store.completed) == DOMAINS[:5]
    assert all(sorted(r.endpoint for r in store.table[d]) == ["first", "second"] for d in DOMAINS[:5])


async def test_answers_unreadable_together_are_corrected_after_being_kept(warehouse: Warehouse) -> None:
    """Each answer is kept as it arrives; if the domain's answers then fail when read together,
    the rows that were kept as `ok` become `parse_error` rows (the run corrects its own rows)."""

    class Clashing(FakeProvider):
        def requests_for(self, domain: str):
            return [
                ProviderRequest("first", "GET", "/v1/first", {"domain": domain}),
                ProviderRequest("second", "GET", "/v1/second", {"domain": domain}),
            ]

        def extract(self, domain: str, payloads: Any) -> dict[str, Any]:
            if len(payloads) > 1:
                raise ValueError("these two answers contradict each other")
            return {}

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/second":  # answer once the first answer is kept as `ok`
            sql = (
                "SELECT * FROM raw.response_journal WHERE endpoint = 'first' AND domain = ? AND status = 'ok'"
            )
            while warehouse.query(sql, [request.url.params["domain"]]).is_empty():
                await asyncio.sleep(0.005)
        return ok(request)

    pair = [(Clashing("alpha"), make_settings(name="alpha", base_url="https://alpha.test"))]
    report = await fetch_domains(
        pair, FetchPlan(domains=DOMAINS[:3]), write=warehouse.journal_responses,
        complete=warehouse.complete_responses, mode="sandbox", run_id="run-1",
        transport=Router(alpha=handler).transport(), flush_interval_s=0.001,
    )  # fmt: skip
    rows = warehouse.responses()
    assert rows.height == 6
    assert set(rows["status"]) == {"parse_error"}
    assert set(rows["detail"]) == {"answers could not be read together (ValueError)"}
    assert report.stats["alpha"].calls == 6


async def test_a_long_flush_interval_still_writes_everything_at_the_end() -> None:
    report, store = await run(Router(), flush_interval_s=60)
    assert [kind for kind, _ in store.events] == ["complete", "completed_rows"]  # one transaction
    assert len(store.rows) == 100
    assert sorted(store.completed) == DOMAINS
    assert report.domains_written == 50


async def test_a_failed_write_stops_the_run() -> None:
    """An answer that cannot be kept must not be followed by more paid calls."""

    class Broken(Exception):
        pass

    def write(rows: list[ResponseRow]) -> None:
        raise Broken("warehouse down")

    router = Router(alpha=jittery(0.01), beta=jittery(0.01))
    with pytest.raises(Broken):
        await fetch_domains(
            providers(alpha={"concurrency": 1}, beta={"concurrency": 1}),
            FetchPlan(domains=list(DOMAINS)),
            write=write,
            mode="sandbox",
            transport=router.transport(),
            flush_interval_s=0.001,
        )
    assert sum(router.calls.values()) < 100


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
    report, store = await run(router, plan, progress=lambda done, total: progress.append((done, total)))
    assert router.calls == {"alpha": 30, "beta": 45}
    assert report.stats["alpha"].cache_hits == 20
    assert report.stats["beta"].cache_hits == 5
    assert report.stats["alpha"].calls == 30
    expected = {d: {"beta"} for d in DOMAINS[5:20]} | {d: {"alpha", "beta"} for d in DOMAINS[20:]}
    expected |= {d: set() for d in DOMAINS[:5]}  # fully cached: completed (its journal moved), no row
    assert_domains_whole(store, expected)
    assert {r.domain for r in store.rows} == set(DOMAINS[5:])  # nothing to write for fully cached ones
    assert sorted(store.completed) == DOMAINS
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
    report, store = await run(router, providers=providers(alpha=settings))
    assert_domains_whole(store)
    alpha = [r for r in store.rows if r.provider == "alpha"]
    beta = [r for r in store.rows if r.provider == "beta"]
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
    report, store = await run(router, providers=providers(alpha={"concurrency": 1}))
    assert_domains_whole(store)
    assert Counter(r.status for r in store.rows if r.provider == "alpha") == {"auth_failed": 50}
    assert Counter(r.status for r in store.rows if r.provider == "beta") == {"ok": 50}
    assert router.calls["alpha"] == 1
    assert set(report.disabled) == {"alpha"}


async def test_quota_from_the_warehouse_ledger(warehouse: Warehouse) -> None:
    router = Router()
    report, store = await run(
        router, providers=providers(alpha={"daily_quota": 10, "concurrency": 3}), ledger=warehouse
    )
    assert report.stats["alpha"].calls == 10
    alpha = Counter(r.status for r in store.rows if r.provider == "alpha")
    assert alpha == {"ok": 10, "quota_exhausted": 40}
    assert router.calls["alpha"] == 10
    assert warehouse.quota_used("alpha", datetime.now(UTC).date()) == 10
    assert all(r.cost_usd == 0 and r.attempts == 0 for r in store.rows if r.status == "quota_exhausted")


async def test_second_run_is_served_from_the_warehouse_cache(warehouse: Warehouse) -> None:
    router = Router()
    await fetch_domains(
        providers(), FetchPlan(domains=list(DOMAINS)), write=warehouse.journal_responses,
        complete=warehouse.complete_responses, mode="sandbox", transport=router.transport(),
    )  # fmt: skip
    assert warehouse.responses().height == 100
    assert warehouse.journaled_domains() == set()
    now = datetime.now(UTC)
    plan = FetchPlan(
        domains=list(DOMAINS),
        fresh={p: warehouse.fresh_answers(p, DOMAINS, "sandbox", now)[0] for p in ("alpha", "beta")},
    )
    again = Router()
    report, store = await run(again, plan)
    assert again.calls == {}
    assert store.rows == []
    assert report.stats["alpha"].cache_hits == report.stats["beta"].cache_hits == 50


async def test_a_stopped_run_pays_for_nothing_twice(warehouse: Warehouse) -> None:
    """Cancelled mid-run: what it received is journaled, the re-run calls only for the rest and
    completes every domain; the table never held a half-enriched domain."""
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        if request.url.params["domain"] >= DOMAINS[25]:
            await release.wait()  # never set: the run is stopped while these wait
        return ok(request)

    first = Router(alpha=held)
    task = asyncio.create_task(
        fetch_domains(
            providers(), FetchPlan(domains=list(DOMAINS)), write=warehouse.journal_responses,
            complete=warehouse.complete_responses, mode="sandbox", transport=first.transport(),
            flush_interval_s=0.01,
        )
    )  # fmt: skip
    # alpha answers the first 25 domains, beta all 50: wait until all of it is in the warehouse.
    while warehouse.responses().height + warehouse.query("SELECT * FROM raw.response_journal").height < 75:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    table = warehouse.responses()
    assert set(table["domain"]) == set(DOMAINS[:25])  # whole domains only
    assert table.height == 50
    assert warehouse.journaled_domains() == set(DOMAINS[25:])  # beta's answers, paid for, kept

    now = datetime.now(UTC)
    plan = FetchPlan(domains=list(DOMAINS))
    for name in ("alpha", "beta"):
        plan.fresh[name], plan.cached[name] = warehouse.fresh_answers(name, DOMAINS, "sandbox", now)
    again = Router()
    report = await fetch_domains(
        providers(), plan, write=warehouse.journal_responses, complete=warehouse.complete_responses,
        mode="sandbox", transport=again.transport(),
    )  # fmt: skip
    assert again.calls == {"alpha": 25}  # only what the stopped run never received
    assert report.stats["beta"].cache_hits == 50
    assert warehouse.responses().height == 100
    assert warehouse.journaled_domains() == set()


async def test_fetch_into_serves_the_cache_and_records_skipped_providers(warehouse: Warehouse) -> None:
    """The raw step over a warehouse: a second run calls nobody, `force` calls everyone again, and
    every run says per domain which configured provider it did not call, and why."""
    domains = DOMAINS[:10]
    skipped = {"gamma": "no GAMMA_API_KEY set"}

    async def enrich(router: Router, run_id: str, force: bool = False) -> FetchReport:
        return await fetch_into(
            warehouse, domains, providers=providers(), skipped=skipped, mode="sandbox",
            force=force, run_id=run_id, transport=router.transport(),
        )  # fmt: skip

    first = Router()
    report = await enrich(first, "run-1")
    assert first.calls == {"alpha": 10, "beta": 10}
    assert report.domains_written == 10
    table = warehouse.responses()
    assert table.filter(table["status"] == "ok").height == 20
    rows = table.filter(table["provider"] == "gamma").sort("domain").to_dicts()
    assert [r["domain"] for r in rows] == domains
    for row in rows:
        assert (row["status"], row["endpoint"], row["detail"]) == ("skipped", "*", skipped["gamma"])
        assert (row["run_id"], row["attempts"], row["cost_usd"]) == ("run-1", 0, 0.0)
        assert row["expires_at"] == row["fetched_at"]  # asked again by the next run

    again = Router()
    report = await enrich(again, "run-2")
    assert again.calls == {}
    assert report.stats["alpha"].cache_hits == report.stats["beta"].cache_hits == 10

    forced = Router()
    await enrich(forced, "run-3", force=True)
    assert forced.calls == {"alpha": 10, "beta": 10}


async def test_fetch_into_refuses_a_run_over_budget_before_any_call(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cost.BUDGET_ENV, "0.05")
    router = Router()
    priced = providers(alpha={"cost_per_call": 0.01}, beta={"cost_per_call": 0.01})
    with pytest.raises(cost.BudgetExceeded) as refused:
        await fetch_into(
            warehouse, DOMAINS[:10], providers=priced, skipped={"gamma": "off"}, mode="sandbox",
            transport=router.transport(),
        )  # fmt: skip
    assert refused.value.estimate.cost_max == pytest.approx(0.2)
    assert router.calls == {}
    assert warehouse.responses().is_empty()  # not even the skipped rows


async def test_cancellation_writes_every_answer_received_and_completes_only_whole_domains() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.005)
        return ok(request)

    router = Router(alpha=slow)  # beta is instant and runs far ahead of alpha
    enough = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done >= 10:
            enough.set()

    store = Store()
    task = asyncio.create_task(
        run(router, store=store, providers=providers(alpha={"concurrency": 2}), progress=progress)
    )
    await asyncio.wait_for(enough.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_domains_whole(store)
    assert 10 <= len(store.completed) < 50
    # Every answer received before the cancellation is written, whole domain or not.
    assert {(r.provider, r.domain) for r in store.rows} == router.answered
    assert router.calls["beta"] > len(store.completed)  # beta answered more domains, all kept
    assert all(("alpha", d) in router.answered for d in store.completed)


async def test_duplicate_domains_are_not_written_partially() -> None:
    """Callers normalise first today (normalize_domains dedupes), so this is latent."""
    domains = ["a.example", "b.example", "a.example"]
    report, store = await run(Router(), FetchPlan(domains=domains))
    assert report.domains_written == 2
    assert_domains_whole(store)
    assert {r.domain for r in store.rows} == {"a.example", "b.example"}
    assert sorted(store.completed) == ["a.example", "b.example"]


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
    store = Store()
    with pytest.raises(RuntimeError, match="provider bug"):
        await run(Router(beta=slow), store=store, providers=pairs, flush_interval_s=0.001)
    written_at_raise = len(store.rows)
    await asyncio.sleep(0.05)
    written_after = len(store.rows) - written_at_raise
    orphans = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in orphans:  # clean up before asserting, so nothing leaks into other tests
        task.cancel()
    await asyncio.gather(*orphans, return_exceptions=True)
    assert written_after == 0
    assert orphans == []
