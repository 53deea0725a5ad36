"""The shared HTTP policy against fault-injecting transports.

Every test drives `ProviderClient` with a tiny fake provider (`FakeProvider`,
one GET `/v1/thing` per domain) and an `httpx.MockTransport` whose handler
scripts each answer, then checks what the policy made of it: final status,
number of calls actually sent, retries, quota, breaker, redaction and accounting.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import gzip
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enrichment_pipeline.lib.http_policy import (
    CircuitBreaker,
    ProviderClient,
    ProviderStats,
    parse_retry_after,
)
from enrichment_pipeline.lib.providers.base import CallResult
from enrichment_pipeline.lib.redaction import MASK, Redactor
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.conftest import (
    SENTINEL,
    THING_PATH,
    FakeProvider,
    Script,
    fetch_many,
    json_response,
    make_settings,
)

POLICY_LOGGER = "enrichment_pipeline.lib.http_policy"


def thing(domain: str = "a.example"):
    return FakeProvider().requests_for(domain)[0]


async def fetch_once(script: Script, provider: FakeProvider | None = None, **overrides) -> CallResult:
    async with ProviderClient(
        provider or FakeProvider(), make_settings(**overrides), transport=script.transport()
    ) as c:
        return await c.fetch(thing())


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every wait the retry policy chooses, and skip the actual sleep."""
    chosen: list[float] = []
    original = ProviderClient._wait

    def recording(self: ProviderClient, state) -> float:
        chosen.append(original(self, state))
        return 0.0

    monkeypatch.setattr(ProviderClient, "_wait", recording)
    return chosen


# --- parse_retry_after -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), (None, None), ("", None), ("  ", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize(
    "garbage", ["soon", "Wed, 99 Foo 2024", "12 parsecs", "1e", "Mon, 32 Jan 2024 25:61:00 GMT"]
)
def test_parse_retry_after_garbage_is_none(garbage: str) -> None:
    assert parse_retry_after(garbage) is None


def test_parse_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    header = email.utils.format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=now.timestamp()) == pytest.approx(42.0)


def test_parse_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0


def test_parse_retry_after_date_without_zone_is_utc() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:10", now=now.timestamp()) == pytest.approx(10.0)


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, now=0.0)
    assert result is None or result >= 0.0


# --- 429 and Retry-After -----------------------------------------------------------------------------


async def test_429_retry_after_seconds_is_honoured() -> None:
    script = Script(json_response(429, {"error": "slow down"}, **{"Retry-After": "1"}), json_response())
    started = time.monotonic()
    result = await fetch_once(script)
    elapsed = time.monotonic() - started
    assert result.status == "ok"
    assert (result.attempts, script.calls) == (2, 2)
    assert elapsed >= 0.9  # the backoff alone would have waited <= 10 ms


async def test_429_retry_after_http_date_is_honoured(waits: list[float]) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    script = Script(json_response(429, **{"Retry-After": when}), json_response())
    result = await fetch_once(script)
    assert result.status == "ok"
    assert script.calls == 2
    assert len(waits) == 1
    assert 28.0 <= waits[0] <= 30.0


async def test_429_retry_after_beyond_cap_is_rate_limited_without_retry(waits: list[float]) -> None:
    script = Script(json_response(429, **{"Retry-After": "120"}), json_response())
    result = await fetch_once(script, max_retry_after_s=60.0)
    assert result.status == "rate_limited"
    assert result.http_status == 429
    assert script.calls == 1
    assert waits == []
    assert "120" in (result.detail or "")


async def test_429_exhausted_is_rate_limited(waits: list[float]) -> None:
    script = Script(json_response(429))
    async with ProviderClient(
        FakeProvider(), make_settings(max_attempts=3), transport=script.transport()
    ) as c:
        result = await c.fetch(thing())
    assert result.status == "rate_limited"
    assert (result.attempts, script.calls) == (3, 3)
    assert c.stats.retries == 2
    assert c.stats.errors["rate_limited"] == 1
    # No Retry-After: plain backoff (tenacity also computes a wait after the last attempt).
    assert len(waits) >= 2 and all(w <= 0.01 for w in waits)


async def test_5xx_retry_after_is_capped(waits: list[float]) -> None:
    """A 503 asking for an hour must not stall the run beyond max_retry_after_s."""
    script = Script(json_response(503, **{"Retry-After": "3600"}), json_response())
    result = await fetch_once(script, max_retry_after_s=2.0)
    assert result.status == "ok"
    assert waits == [2.0]


