"""The shared HTTP policy over real sockets, against a small scripted server on 127.0.0.1.

The server picks its behaviour from the `domain` query parameter's first label
(`slow`, `flaky`, `echo`, ...), counts hits per domain and records what it saw,
so each test reads like a scenario: "this domain times out twice", "this one
answers 503 twice then 200".
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.redaction import MASK
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline_tests.conftest import SENTINEL, FakeProvider, make_settings

BIG_TOTAL = 64 * 1024 * 1024
SLOW_S = 0.5
DOWN_S = 0.1
DRIP_S = 0.05
DRIP_BYTES = 2_000  # 100 s of dripping: only a deadline ends it early
# 64 MB of zeros in 64 KB of gzip: a decompression bomb.
BOMB_BYTES = 64 * 1024 * 1024
GOOD_BODY = json.dumps({"ok": True, "padding": "x" * 50_000}).encode()
ENCODED = {
    "bomb": gzip.compress(b"[" + b"0," * (BOMB_BYTES // 2) + b"0]", compresslevel=9),
    "gzip": gzip.compress(GOOD_BODY),
    "deflate": zlib.compress(GOOD_BODY),
    "rawdeflate": zlib.compress(GOOD_BODY)[2:-4],  # the raw stream some servers send as "deflate"
    "brotli": b"\x8b\x02\x80{}\x03",
    "badgzip": b"\x1f\x8bnot really gzip at all",
}
ENCODING_OF = {
    "bomb": "gzip",
    "gzip": "gzip",
    "deflate": "deflate",
    "rawdeflate": "deflate",
    "brotli": "br",
    "badgzip": "gzip",
}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default backlog of 5 makes concurrent connects wait for a SYN retry


class FakeServer:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.big_sent = 0
        self.big_done = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.dripped = 0  # bytes of the drip body sent so far
        self.httpd = _HTTPServer(("127.0.0.1", 0), self._handler_class())
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                domain = query.get("domain", "")
                with server.lock:
                    server.hits[domain] += 1
                    hit = server.hits[domain]
                    server.seen.append({"path": self.path, "query": query, "headers": dict(self.headers)})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server.answer(self, domain.split(".")[0].rstrip("0123456789"), hit)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Handler

    def answer(self, h: BaseHTTPRequestHandler, kind: str, hit: int) -> None:
        if kind == "slow" or (kind == "slowonce" and hit == 1):
            self.stop.wait(SLOW_S)
            return self.send(h, 200, {"late": True})
        if kind == "flaky" and hit <= 2:
            return self.send(h, 503, {"error": "try again"})
        if kind == "echo":
            body = {"url": h.path, "headers": dict(h.headers)}
            return self.send(
                h, 200, body, {"X-Echo-Url": h.path, "X-Echo-Key": h.headers.get("X-Api-Key", "")}
            )
        if kind == "err":
            return self.send(h, 500, {"error": f"internal error while serving {h.path}"})
        if kind == "trunc":
            return self.send_raw(h, 200, json.dumps({"a": list(range(100))}).encode()[:57])
        if kind == "short":  # announces 100 bytes, sends 20, hangs up
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "100")
            h.end_headers()
            h.wfile.write(b'{"a": [1, 2, 3, 4, 5')
            h.wfile.flush()
            h.close_connection = True
            return None
        if kind == "big":
            return self.send_big(h)
        if kind == "down":  # a sick provider: every answer a 503, after a moment
            self.stop.wait(DOWN_S)
            return self.send(h, 503, {"error": "service unavailable"})
        if kind == "drip":
            return self.send_drip(h)
        if kind in ENCODED:
            return self.send_raw(h, 200, ENCODED[kind], headers={"Content-Encoding": ENCODING_OF[kind]})
        return self.send(h, 200, {"hit": hit})

    def send_drip(self, h: BaseHTTPRequestHandler) -> None:
        """A valid JSON answer, one byte every DRIP_S: never idle long enough for a read timeout."""
        body = json.dumps({"padding": "x" * (DRIP_BYTES - 16)}).encode()
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for i in range(len(body)):
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
                self.dripped += 1
                if self.stop.wait(DRIP_S):
                    return
        except OSError:  # the client hung up: the deadline worked
            h.close_connection = True

    def send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None):
        self.send_raw(h, status, json.dumps(body).encode(), headers=headers)

    def send_raw(
        self, h: BaseHTTPRequestHandler, status: int, raw: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(raw)
        except OSError:  # the client gave up (timeout): nothing to do
            h.close_connection = True

    def send_big(self, h: BaseHTTPRequestHandler) -> None:
        """A chunked body (no Content-Length) far beyond any cap; counts what got out."""
        chunk = b"[" + b"1," * 8191 + b"1]"
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while self.big_sent < BIG_TOTAL and not self.stop.is_set():
                h.wfile.write(framed)
                self.big_sent += len(chunk)
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            h.close_connection = True
        finally:
            self.big_done.set()

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as s:
        yield s


def live_settings(server: FakeServer, **overrides: Any):
    return make_settings(**{"base_url": server.base_url, "read_timeout_s": 1.0, **overrides})


def request_for(domain: str):
    return FakeProvider().requests_for(domain)[0]


async def test_read_timeout_over_real_socket_is_retried_then_error(server: FakeServer) -> None:
    settings = live_settings(server, read_timeout_s=0.1, max_attempts=2)
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("slow.example"))
    # Cut off by the read timeout (the detail says so), not waiting for the slow answer.
    assert result.status == "error"
    assert result.http_status is None
    assert result.detail == "timeout (ReadTimeout) after 2 attempt(s)"
    assert result.attempts == 2
    assert server.hits["slow.example"] == 2
    assert c.stats.errors["timeout"] == 1


async def test_read_timeout_then_answer(server: FakeServer) -> None:
    settings = live_settings(server, read_timeout_s=0.1, max_attempts=3)
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("slowonce.example"))
    assert result.status == "ok"
    assert result.payload == {"hit": 2}
    assert result.attempts == 2


async def test_5xx_then_200_over_real_socket(server: FakeServer) -> None:
    async with ProviderClient(FakeProvider(), live_settings(server, max_attempts=4)) as c:
        result = await c.fetch(request_for("flaky.example"))
    assert result.status == "ok"
    assert result.http_status == 200
    assert result.payload == {"hit": 3}
    assert result.attempts == 3
    assert server.hits["flaky.example"] == 3
    assert c.stats.retries == 2
    assert all(s["query"] == {"domain": "flaky.example", "key": SENTINEL} for s in server.seen)


async def test_many_concurrent_calls_over_real_sockets(server: FakeServer) -> None:
    async with ProviderClient(FakeProvider(), live_settings(server, concurrency=8)) as c:
        results = await asyncio.gather(*(c.fetch(request_for(f"d{i}.example")) for i in range(40)))
    assert [r.status for r in results] == ["ok"] * 40
    assert sum(server.hits.values()) == 40


async def test_truncated_json_with_correct_framing_is_parse_error(server: FakeServer) -> None:
    async with ProviderClient(FakeProvider(), live_settings(server)) as c:
        result = await c.fetch(request_for("trunc.example"))
    assert result.status == "parse_error"
    assert "malformed JSON" in (result.detail or "")
    assert server.hits["trunc.example"] == 1


async def test_body_cut_short_by_the_server_is_retried_as_connection_error(server: FakeServer) -> None:
    async with ProviderClient(FakeProvider(), live_settings(server, max_attempts=2)) as c:
        result = await c.fetch(request_for("short.example"))
    assert result.status == "error"
    assert result.detail == "connection error (RemoteProtocolError) after 2 attempt(s)"
    assert server.hits["short.example"] == 2


async def test_oversized_chunked_body_is_abandoned_early(server: FakeServer) -> None:
    settings = live_settings(server, max_response_bytes=64 * 1024)
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("big.example"))
    assert result.status == "parse_error"
    assert "exceeds the 65536-byte cap" in (result.detail or "")
    assert server.big_done.wait(5)
    assert server.big_sent < BIG_TOTAL // 4  # the client hung up; the server did not get to send it all
    assert server.hits["big.example"] == 1


async def test_connection_refused_is_retried_then_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(base_url=f"http://127.0.0.1:{port}", max_attempts=2, connect_timeout_s=0.5)
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("a.example"))
    assert result.status == "error"
    assert result.detail == "connection error (ConnectError) after 2 attempt(s)"
    assert result.attempts == 2


@pytest.mark.parametrize("key_in", ["query", "header"])
async def test_key_stays_out_of_logs_and_results_over_real_sockets(
    server: FakeServer, key_in: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = FakeProvider(key_in=key_in)  # type: ignore[arg-type]
    async with ProviderClient(provider, live_settings(server, max_attempts=2)) as c:
        for name in ("httpx", "httpcore"):
            caplog.set_level(logging.DEBUG, logger=name)  # as if someone turned HTTP debugging on
        echoed = await c.fetch(request_for("echo.example"))
        failed = await c.fetch(request_for("err.example"))
    assert echoed.status == "ok"
    assert failed.status == "error"
    assert any(
        s["query"].get("key") == SENTINEL or s["headers"].get("X-Api-Key") == SENTINEL for s in server.seen
    )
    assert MASK in json.dumps(echoed.payload)
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # the debug logs did run
    for text in (json.dumps(echoed.payload), repr(echoed), repr(failed), caplog.text):
        assert SENTINEL not in text
    assert all(SENTINEL not in r.getMessage() for r in caplog.records)


# --- a sick provider: the breaker counts attempts and stops retries in flight ---------------------------


async def test_breaker_bounds_the_calls_a_dead_provider_receives(server: FakeServer) -> None:
    """38 domains at 5 requests/s, 16 in flight, every answer a 503: at most the threshold plus the
    requests in flight when the breaker opened reach the server (80 did when only whole calls counted
    and retries in flight went on)."""
    defaults = ProviderSettings(name="fake", base_url=server.base_url)
    settings = live_settings(server, rps=5.0, concurrency=16, breaker_failures=defaults.breaker_failures,
                             max_attempts=defaults.max_attempts, backoff_base_s=defaults.backoff_base_s,
                             backoff_max_s=defaults.backoff_max_s)  # fmt: skip
    domains = [f"down{i}.example" for i in range(38)]
    rows: list = []
    report = await fetch_domains(
        [(FakeProvider(), settings)], FetchPlan(domains=domains), write=rows.extend, mode="live"
    )
    reached = sum(server.hits.values())
    assert settings.breaker_failures <= reached <= settings.breaker_failures + settings.concurrency
    assert reached <= settings.breaker_failures + server.max_in_flight
    stats = report.stats["fake"]
    assert stats.calls == reached  # accounting counts what was sent, nothing else
    assert stats.retries == sum(n - 1 for n in server.hits.values())
    assert sorted(r.domain for r in rows) == sorted(domains)
    assert {r.status for r in rows} <= {"error", "provider_unavailable"}
    assert sum(r.attempts for r in rows) == reached
    assert Counter(r.status for r in rows)["provider_unavailable"] >= 38 - settings.breaker_failures


async def test_breaker_stops_a_retry_sleeping_in_its_backoff(server: FakeServer) -> None:
    """A call that failed once and waits to retry gives up when other calls open the breaker."""
    settings = live_settings(server, breaker_failures=3, max_attempts=4, backoff_base_s=30.0,
                             backoff_max_s=30.0)  # fmt: skip
    async with ProviderClient(FakeProvider(), settings) as c:
        first = asyncio.create_task(c.fetch(request_for("down0.example")))
        while c._breaker._failures < 1:  # its first attempt failed; it now sleeps before a retry
            await asyncio.sleep(0.01)
        others = await asyncio.gather(*(c.fetch(request_for(f"down{i}.example")) for i in (1, 2)))
        result = await asyncio.wait_for(first, 10)  # far less than the 30-s backoff it was sleeping
    assert server.hits["down0.example"] == 1  # its retry never went out
    assert result.status == "provider_unavailable"
    assert result.attempts == 1
    assert "circuit" in (result.detail or "")
    assert {r.status for r in others} <= {"error", "provider_unavailable"}
    assert sum(server.hits.values()) == 3
    assert c.stats.calls == 3
    assert c.stats.retries == 0


# --- one deadline per attempt ---------------------------------------------------------------------------


async def test_a_dripping_server_is_cut_off_by_the_attempt_deadline(server: FakeServer) -> None:
    """One byte every 50 ms never trips the 1-s read timeout; the 0.3-s attempt deadline ends it."""
    settings = live_settings(server, read_timeout_s=1.0, attempt_deadline_s=0.3, max_attempts=2)
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("drip.example"))
    assert result.status == "error"
    assert result.detail == "no complete answer within the 0.3-s attempt deadline after 2 attempt(s)"
    assert result.attempts == 2
    assert server.hits["drip.example"] == 2  # a timeout is retried like any other
    assert server.dripped < DRIP_BYTES // 4  # each attempt hung up long before the body was out
    assert c.stats.errors["timeout"] == 1


async def test_the_deadline_does_not_cut_a_normal_answer(server: FakeServer) -> None:
    settings = live_settings(server, attempt_deadline_s=5.0)
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("plain.example"))
    assert (result.status, result.payload) == ("ok", {"hit": 1})


# --- the connection pool's wait ---------------------------------------------------------------------------


async def test_waiting_for_a_pooled_connection_has_a_timeout(server: FakeServer) -> None:
    """One connection, held by a slow call: the next call gives up waiting for it, unsent and uncounted."""
    settings = live_settings(server, concurrency=1, pool_timeout_s=0.1, max_attempts=1, read_timeout_s=5.0)
    async with ProviderClient(FakeProvider(), settings) as c:
        await c.fetch(request_for("warm.example"))  # the run's first call goes alone; get it over with
        assert len(c._clients) == 1
        slow = asyncio.create_task(c.fetch(request_for("slow.example")))
        while server.hits["slow.example"] == 0:
            await asyncio.sleep(0.005)
        waiting = await c.fetch(request_for("queued.example"))
        held = await slow
    assert held.status == "ok"
    assert waiting.status == "error"
    assert waiting.detail == "no free connection within 0.1 s (pool timeout) after 0 attempt(s)"
    assert waiting.attempts == 0
    assert waiting.cost == 0
    assert server.hits["queued.example"] == 0  # never sent
    assert c.stats.calls == 2  # warm and slow; the one that never left is not a call
    assert c.stats.retries == 0


# --- the size cap applies to the decompressed body -----------------------------------------------------


async def test_a_gzip_bomb_is_abandoned_at_the_cap_without_being_inflated(server: FakeServer) -> None:
    """64 KB of gzip that inflates to 64 MB, against a 1-MB cap: stopped at the cap, memory stays small."""
    assert len(ENCODED["bomb"]) < 128 * 1024
    cap = 1_000_000
    settings = live_settings(server, max_response_bytes=cap)
    async with ProviderClient(FakeProvider(), settings) as c:
        tracemalloc.start()
        try:
            result = await c.fetch(request_for("bomb.example"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.status == "parse_error"
    assert result.detail == f"response exceeds the {cap}-byte cap (decompressed)"
    assert server.hits["bomb.example"] == 1  # an answer, not retried
    assert peak < 8 * cap  # inflating it whole took 64 MB and more


@pytest.mark.parametrize("kind", ["gzip", "deflate", "rawdeflate"])
async def test_compressed_answers_within_the_cap_are_decoded(server: FakeServer, kind: str) -> None:
    async with ProviderClient(FakeProvider(), live_settings(server, max_response_bytes=100_000)) as c:
        result = await c.fetch(request_for(f"{kind}.example"))
    assert result.status == "ok"
    assert result.payload == json.loads(GOOD_BODY)
    assert server.seen[-1]["headers"]["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("kind", "detail"),
    [("brotli", "unsupported Content-Encoding 'br'"), ("badgzip", "undecodable body (bad Content-Encoding)")],
)
async def test_undecodable_encodings_are_parse_errors(server: FakeServer, kind: str, detail: str) -> None:
    async with ProviderClient(FakeProvider(), live_settings(server)) as c:
        result = await c.fetch(request_for(f"{kind}.example"))
    assert (result.status, result.detail) == ("parse_error", detail)
    assert server.hits[f"{kind}.example"] == 1


async def test_calls_waiting_for_a_rate_slot_give_up_when_the_breaker_opens(server: FakeServer) -> None:
    """One request every 2 s: the queued calls are refused when the breaker opens, not at their slot."""
    settings = live_settings(server, rps=0.5, breaker_failures=1, max_attempts=1)
    async with ProviderClient(FakeProvider(), settings) as c:
        results = await asyncio.wait_for(
            asyncio.gather(*(c.fetch(request_for(f"down{i}.example")) for i in range(6))),
            timeout=6,  # their slots would stretch over 10 s
        )
    assert sum(server.hits.values()) == 1
    assert sorted(r.status for r in results) == ["error"] + ["provider_unavailable"] * 5
    assert c.stats.calls == 1
