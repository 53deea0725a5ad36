"""The shared HTTP policy over real sockets, against a small scripted server on 127.0.0.1.

The server picks its behaviour from the `domain` query parameter's first label
(`slow`, `flaky`, `echo`, ...), counts hits per domain and records what it saw,
so each test reads like a scenario: "this domain times out twice", "this one
answers 503 twice then 200".
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.redaction import MASK
from enrichment_pipeline_tests.conftest import SENTINEL, FakeProvider, make_settings

BIG_TOTAL = 64 * 1024 * 1024
SLOW_S = 0.5


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
                server.answer(self, domain.split(".")[0], hit)

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
        return self.send(h, 200, {"hit": hit})

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
    started = time.monotonic()
    async with ProviderClient(FakeProvider(), settings) as c:
        result = await c.fetch(request_for("slow.example"))
    elapsed = time.monotonic() - started
    assert result.status == "error"
    assert result.http_status is None
    assert result.detail == "timeout (ReadTimeout) after 2 attempt(s)"
    assert result.attempts == 2
    assert server.hits["slow.example"] == 2
    assert elapsed < SLOW_S  # cut off by the read timeout, not waiting for the slow answer
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