# --- 5xx, 4xx ----------------------------------------------------------------------------------------


async def test_5xx_burst_then_success() -> None:
    script = Script(json_response(500), json_response(502), json_response(503), json_response(200, {"v": 1}))
    async with ProviderClient(
        FakeProvider(), make_settings(max_attempts=4), transport=script.transport()
    ) as c:
        result = await c.fetch(thing())
    assert result.status == "ok"
    assert result.payload == {"v": 1}
    assert result.http_status == 200
    assert (result.attempts, script.calls) == (4, 4)
    assert (c.stats.calls, c.stats.retries) == (4, 3)
    assert dict(c.stats.statuses) == {"ok": 1}
    assert not c.stats.errors


async def test_5xx_forever_is_error_after_max_attempts() -> None:
    script = Script(json_response(500))
    async with ProviderClient(
        FakeProvider(), make_settings(max_attempts=3), transport=script.transport()
    ) as c:
        result = await c.fetch(thing())
    assert result.status == "error"
    assert result.http_status == 500
    assert (result.attempts, script.calls) == (3, 3)
    assert result.detail == "HTTP 500 after 3 attempt(s)"
    assert c.stats.errors["server_error"] == 1
    assert c.stats.retries == 2


@pytest.mark.parametrize(("code", "status"), [(400, "error"), (404, "not_found"), (422, "error")])
async def test_4xx_is_not_retried(code: int, status: str) -> None:
    script = Script(json_response(code, {"error": "nope"}), json_response())
    result = await fetch_once(script)
    assert result.status == status
    assert result.http_status == code
    assert (result.attempts, script.calls) == (1, 1)


async def test_404_default_reading_keeps_body() -> None:
    result = await fetch_once(Script(json_response(404, {"error": "no such domain"})))
    assert result.status == "not_found"
    assert result.payload == {"error": "no such domain"}
    assert result.detail == "HTTP 404"


async def test_redirect_is_not_followed() -> None:
    script = Script(httpx.Response(302, headers={"Location": "https://elsewhere.test/"}))
    result = await fetch_once(script)
    assert result.status == "error"
    assert result.http_status == 302
    assert script.calls == 1


# --- timeouts and connection errors ------------------------------------------------------------------


async def test_read_timeout_retried_then_error() -> None:
    script = Script(httpx.ReadTimeout("read timed out"))
    async with ProviderClient(
        FakeProvider(), make_settings(max_attempts=3), transport=script.transport()
    ) as c:
        result = await c.fetch(thing())
    assert result.status == "error"
    assert result.http_status is None
    assert (result.attempts, script.calls) == (3, 3)
    assert result.detail == "timeout (ReadTimeout) after 3 attempt(s)"
    assert c.stats.errors["timeout"] == 1


async def test_timeout_then_success() -> None:
    script = Script(httpx.ConnectTimeout("connect timed out"), json_response())
    result = await fetch_once(script)
    assert result.status == "ok"
    assert (result.attempts, script.calls) == (2, 2)


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("connection refused"), httpx.RemoteProtocolError("peer closed connection")],
)
async def test_connection_errors_retried_then_error(exc: Exception) -> None:
    script = Script(exc)
    async with ProviderClient(
        FakeProvider(), make_settings(max_attempts=2), transport=script.transport()
    ) as c:
        result = await c.fetch(thing())
    assert result.status == "error"
    assert script.calls == 2
    assert result.detail == f"connection error ({type(exc).__name__}) after 2 attempt(s)"
    assert c.stats.errors["connection"] == 1


