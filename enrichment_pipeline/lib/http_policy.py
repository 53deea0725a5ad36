"""The one HTTP policy every provider call goes through.

Timeouts and pooled clients, retries with backoff and jitter (tenacity) that
honour Retry-After, a non-bursting rate limit, a persisted daily quota, a
circuit breaker, a response size cap, JSON checks, redaction of the key and
per-provider accounting. Providers only say what to ask and what an answer
means (`providers/base.py`).

Every attempt (a first call or a retry) is one unit for the policy:
- it is admitted by the circuit breaker right before it is sent, so once the
  breaker opens no retry goes out, and a retry sleeping in its backoff wakes
  up and gives up at once;
- its failure (5xx, timeout, connection error) counts towards opening the
  breaker, retries included;
- it has one overall deadline, from asking the pool for a connection to the
  last byte of the body, on top of httpx's per-phase timeouts (a server that
  drips a byte every second never trips a read timeout);
- its body is decompressed here, piece by bounded piece, and the size cap
  applies to the decompressed bytes as they stream, so a small gzip bomb is
  abandoned at the cap instead of being inflated in memory first.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import math
import ssl
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from enrichment_pipeline.lib.providers.base import (
    Auth,
    CallResult,
    Interpretation,
    Provider,
    ProviderRequest,
    Status,
    Transient,
)
from enrichment_pipeline.lib.redaction import Redactor, silence_http_loggers
from enrichment_pipeline.lib.settings import ProviderSettings

log = logging.getLogger(__name__)

# Only encodings this module can inflate piece by piece under the size cap (no br/zstd).
ACCEPT_ENCODING = "gzip, deflate"
# Most bytes one decompression step may produce before the size cap is checked again.
_INFLATE_PIECE = 64 * 1024


class QuotaLedger(Protocol):
    """Daily call counts shared by every run and process (the warehouse)."""

    def reserve_quota(self, provider: str, day: date, want: int, limit: int) -> int: ...

    def release_quota(self, provider: str, day: date, count: int) -> None: ...


@dataclass
class ProviderStats:
    """Accounting for one provider in one run; shown as Dagster metadata."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    # Domains the waterfall did not send to this provider (their field groups were
    # already filled higher up) and the paid calls that saved.
    waterfall_skipped: int = 0
    calls_saved: int = 0
    cost: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # One HTTP round trip (or library call) per attempt sent: how fast the provider answers.
    latencies_ms: list[float] = field(default_factory=list)
    # Per call, the time it waited before it could be sent (rate-limit slot, a pause the
    # provider asked for): how tight the limit is. Retry backoff is in neither.
    waits_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float, samples: list[float] | None = None) -> float | None:
        values = self.latencies_ms if samples is None else samples
        if not values:
            return None
        ordered = sorted(values)
        rank = math.ceil(round(q * len(ordered), 9))  # nearest rank, 1-based
        return round(ordered[min(len(ordered), max(1, rank)) - 1], 1)

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "waterfall_skipped_domains": self.waterfall_skipped,
            "calls_saved": self.calls_saved,
            "cost_usd": round(self.cost, 4),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "latency_p50_ms": self.percentile(0.50),
            "latency_p95_ms": self.percentile(0.95),
            "wait_p50_ms": self.percentile(0.50, self.waits_ms),
            "wait_p95_ms": self.percentile(0.95, self.waits_ms),
        }


@dataclass
class _Clock:
    """One call's accounting across its attempts: sent attempts, HTTP round trips, waiting to send."""

    sent: int = 0  # attempts that went out: what costs and counts
    round_trips: float = 0.0  # seconds inside HTTP exchanges (or library calls)
    waited: float = 0.0  # seconds waiting for a rate-limit slot or a pause the provider asked for

    def ms(self) -> tuple[float, float]:
        return self.round_trips * 1000, self.waited * 1000