async def test_slow_answer_is_cut_by_read_timeout_and_retried() -> None:
    """A handler slower than read_timeout_s is cut off by the client's timeout."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return json_response()

    # MockTransport does not enforce timeouts; wrap it in one that does, like a real pool would.
    class TimeoutEnforcing(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            read = request.extensions["timeout"]["read"]
            try:
                return await asyncio.wait_for(self.inner.handle_async_request(request), read)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out", request=request) from None

    script = Script(slow, json_response())
    settings = make_settings(read_timeout_s=0.05, max_attempts=2)
    started = time.monotonic()
    async with ProviderClient(FakeProvider(), settings, transport=TimeoutEnforcing(script.transport())) as c:
        result = await c.fetch(thing())
    assert result.status == "ok"
    assert script.calls == 2
    assert time.monotonic() - started < 1.0


# --- bodies that cannot be used ----------------------------------------------------------------------


def _raw(status: int, content: bytes, content_type: str = "application/json", **headers: str):
    """A step serving these exact bytes (no eager decoding, so a broken gzip body gets through)."""
    all_headers = {"Content-Type": content_type, "Content-Length": str(len(content)), **headers}

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=all_headers, stream=httpx.ByteStream(content))

    return serve


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(_raw(200, json.dumps({"a": list(range(50))}).encode()[:40]), id="truncated"),
        pytest.param(_raw(200, b"{'a': 1,}"), id="malformed"),
        pytest.param(_raw(200, b'{"a": "\xff\xfe"}'), id="not-utf8"),
        pytest.param(_raw(200, b"<html><body>maintenance</body></html>", "text/html"), id="html"),
        pytest.param(_raw(200, b'{"a": 1}', ""), id="no-content-type"),
        pytest.param(_raw(200, b""), id="empty"),
        pytest.param(
            _raw(200, b"definitely not gzip", **{"Content-Encoding": "gzip"}), id="bad-content-encoding"
        ),
    ],
)
async def test_unusable_200_body_is_parse_error_not_retried(response) -> None:
    script = Script(response, json_response())
    async with ProviderClient(FakeProvider(), make_settings(), transport=script.transport()) as c:
        result = await c.fetch(thing())
    assert result.status == "parse_error"
    assert result.http_status == 200
    assert result.payload is None
    assert (result.attempts, script.calls) == (1, 1)
    assert c.stats.retries == 0


async def test_gzip_body_is_decoded() -> None:
    body = gzip.compress(json.dumps({"v": "zipped"}).encode())
    result = await fetch_once(Script(_raw(200, body, **{"Content-Encoding": "gzip"})))
    assert result.status == "ok"
    assert result.payload == {"v": "zipped"}


async def test_non_json_error_body_keeps_http_reading() -> None:
    result = await fetch_once(Script(_raw(404, b"<html>Not Found</html>", "text/html")))
    assert result.status == "not_found"
    assert result.payload is None


class _Chunks:
    """An async body that counts how many chunks the client actually pulled."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size, self.pulled = n, size, 0

    async def __aiter__(self):
        for _ in range(self.n):
            self.pulled += 1
            yield b"x" * self.size


async def test_oversized_body_with_content_length_is_rejected_unread() -> None:
    body = _Chunks(100, 1024)
    response = httpx.Response(
        200, content=body, headers={"Content-Type": "application/json", "Content-Length": str(100 * 1024)}
    )
    script = Script(lambda request: response)
    result = await fetch_once(script, max_response_bytes=8 * 1024)
    assert result.status == "parse_error"
    assert "102400 bytes exceeds the 8192-byte cap" in (result.detail or "")
    assert script.calls == 1
    assert body.pulled == 0


async def test_oversized_streamed_body_stops_reading_early() -> None:
    body = _Chunks(1000, 1024)
    response = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    assert "content-length" not in response.headers
    script = Script(lambda request: response)
    result = await fetch_once(script, max_response_bytes=8 * 1024)
    assert result.status == "parse_error"
    assert "exceeds the 8192-byte cap" in (result.detail or "")
    assert script.calls == 1
    assert body.pulled <= 10  # stopped just past the cap, not after 1000 chunks


async def test_body_exactly_at_cap_is_accepted() -> None:
    payload = json.dumps({"pad": "x" * 100}).encode()
    result = await fetch_once(Script(_raw(200, payload)), max_response_bytes=len(payload))
    assert result.status == "ok"
    assert result.payload == {"pad": "x" * 100}


# --- auth failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [401, 403])
async def test_auth_failure_disables_provider_for_the_run(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(json_response(code, {"error": "bad key"}))
    async with ProviderClient(FakeProvider(), make_settings(), transport=script.transport()) as c:
        first = await c.fetch(thing("a.example"))
        second = await c.fetch(thing("b.example"))
        concurrent = await fetch_many(c, 5)
    assert first.status == "auth_failed"
    assert first.http_status == code
    assert first.attempts == 1
    assert second.status == "auth_failed"
    assert second.attempts == 0
    assert second.cost == 0.0
    assert {r.status for r in concurrent} == {"auth_failed"}
    assert script.calls == 1
    assert c.disabled_reason is not None and str(code) in c.disabled_reason
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "API key was rejected" in errors[0].getMessage()
    assert "FAKE_API_KEY" in errors[0].getMessage()


async def test_concurrent_auth_failures_log_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def slow_401(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return json_response(401)

    script = Script(slow_401)
    async with ProviderClient(FakeProvider(), make_settings(), transport=script.transport()) as c:
        results = await fetch_many(c, 8)  # all in flight before the first 401 comes back
    assert {r.status for r in results} == {"auth_failed"}
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


# --- quota -------------------------------------------------------------------------------------------


async def test_quota_is_never_exceeded_across_runs(warehouse: Warehouse) -> None:
    script = Script(json_response())
    settings = make_settings(daily_quota=5)
    today = datetime.now(UTC).date()
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), ledger=warehouse) as c:
        first_run = await fetch_many(c, 3)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), ledger=warehouse) as c:
        second_run = [await c.fetch(thing(f"r2-{i}.example")) for i in range(4)]
        second_stats = c.stats
    assert [r.status for r in first_run] == ["ok"] * 3
    assert [r.status for r in second_run] == ["ok", "ok", "quota_exhausted", "quota_exhausted"]
    assert script.calls == 5
    assert warehouse.quota_used("fake", today) == 5
    exhausted = second_run[-1]
    assert "daily quota of 5" in (exhausted.detail or "")
    # A call that was never sent costs nothing and counts no attempt.
    assert (exhausted.attempts, exhausted.cost) == (0, 0.0)
    assert second_stats.calls == 2
    assert second_stats.statuses["quota_exhausted"] == 2


async def test_quota_exhausted_with_concurrency(warehouse: Warehouse) -> None:
    script = Script(json_response())
    settings = make_settings(daily_quota=5)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), ledger=warehouse) as c:
        results = await fetch_many(c, 20)
    assert sum(r.status == "ok" for r in results) == 5
    assert sum(r.status == "quota_exhausted" for r in results) == 15
    assert script.calls == 5


async def test_unused_reserved_quota_is_released_on_close(warehouse: Warehouse) -> None:
    script = Script(json_response())
    settings = make_settings(daily_quota=100)  # reserves blocks of 5
    today = datetime.now(UTC).date()
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), ledger=warehouse) as c:
        await fetch_many(c, 3)
        assert warehouse.quota_used("fake", today) == 5  # one block held
    assert warehouse.quota_used("fake", today) == 3


async def test_retries_consume_quota(warehouse: Warehouse) -> None:
    script = Script(json_response(500))
    settings = make_settings(daily_quota=2, max_attempts=4)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), ledger=warehouse) as c:
        result = await c.fetch(thing())
    assert script.calls == 2
    assert result.status == "quota_exhausted"
    assert result.attempts == 2


# --- rate limit --------------------------------------------------------------------------------------


async def test_rate_limit_never_bursts() -> None:
    stamps: list[float] = []

    def instant(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        return json_response()

    rps, n = 50, 120
    settings = make_settings(rps=float(rps), concurrency=16)
    started = time.monotonic()
    async with ProviderClient(FakeProvider(), settings, transport=Script(instant).transport()) as c:
        semaphore = asyncio.Semaphore(16)

        async def one(i: int) -> CallResult:
            async with semaphore:
                return await c.fetch(thing(f"d{i}.example"))

        results = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - started
    assert {r.status for r in results} == {"ok"}
    assert len(stamps) == n
    stamps.sort()
    # The first second (from the start of the run, not the first call) holds no burst ...
    assert sum(t < started + 1.0 for t in stamps) <= rps + 1
    # ... and neither does any other 1-second window.
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[i:] if u < t + 1.0)
        assert in_window <= rps + 1, f"{in_window} calls within 1 s starting at call {i}"
    assert elapsed >= (n - 1) / rps * 0.95