class _Retryable(Exception):
    def __init__(
        self, kind: str, detail: str, http_status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.http_status = http_status
        self.retry_after = retry_after


class _Final(Exception):
    """A call that ends without an HTTP answer worth interpreting."""

    def __init__(self, status: Status, detail: str, http_status: int | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.http_status = http_status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Pacer:
    """A rate limit with no burst: every call gets its own start slot, `interval` apart.

    A caller reserves the next free slot under a lock (no await in between),
    then sleeps until it. Slots are `(1 + margin) / rps` apart and a call may
    start at most `margin` seconds after its slot; a caller that wakes later
    (the event loop was busy) gives the slot up and reserves a new one. So a
    1-second window holds at most rps(1 + margin)/(1 + margin) = rps starts, even
    after a stall, and late wake-ups do not push later slots back, so the rate
    stays at the limit instead of drifting below it (a leaky bucket re-checked
    after each sleep loses the scheduling delay on every call).
    """

    def __init__(self, rps: float, margin: float = 0.02, clock=time.monotonic) -> None:
        self.interval = (1.0 + margin) / rps
        self.tolerance = margin
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, give_up: asyncio.Event | None = None) -> bool:
        """Wait for a start slot; False (the slot given up) as soon as `give_up` is set."""
        while True:
            async with self._lock:
                slot = max(self._next, self._clock())
                self._next = slot + self.interval
            delay = slot - self._clock()
            if delay > 0 and await _sleep_unless(give_up, delay):
                return False
            if self._clock() - slot <= self.tolerance:
                return True

    def restart(self) -> None:
        """The next slot no sooner than one interval from now. For after a call whose real
        departure is unknown: a run's first request leaves late (it opens the connection and
        warms the HTTP stack), and the provider counts arrivals, not our slots."""
        self._next = max(self._next, self._clock() + self.interval)

    async def hand_over(self) -> None:
        """Wait until the next free slot: whoever calls the provider after this pacer is done
        (the next run, once it takes the warehouse's fetch lock) then starts at least one
        interval after the last call, so the limit holds across runs, not only within one."""
        delay = self._next - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)


async def _sleep_unless(event: asyncio.Event | None, seconds: float) -> bool:
    """Sleep `seconds`, or less if `event` is set first; True when the event cut it short."""
    if event is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