async def test_one_pooled_client_per_connection_each_lent_to_one_attempt() -> None:
    """At most `concurrency` clients of one connection each; an attempt borrows one and gives it back."""
    in_flight, peak = 0, 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json={"ok": True})

    settings = make_settings(concurrency=5)
    async with ProviderClient(FakeProvider(), settings, transport=httpx.MockTransport(slow)) as c:
        assert c._clients == []  # made as attempts need them
        results = await fetch_many(c, 12)
        assert len(c._clients) == 5
        assert c._idle.qsize() == 5  # every client came back
    assert peak == 5
    assert {r.status for r in results} == {"ok"}
    assert all(client.is_closed for client in c._clients)


async def test_the_one_client_comes_back_after_every_kind_of_failed_attempt() -> None:
    """concurrency 1: a client kept by a failed attempt would leave the retry nothing to send with."""
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, content=b"not json", headers={"content-type": "application/json"}),
        json_response(),
    )
    settings = make_settings(concurrency=1, max_attempts=3, pool_timeout_s=0.2)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        first = await c.fetch(thing("a.example"))  # connection error, 503, malformed body
        second = await c.fetch(thing("b.example"))
        assert len(c._clients) == 1 and c._idle.qsize() == 1
    assert (first.status, first.attempts) == ("parse_error", 3)
    assert second.status == "ok"


async def test_calls_one_after_another_reuse_the_last_client_and_its_warm_connection() -> None:
    """Under a rate limit calls come one at a time: the client just given back goes out again, so
    its connection stays within httpx's keep-alive expiry instead of every client resting past it."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json={"ok": True})

    async with ProviderClient(
        FakeProvider(), make_settings(concurrency=4), transport=httpx.MockTransport(slow)
    ) as c:
        await fetch_many(c, 8)  # four clients made and given back
        assert len(c._clients) == 4
        lent: list[httpx.AsyncClient] = []
        borrow = c._borrow

        async def spy() -> httpx.AsyncClient:
            lent.append(await borrow())
            return lent[-1]

        c._borrow = spy
        for i in range(5):
            assert (await c.fetch(thing(f"one-by-one{i}.example"))).status == "ok"
    assert len(set(map(id, lent))) == 1


async def test_a_few_calls_make_a_few_clients_whatever_the_concurrency() -> None:
    script = Script(json_response())
    async with ProviderClient(
        FakeProvider(), make_settings(concurrency=500), transport=script.transport()
    ) as c:
        results = await fetch_many(c, 3)
        assert 1 <= len(c._clients) <= 3
    assert {r.status for r in results} == {"ok"}


def test_every_client_shares_one_tls_context() -> None:
    settings = make_settings(concurrency=3, base_url="https://api.example")

    async def contexts() -> set[int]:
        async with ProviderClient(FakeProvider(), settings) as c:
            made = [c._new_client() for _ in range(3)]
            return {id(client._transport._pool._ssl_context) for client in made}

    assert len(asyncio.run(contexts())) == 1


# --- circuit breaker ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.success()  # resets the count
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()


def test_breaker_half_open_allows_exactly_one_probe_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, cooldown_s=10.0, clock=clock)
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 10.0
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))


def test_breaker_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10.0, clock=clock)
    for _ in range(3):
        breaker.failure()
    clock.now += 15.0
    assert breaker.allow()
    breaker.failure()  # one failed probe is enough, whatever the threshold
    assert breaker.state == "open"
    clock.now += 9.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.state == "half_open"
    assert breaker.allow()


async def slow_ok(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(0.01)  # keeps concurrent calls in flight together
    return json_response()


async def test_breaker_through_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=POLICY_LOGGER)
    script = Script(json_response(500))
    settings = make_settings(max_attempts=1, breaker_failures=3, breaker_cooldown_s=0.05)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        failing = [await c.fetch(thing(f"f{i}.example")) for i in range(3)]
        assert [r.status for r in failing] == ["error"] * 3
        assert script.calls == 3
        rejected = [await c.fetch(thing(f"r{i}.example")) for i in range(5)]
        assert {r.status for r in rejected} == {"provider_unavailable"}
        assert {r.attempts for r in rejected} == {0}
        assert script.calls == 3

        await asyncio.sleep(0.06)
        script.steps = [slow_ok]
        probe_round = await fetch_many(c, 4)  # concurrent: only one may go through as the probe
        assert sorted(r.status for r in probe_round) == ["ok"] + ["provider_unavailable"] * 3
        assert script.calls == 4
        resumed = await fetch_many(c, 4)
        assert {r.status for r in resumed} == {"ok"}
        assert script.calls == 8
    warnings = [r for r in caplog.records if "circuit open" in r.getMessage()]
    assert len(warnings) == 1


async def test_breaker_failed_probe_reopens_through_client() -> None:
    script = Script(json_response(500))
    settings = make_settings(max_attempts=1, breaker_failures=2, breaker_cooldown_s=0.05)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        await fetch_many(c, 2)
        await asyncio.sleep(0.06)
        probe = await c.fetch(thing())
        after = await c.fetch(thing())
    assert probe.status == "error"
    assert after.status == "provider_unavailable"
    assert script.calls == 3


async def test_breaker_probe_answered_with_429_does_not_wedge_the_breaker() -> None:
    """A probe that ends rate_limited must not leave the breaker waiting for it forever."""
    script = Script(json_response(500))
    settings = make_settings(max_attempts=1, breaker_failures=2, breaker_cooldown_s=0.05)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        await fetch_many(c, 2)
        await asyncio.sleep(0.06)
        script.steps = [json_response(429), json_response()]
        script.requests.clear()
        probe = await c.fetch(thing())
        await asyncio.sleep(0.06)
        later = await c.fetch(thing())
    assert probe.status == "rate_limited"
    assert later.status == "ok"
    assert script.calls == 2


async def test_breaker_probe_refused_by_quota_does_not_wedge_the_breaker() -> None:
    class Ledger:
        """Grants nothing until `open`, then everything."""

        def __init__(self) -> None:
            self.open = False

        def reserve_quota(self, provider, day, want, limit):
            return want if self.open else 0

        def release_quota(self, provider, day, count):
            pass

    ledger = Ledger()
    ledger.open = True
    script = Script(json_response(500))
    settings = make_settings(max_attempts=1, breaker_failures=2, breaker_cooldown_s=0.05, daily_quota=1000)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), ledger=ledger) as c:
        await fetch_many(c, 2)
        c._quota._held = 0  # drop the block held, so the next take asks the ledger
        await asyncio.sleep(0.06)
        ledger.open = False
        refused = await c.fetch(thing())
        ledger.open = True
        script.steps = [json_response()]
        later = await c.fetch(thing())
    assert refused.status == "quota_exhausted"
    assert later.status == "ok"


async def test_parse_errors_do_not_open_the_breaker() -> None:
    script = Script(_raw(200, b"<html/>", "text/html"))
    settings = make_settings(max_attempts=1, breaker_failures=2)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        results = [await c.fetch(thing()) for _ in range(5)]
    assert {r.status for r in results} == {"parse_error"}
    assert script.calls == 5


# --- redaction ---------------------------------------------------------------------------------------


def test_redactor_masks_secrets_longest_first() -> None:
    redactor = Redactor(["abcd", "abcdXYZW", None, "", "abc"])
    assert redactor.text("k=abcdXYZW&j=abcd&s=abc") == f"k={MASK}&j={MASK}&s=abc"


def test_redactor_ignores_short_and_empty_secrets() -> None:
    redactor = Redactor()
    redactor.add("abc")
    redactor.add(None)
    redactor.add("")
    assert redactor.text("abc") == "abc"
    value = {"a": ["abc"]}
    assert redactor.obj(value) is value  # nothing to hide: returned untouched


def test_redactor_obj_walks_json_like_values() -> None:
    redactor = Redactor([SENTINEL])
    value = {
        SENTINEL: "x",
        "list": [f"url?key={SENTINEL}", 1, None, True, {"deep": (SENTINEL, 2.5)}],
        "n": 3,
    }
    assert redactor.obj(value) == {
        MASK: "x",
        "list": [f"url?key={MASK}", 1, None, True, {"deep": [MASK, 2.5]}],
        "n": 3,
    }


def test_redactor_add_is_idempotent() -> None:
    redactor = Redactor([SENTINEL])
    redactor.add(SENTINEL)
    assert redactor.text(SENTINEL + SENTINEL) == MASK + MASK


@pytest.mark.parametrize(
    "encoded",
    [
        "tok%2Bab%2Fcd%3D%3D",  # how httpx writes it in a query string
        "tok+ab/cd==",
        base64.b64encode(b"tok+ab/cd==:").decode(),  # HTTP basic credentials with the key as user
    ],
)
def test_redactor_masks_encoded_forms_of_a_key(encoded: str) -> None:
    redactor = Redactor(["tok+ab/cd=="])
    assert "tok" not in redactor.text(f"GET /v1?key={encoded} done")


@pytest.mark.parametrize("key_in", ["query", "header", "basic"])
async def test_key_never_leaks_into_results_or_logs(key_in: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(request: httpx.Request) -> httpx.Response:
        seen = {"url": str(request.url), "headers": dict(request.headers)}
        domain = request.url.params.get("domain", "")
        if domain.startswith("ok"):
            return json_response(200, {"echo": seen, "note": f"you sent {request.url}"})
        if domain.startswith("bad"):
            return json_response(400, {"message": f"bad request to {request.url} with {seen['headers']}"})
        if domain.startswith("conflict") and request.url.path == THING_PATH:
            return json_response(409, {"url": str(request.url)})
        if domain.startswith("conflict"):
            return json_response(200, {"fallback_echo": seen})
        if domain.startswith("down"):
            raise httpx.ConnectError(f"cannot reach {request.url} ({seen['headers']})", request=request)
        return json_response(500, {"error": f"boom at {request.url}"})

    provider = FakeProvider(key_in=key_in)  # type: ignore[arg-type]
    settings = make_settings(max_attempts=2)
    async with ProviderClient(provider, settings, transport=Script(echo).transport()) as c:
        # Someone turns HTTP debug logging on mid-run (a log config, a debugger, a Dagster setting).
        for name in ("httpx", "httpcore"):
            caplog.set_level(logging.DEBUG, logger=name)
        results = [
            await c.fetch(thing(f"{prefix}.example")) for prefix in ("ok", "bad", "conflict", "down", "err")
        ]
    assert [r.status for r in results] == ["ok", "error", "ok", "error", "error"]
    # The echo really carried the key (in clear or encoded), so masking is what kept it out.
    assert MASK in json.dumps(results[0].payload)
    assert MASK in (results[1].detail or "")
    leaks = [SENTINEL, base64.b64encode(f"{SENTINEL}:".encode()).decode()]
    for result in results:
        for text in (json.dumps(result.payload), result.detail or "", repr(result)):
            assert not any(leak in text for leak in leaks), text
    assert caplog.records  # something was logged (httpx at DEBUG, the fallback note)
    for record in caplog.records:
        message = record.getMessage()
        assert not any(leak in message for leak in leaks), message
    assert not any(leak in caplog.text for leak in leaks)


async def test_fallback_sums_attempts_and_cost() -> None:
    script = Script(
        json_response(409, {"conflict": True}), json_response(500), json_response(200, {"alt": 1})
    )
    settings = make_settings(cost_per_call=0.5)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        result = await c.fetch(thing())
    assert result.status == "ok"
    assert result.payload == {"alt": 1}
    assert [r.url.path for r in script.requests] == [THING_PATH, f"{THING_PATH}/alt", f"{THING_PATH}/alt"]
    assert result.attempts == 3
    assert result.cost == pytest.approx(1.5)
    assert c.stats.calls == 3
    assert c.stats.cost == pytest.approx(1.5)


# --- accounting --------------------------------------------------------------------------------------


def test_stats_percentiles_nearest_rank() -> None:
    stats = ProviderStats()
    assert stats.percentile(0.5) is None
    stats.latencies_ms = [float(v) for v in range(100, 0, -1)]  # 1..100, unordered
    assert stats.percentile(0.50) == 50.0
    assert stats.percentile(0.95) == 95.0
    assert stats.percentile(1.0) == 100.0
    assert stats.percentile(0.0) == 1.0
    stats.latencies_ms = [float(v) for v in range(1, 21)]
    assert stats.percentile(0.95) == 19.0  # not the maximum
    stats.latencies_ms = [7.25]
    assert stats.percentile(0.5) == stats.percentile(0.95) == 7.2


def test_stats_summary_shape() -> None:
    stats = ProviderStats(calls=3, cache_hits=2, retries=1, cost=0.123456)
    stats.statuses["ok"] += 2
    stats.errors["timeout"] += 1
    stats.latencies_ms = [10.0, 20.0]
    stats.waits_ms = [0.0, 400.0]
    assert stats.summary() == {
        "calls": 3,
        "cache_hits": 2,
        "waterfall_skipped_domains": 0,
        "calls_saved": 0,
        "retries": 1,
        "cost_usd": 0.1235,
        "statuses": {"ok": 2},
        "errors": {"timeout": 1},
        "latency_p50_ms": 10.0,
        "latency_p95_ms": 20.0,
        "wait_p50_ms": 0.0,
        "wait_p95_ms": 400.0,
    }


async def test_accounting_through_client() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        domain = request.url.params["domain"]
        if domain == "flaky.example" and sum(r.url.params["domain"] == domain for r in script.requests) == 1:
            return json_response(503)
        if domain == "gone.example":
            return json_response(404)
        if domain == "slow.example":
            raise httpx.ReadTimeout("slow", request=request)
        return json_response()

    script = Script(answer)
    settings = make_settings(cost_per_call=0.25, max_attempts=2)
    stats = ProviderStats()
    async with ProviderClient(FakeProvider(), settings, transport=script.transport(), stats=stats) as c:
        assert c.stats is stats
        results = {
            d: await c.fetch(thing(d)) for d in ("a.example", "flaky.example", "gone.example", "slow.example")
        }
    assert {d: r.status for d, r in results.items()} == {
        "a.example": "ok",
        "flaky.example": "ok",
        "gone.example": "not_found",
        "slow.example": "error",
    }
    assert script.calls == 6  # 1 + 2 + 1 + 2
    assert stats.calls == 6
    assert stats.retries == 2
    assert stats.cost == pytest.approx(6 * 0.25)
    assert sum(r.cost for r in results.values()) == pytest.approx(stats.cost)
    assert dict(stats.statuses) == {"ok": 2, "not_found": 1, "error": 1}
    assert dict(stats.errors) == {"timeout": 1}
    assert len(stats.latencies_ms) == 6  # one round trip per attempt sent
    assert len(stats.waits_ms) == 4  # one wait per call
    assert all(v >= 0 for v in stats.latencies_ms + stats.waits_ms)
    summary = stats.summary()
    assert summary["cost_usd"] == 1.5
    assert summary["latency_p50_ms"] is not None
    assert summary["latency_p95_ms"] >= summary["latency_p50_ms"]
    assert stats.cache_hits == 0


async def test_key_is_sent_where_the_provider_wants_it() -> None:
    script = Script(json_response())
    for key_in in ("query", "header", "basic"):
        await fetch_once(script, FakeProvider(key_in=key_in))  # type: ignore[arg-type]
    query, header, basic = script.requests
    assert query.url.params["key"] == SENTINEL
    assert "x-api-key" not in query.headers
    assert header.headers["x-api-key"] == SENTINEL
    assert "key" not in header.url.params
    expected = "Basic " + base64.b64encode(f"{SENTINEL}:".encode()).decode()
    assert basic.headers["authorization"] == expected
    assert query.url.params["domain"] == "a.example"


async def test_breaker_probe_cancelled_mid_call_does_not_wedge_the_breaker() -> None:
    script = Script(json_response(500))
    settings = make_settings(max_attempts=1, breaker_failures=2, breaker_cooldown_s=0.05)
    async with ProviderClient(FakeProvider(), settings, transport=script.transport()) as c:
        await fetch_many(c, 2)
        await asyncio.sleep(0.06)
        hang = asyncio.Event()

        async def hanging(request: httpx.Request) -> httpx.Response:
            await hang.wait()
            return json_response()

        script.steps = [hanging]
        probe = asyncio.create_task(c.fetch(thing()))
        await asyncio.sleep(0.01)
        assert (await c.fetch(thing())).status == "provider_unavailable"  # the probe is in flight
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        script.steps = [json_response()]
        after = await c.fetch(thing())
    assert after.status == "ok"


async def test_pacer_never_bursts_after_the_event_loop_stalls() -> None:
    """A blocked event loop must not release the overdue slots all at once."""
    import time as _time

    from enrichment_pipeline.lib.http_policy import Pacer

    rps = 50
    pacer = Pacer(rps)
    starts: list[float] = []

    async def caller() -> None:
        for _ in range(8):
            await pacer.acquire()
            starts.append(_time.monotonic())

    async def staller() -> None:
        await asyncio.sleep(0.4)
        _time.sleep(0.3)  # e.g. a synchronous database write on the loop

    await asyncio.gather(*(caller() for _ in range(16)), staller())
    starts.sort()
    worst = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert worst <= rps
    assert len(starts) == 128