class CircuitBreaker:
    """Closed → open after N consecutive failed *attempts* → one probe attempt after the cool-down.

    Every attempt, retries included, asks `allow()` right before it is sent and
    then reports `success()` (the provider answered), `failure()` (5xx, timeout,
    connection error) or `release()` (it ended without a verdict: never sent,
    cancelled)."""

    def __init__(self, failures: int, cooldown_s: float, clock=time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.openings = 0  # times it went from closed or half-open to open

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def failure(self) -> None:
        self._failures += 1
        if self._probe_in_flight or self._failures >= self._threshold:
            if self.state != "open":
                self.openings += 1
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def release(self) -> None:
        """The probe ended without a verdict (no call made, or cancelled): let the next call probe."""
        self._probe_in_flight = False


class _UntilBreakerOpens(stop_base):
    """Tenacity stop condition: no retry once the provider's breaker is open."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._breaker.state == "open"


class _QuotaGate:
    """Takes quota from the shared ledger in small blocks, so the ledger is not
    written once per call; unused calls go back on close. A crash loses at most
    one block (counted as used): the quota can be under-used, never exceeded."""

    def __init__(self, ledger: QuotaLedger | None, provider: str, limit: int | None) -> None:
        self._ledger = ledger
        self._provider = provider
        self._limit = limit
        self._held = 0
        self._day: date | None = None
        self._block = 1 if limit is None else max(1, min(50, limit // 20))

    def take(self) -> bool:
        if self._limit is None or self._ledger is None:
            return True
        today = datetime.now(UTC).date()
        if self._day != today:
            self.close()
            self._day = today
        if self._held == 0:
            self._held = self._ledger.reserve_quota(self._provider, today, self._block, self._limit)
            if self._held == 0:
                return False
        self._held -= 1
        return True

    def give_back(self) -> None:
        """A call taken but never sent (breaker open, no free connection) is not spent."""
        if self._limit is not None and self._ledger is not None:
            self._held += 1

    def close(self) -> None:
        if self._ledger is not None and self._held and self._day is not None:
            self._ledger.release_quota(self._provider, self._day, self._held)
        self._held = 0


class _BreakerOpen(Exception):
    """The breaker refused an attempt (a first call or a retry): nothing was sent."""


class ProviderClient:
    """All calls to one provider during one run (use as an async context manager)."""

    def __init__(
        self,
        provider: Provider,
        settings: ProviderSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        ledger: QuotaLedger | None = None,
        redactor: Redactor | None = None,
        stats: ProviderStats | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.stats = stats or ProviderStats()
        self.redactor = redactor or Redactor()
        self.redactor.add(settings.api_key)
        self._auth: Auth = provider.auth(settings.api_key) if settings.api_key else Auth()
        self._transport = transport
        self._quota = _QuotaGate(ledger, provider.name, settings.daily_quota)
        self._limiter = Pacer(settings.rps) if settings.rps else None
        self._breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
        # Set (and replaced by a fresh one) when the breaker opens: wakes every call waiting for
        # its rate-limit slot or sleeping in a retry's backoff, so they give up at once.
        self._opened = asyncio.Event()
        self._openings_seen = 0
        self._log = logger or log
        self._clients: list[httpx.AsyncClient] = []
        # Last in, first out: under a rate limit the same few connections stay warm and the rest
        # expire (httpx closes a connection idle for 5 s). Round-robin would rest every one past
        # that at 1 call/s over 16 clients, and pay a new TCP and TLS handshake per call.
        self._idle: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        self._auth_failed: str | None = None
        self._breaker_reported = False
        self._not_before = 0.0  # monotonic time before which no call starts (rate-limit headers)
        # The run's first call goes alone: a rejected key then costs one call, not one per worker.
        self._first_answer = asyncio.Event()
        self._first_call_sent = False

    async def __aenter__(self) -> ProviderClient:
        silence_http_loggers(self.redactor)
        return self

    def _new_client(self) -> httpx.AsyncClient:
        """One more client of ONE connection: httpcore's pool walks every connection it holds on
        each request and each response, so N pools of one cost less CPU than one pool of N.
        Made when an attempt finds none idle, up to `concurrency`: a run of three domains makes
        three, whatever the setting."""
        client = httpx.AsyncClient(
            base_url=self.settings.base_url,
            timeout=httpx.Timeout(
                self.settings.read_timeout_s,
                connect=self.settings.connect_timeout_s,
                pool=self.settings.pool_timeout_s,
            ),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            transport=self._transport,
            verify=_tls_context(),
            headers={"Accept-Encoding": ACCEPT_ENCODING, **self._auth.headers},
            auth=(self._auth.basic_user, "") if self._auth.basic_user else None,
            follow_redirects=False,
        )
        self._clients.append(client)
        return client

    async def __aexit__(self, *exc: object) -> None:
        if self._limiter is not None and exc[0] is None:
            await self._limiter.hand_over()
        self._quota.close()
        await asyncio.gather(*(c.aclose() for c in self._clients))

    @property
    def disabled_reason(self) -> str | None:
        return self._auth_failed

    async def fetch(self, request: ProviderRequest, *, _fallback: bool = False) -> CallResult:
        if self._auth_failed:
            return self._result("auth_failed", None, None, self._auth_failed, 0, 0.0)
        clock = _Clock()
        try:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.settings.max_attempts) | _UntilBreakerOpens(self._breaker),
                wait=self._wait,
                sleep=self._sleep,
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    http_status, body = await self._send(request, clock)
        except _Retryable as exc:
            self.stats.errors[exc.kind] += 1
            attempts = clock.sent
            if exc.kind == "rate_limited":
                return self._result("rate_limited", exc.http_status, None, exc.detail, attempts, *clock.ms())
            detail = f"{exc.detail} after {attempts} attempt(s)"
            if attempts < self.settings.max_attempts and self._breaker.state != "closed":
                detail += "; then the circuit opened"
                return self._unavailable(exc.http_status, detail, attempts, *clock.ms())
            return self._result("error", exc.http_status, None, detail, attempts, *clock.ms())
        except _BreakerOpen:
            attempts = clock.sent
            detail = "circuit breaker open" + (f" after {attempts} attempt(s)" if attempts else "")
            return self._unavailable(None, detail, attempts, *clock.ms())
        except _Final as exc:
            self.stats.errors[exc.status] += 1
            return self._result(exc.status, exc.http_status, None, exc.detail, clock.sent, *clock.ms())

        attempts = clock.sent
        latency, wait = clock.ms()
        try:
            verdict = self.provider.interpret(request, http_status, body) or _default_reading(
                http_status, body
            )
        except Exception as exc:  # a body the provider cannot read costs one row
            verdict = Interpretation("parse_error", None, f"unreadable answer ({type(exc).__name__})")
        if verdict.fallback is not None and not _fallback:
            self._log.info("%s: %s", self.provider.name, self.redactor.text(verdict.detail or "fallback"))
            follow = await self.fetch(verdict.fallback, _fallback=True)
            return CallResult(
                follow.status,
                follow.http_status,
                follow.payload,
                follow.detail,
                attempts + follow.attempts,
                latency + follow.latency_ms,
                self._cost(attempts) + follow.cost,
                wait + follow.wait_ms,
            )
        if verdict.status == "auth_failed":
            self._disable(http_status)
        return self._result(
            verdict.status, http_status, verdict.payload, verdict.detail, attempts, latency, wait
        )

    async def _send(self, request: ProviderRequest, clock: _Clock) -> tuple[int, Any]:
        """One attempt: quota, pacing, the breaker's admission, the exchange and its verdict."""
        if not self._quota.take():
            raise _Final("quota_exhausted", f"daily quota of {self.settings.daily_quota} calls reached")
        if self._breaker.state == "open":  # don't wait for a rate-limit slot just to be refused
            self._quota.give_back()
            raise _BreakerOpen
        queued = time.perf_counter()
        try:
            first = await self._pace()
        except _BreakerOpen:  # opened while this attempt waited for its slot
            self._quota.give_back()
            raise
        finally:
            clock.waited += time.perf_counter() - queued
        try:
            if self._auth_failed:
                # The key was rejected while this call waited its turn: don't send it.
                self._quota.give_back()
                raise _Final("auth_failed", self._auth_failed)
            probing = self._breaker.state == "half_open"
            if not self._breaker.allow():
                # Opened while this attempt waited for its slot: it never goes out.
                self._quota.give_back()
                self._report_open()
                raise _BreakerOpen
            clock.sent += 1
            self._count_call(retry=clock.sent > 1)
            went = time.perf_counter()
            left_process = True
            try:
                if request.call is not None:
                    answer = await self._call_attempt(request)
                else:
                    answer = await self._attempt(request)
            except _Retryable as exc:
                if exc.kind == "pool":
                    # Never left this process: not a call, not a verdict on the provider.
                    left_process = False
                    clock.sent -= 1
                    self._count_call(retry=clock.sent > 0, undo=True)
                    self._quota.give_back()
                    if probing:
                        self._breaker.release()
                elif exc.kind == "rate_limited":
                    self._breaker.success()  # the provider answered; it is throttling, not down
                else:
                    self._breaker.failure()
                raise
            except _Final:
                self._breaker.success()  # the provider answered (an unusable body is still an answer)
                raise
            except BaseException:
                if probing:
                    self._breaker.release()  # cancelled or crashed mid-probe: never wedge the breaker
                raise
            finally:
                if left_process:
                    round_trip = time.perf_counter() - went
                    clock.round_trips += round_trip
                    self.stats.latencies_ms.append(round_trip * 1000)
            self._breaker.success()
            return answer
        finally:
            self._note_openings()
            if first:
                if self._limiter is not None:
                    self._limiter.restart()
                self._first_answer.set()

    def _note_openings(self) -> None:
        if self._breaker.openings != self._openings_seen:
            self._openings_seen = self._breaker.openings
            self._opened.set()
            self._opened = asyncio.Event()
            self._report_open()

    def _report_open(self) -> None:
        if not self._breaker_reported:
            self._breaker_reported = True
            self._log.warning(
                "%s: circuit open after %d failed attempts in a row; recording provider_unavailable "
                "for %.0f s before one probe call",
                self.provider.name,
                self.settings.breaker_failures,
                self.settings.breaker_cooldown_s,
            )

    def _unavailable(
        self, http_status: int | None, detail: str, attempts: int, latency_ms: float, wait_ms: float = 0.0
    ) -> CallResult:
        return self._result("provider_unavailable", http_status, None, detail, attempts, latency_ms, wait_ms)

    async def _sleep(self, seconds: float) -> None:
        """A retry's backoff, cut short when the breaker opens (the retry is then refused)."""
        await _sleep_unless(self._opened, seconds)

    def _count_call(self, *, retry: bool, undo: bool = False) -> None:
        sign = -1 if undo else 1
        self.stats.calls += sign
        self.stats.cost += sign * self.settings.cost_per_call
        if retry:
            self.stats.retries += sign

    def _disable(self, http_status: int | None) -> None:
        if self._auth_failed is None:
            self._auth_failed = f"HTTP {http_status}: key rejected or plan exhausted; no more calls this run"
            self._log.error(
                "%s answered HTTP %s: the API key was rejected or the plan is exhausted. "
                "No more calls to %s in this run; check %s_API_KEY.",
                self.provider.name,
                http_status,
                self.provider.name,
                self.provider.name.upper(),
            )

    def _result(
        self,
        status: Status,
        http_status: int | None,
        payload: Any,
        detail: str | None,
        attempts: int,
        latency_ms: float,
        wait_ms: float = 0.0,
    ) -> CallResult:
        self.stats.statuses[status] += 1
        if attempts:
            self.stats.waits_ms.append(wait_ms)
        return CallResult(
            status=status,
            http_status=http_status,
            payload=self.redactor.obj(payload),
            detail=self.redactor.text(detail) if detail else None,
            attempts=attempts,
            latency_ms=round(latency_ms, 2),
            cost=self._cost(attempts),
            wait_ms=round(wait_ms, 2),
        )

    def _cost(self, attempts: int) -> float:
        return attempts * self.settings.cost_per_call

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            # A 429 beyond the cap never gets here; a 5xx asking for longer is capped.
            return min(exc.retry_after, self.settings.max_retry_after_s)
        backoff = wait_random_exponential(
            multiplier=self.settings.backoff_base_s, max=self.settings.backoff_max_s
        )
        return backoff(state)

    async def _borrow(self) -> httpx.AsyncClient:
        """A client with its connection free; waits at most the pool timeout for one once
        `concurrency` clients exist."""
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        if len(self._clients) < max(1, self.settings.concurrency):
            return self._new_client()
        try:
            async with asyncio.timeout(self.settings.pool_timeout_s):
                return await self._idle.get()
        except TimeoutError:
            raise httpx.PoolTimeout("no idle connection") from None

    async def _pace(self) -> bool:
        """Wait for the first call's answer, the provider's pause (rate-limit headers) and the
        rate limiter. True for the run's first call."""
        first = not self._first_call_sent
        if first:
            self._first_call_sent = True
        else:
            await self._first_answer.wait()
        try:
            while True:
                # Opened before or while this call waited: refused now, not when its slot comes.
                if self._breaker.state == "open":
                    raise _BreakerOpen
                opened = self._opened
                delay = self._not_before - time.monotonic()
                if not (delay > 0 and await _sleep_unless(opened, delay)) and (
                    self._limiter is None or await self._limiter.acquire(opened)
                ):
                    break
        except BaseException:
            if first:
                self._first_answer.set()  # cancelled before sending: never leave the others waiting
            raise
        return first

    async def _call_attempt(self, request: ProviderRequest) -> tuple[int, Any]:
        """One library call (no HTTP) under the same pacing, deadline and retry rules.

        At the deadline the caller stops waiting; the library's thread ends on its own."""
        assert request.call is not None
        deadline = self.settings.attempt_deadline_s
        try:
            async with asyncio.timeout(deadline):
                return 200, await asyncio.to_thread(request.call)
        except TimeoutError:
            raise _Retryable("timeout", f"no answer within the {deadline:g}-s attempt deadline") from None
        except Transient as exc:
            raise _Retryable("transient", self.redactor.text(str(exc) or type(exc).__name__)) from None
        except Exception as exc:
            status = self.provider.classify_exception(exc)
            raise _Final(status, self.redactor.text(f"{type(exc).__name__}: {exc}")) from None

    def _hold(self, headers: httpx.Headers) -> None:
        pause = self.provider.pause_after(headers)
        if pause and pause > 0:
            self._not_before = max(
                self._not_before, time.monotonic() + min(pause, self.settings.max_retry_after_s)
            )

    async def _attempt(self, request: ProviderRequest) -> tuple[int, Any]:
        """One HTTP exchange under the attempt's overall deadline."""
        deadline = self.settings.attempt_deadline_s
        try:
            async with asyncio.timeout(deadline):
                return await self._exchange(request)
        except TimeoutError:
            detail = f"no complete answer within the {deadline:g}-s attempt deadline"
            raise _Retryable("timeout", detail) from None

    async def _exchange(self, request: ProviderRequest) -> tuple[int, Any]:
        """Streaming with a decompressed-size cap, status triage."""
        params = {**request.params, **self._auth.params}
        cap = self.settings.max_response_bytes
        status: int | None = None
        client: httpx.AsyncClient | None = None
        try:
            client = await self._borrow()
            async with client.stream(
                request.method, request.path, params=params, json=request.json
            ) as response:
                status = response.status_code
                self._hold(response.headers)
                if status == 429 or status >= 500:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    if (
                        status == 429
                        and retry_after is not None
                        and retry_after > self.settings.max_retry_after_s
                    ):
                        # Waiting that long would stall the run: record it and move on.
                        raise _Final(
                            "rate_limited",
                            f"HTTP 429 with Retry-After {retry_after:.0f} s "
                            f"(cap {self.settings.max_retry_after_s:.0f} s)",
                            status,
                        )
                    kind = "rate_limited" if status == 429 else "server_error"
                    raise _Retryable(kind, f"HTTP {status}", status, retry_after)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise _Final(
                        "parse_error", f"response of {declared} bytes exceeds the {cap}-byte cap", status
                    )
                body = await _read_capped(response, cap, status)
                content_type = response.headers.get("content-type", "")
        except zlib.error:
            # A body that claims a Content-Encoding it does not have: an answer, but unusable.
            raise _Final("parse_error", "undecodable body (bad Content-Encoding)", status) from None
        except httpx.PoolTimeout:
            raise _Retryable(
                "pool", f"no free connection within {self.settings.pool_timeout_s:g} s (pool timeout)"
            ) from None
        except httpx.TimeoutException as exc:
            raise _Retryable("timeout", f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable("connection", f"connection error ({type(exc).__name__})") from None
        finally:
            if client is not None:
                self._idle.put_nowait(client)
        return status, _decode(status, body, content_type)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (CA bundle, SSL_CERT_FILE/SSL_CERT_DIR), built once:
    loading the bundle costs tens of milliseconds, and every client of every provider shares it."""
    return httpx.create_ssl_context()


async def _read_capped(response: httpx.Response, cap: int, status: int) -> bytes:
    """The body, decompressed here piece by piece; stops as soon as it passes `cap` bytes."""
    if response.is_stream_consumed:
        # Built in memory with its content (an in-process transport: sandbox, tests).
        if len(response.content) > cap:
            raise _Final("parse_error", f"response exceeds the {cap}-byte cap", status)
        return response.content
    try:
        inflate = _Inflater.for_encoding(response.headers.get("content-encoding", ""))
    except ValueError as exc:
        raise _Final("parse_error", str(exc), status) from None
    chunks: list[bytes] = []
    size = 0

    def keep(pieces: Iterator[bytes]) -> None:
        nonlocal size
        for piece in pieces:
            size += len(piece)
            if size > cap:
                raise _Final("parse_error", f"response exceeds the {cap}-byte cap (decompressed)", status)
            chunks.append(piece)

    async for raw in response.aiter_raw():
        keep(inflate.feed(raw))
    keep(inflate.finish())
    return b"".join(chunks)


class _Inflater:
    """Undoes a Content-Encoding chain one bounded piece at a time.

    zlib inflates at most `_INFLATE_PIECE` bytes per step (the rest of the input
    waits in `unconsumed_tail`), so the caller can stop at the size cap before a
    bomb is expanded: memory stays near cap + one piece whatever the ratio."""

    def __init__(self, layers: list[str]) -> None:
        # Applied in reverse order of the header: the last coding listed was applied last.
        self._layers = [self._inflater(name) for name in reversed(layers)]
        self._names = list(reversed(layers))
        self._raw_deflate_tried = [False] * len(layers)

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater:
        layers = [c.strip().lower() for c in header.split(",") if c.strip()]
        layers = [c for c in layers if c != "identity"]
        unknown = [c for c in layers if c not in ("gzip", "x-gzip", "deflate")]
        if unknown:
            raise ValueError(f"unsupported Content-Encoding {unknown[0][:40]!r}")
        return cls(layers)

    @staticmethod
    def _inflater(name: str, raw: bool = False) -> Any:
        if name in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        yield from self._finish(0)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self._layers):
            if data:
                yield data
            return
        while data:
            try:
                out = self._layers[i].decompress(data, _INFLATE_PIECE)
            except zlib.error:
                # "deflate" is sent both zlib-wrapped (the standard) and raw (some servers).
                if self._names[i] != "deflate" or self._raw_deflate_tried[i]:
                    raise
                self._raw_deflate_tried[i] = True
                self._layers[i] = self._inflater("deflate", raw=True)
                continue
            self._raw_deflate_tried[i] = True  # the format is settled after the first good step
            data = self._layers[i].unconsumed_tail
            yield from self._through(i + 1, out)

    def _finish(self, i: int) -> Iterator[bytes]:
        if i == len(self._layers):
            return
        yield from self._through(i + 1, self._layers[i].flush())
        yield from self._finish(i + 1)


def _decode(status: int, raw: bytes, content_type: str) -> Any:
    ok = 200 <= status < 300
    if not raw:
        return None
    if "json" not in content_type.lower():
        if ok:
            raise _Final("parse_error", f"expected JSON, got content type {content_type or 'none'!r}", status)
        return None
    try:
        body = json.loads(raw)
        check_depth(body)
        return body
    except Exception as exc:  # any undecodable body is one parse_error row, never a crash
        # JSONDecodeError, UnicodeDecodeError, RecursionError (deep nesting),
        # ValueError (an integer of thousands of digits), BodyTooDeep.
        if ok:
            raise _Final("parse_error", f"malformed JSON ({exc.__class__.__name__})", status) from None
        return None


MAX_JSON_DEPTH = 64


class BodyTooDeep(ValueError):
    """A JSON body nested deeper than any provider's real answers (a hostile or broken body)."""


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise `BodyTooDeep` when `value` nests lists/objects deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                raise BodyTooDeep(f"JSON nested deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _default_reading(http_status: int, body: Any) -> Interpretation:
    if 200 <= http_status < 300:
        if body is None:
            return Interpretation("parse_error", None, "empty body")
        return Interpretation("ok", body)
    if http_status == 404:
        return Interpretation("not_found", body, "HTTP 404")
    if http_status in (401, 403):
        return Interpretation("auth_failed", None, f"HTTP {http_status}")
    return Interpretation("error", body, f"HTTP {http_status}")
