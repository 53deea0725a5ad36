"""A local provider simulator for benchmarks: real HTTP on 127.0.0.1, fixed latency.

Every provider path (BuiltWith `/v22/api.json`, `/free1/api.json`, SimilarWeb
`/v1/website/...`) is answered by the pipeline's own sandbox
(`enrichment_pipeline.lib.sandbox.transport.sandbox_handler`), so bodies,
status codes and key checks are the realistic ones; each answer is held back
until `latency_ms` after the request arrived. The server is a small asyncio
HTTP/1.1 server with keep-alive, so it serves as many concurrent requests as
there are open connections.

It records the arrival time (monotonic clock) of every provider request, so a
benchmark can check that no 1-second window ever saw more requests than the
rate limit allows. Control endpoints (never counted, never delayed):

    GET  /__bench/stats     JSON: requests, per-provider counts, timestamps, max in-flight
    POST /__bench/reset     forget everything recorded so far
    POST /__bench/shutdown  stop the server

Standalone:

    .venv/bin/python benchmarks/provider_server.py --port 8765 --latency-ms 100

From code: `ServerThread` (same process, own event loop in a thread) or
`ServerProcess` (a child process; what `bench_enrich.py` uses so the server's
CPU is not charged to the pipeline). Both stop on `stop()`/context exit and
on their own after `max_seconds`; a `ServerProcess` child also exits when its
parent goes away (its stdin closes).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import http
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from enrichment_pipeline.lib.sandbox import builtwith, similarweb
from enrichment_pipeline.lib.sandbox.transport import sandbox_handler

CONTROL_PREFIX = "/__bench/"
DEFAULT_LATENCY_MS = 100.0
DEFAULT_MAX_SECONDS = 900.0
_MAX_HEAD = 64 * 1024


def provider_of(path: str) -> str:
    if path in (builtwith.DOMAIN_PATH, builtwith.FREE_PATH):
        return "builtwith"
    if path.startswith(similarweb.PATH_PREFIX):
        return "similarweb"
    return "other"


def max_in_window(timestamps: Sequence[float], window_s: float = 1.0) -> tuple[int, float | None]:
    """Most requests in any half-open window [t, t + window_s), and where it starts.

    The maximum over all windows is reached by a window that starts at a request,
    so one pass over the sorted times is exact.
    """
    ordered = sorted(timestamps)
    best, at = 0, None
    for i, start in enumerate(ordered):
        count = bisect.bisect_left(ordered, start + window_s, lo=i) - i
        if count > best:
            best, at = count, start
    return best, at


def per_second(timestamps: Sequence[float]) -> list[int]:
    """Requests in each whole second since the first request (fixed, not sliding, windows)."""
    if not timestamps:
        return []
    first = min(timestamps)
    counts = Counter(int(t - first) for t in timestamps)
    return [counts.get(s, 0) for s in range(max(counts) + 1)]


class ProviderServer:
    """The asyncio server; run it with `await server.serve()` inside an event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = DEFAULT_LATENCY_MS,
        epoch: int = 1,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        log_rate: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_s = latency_ms / 1000
        self.epoch = epoch
        self.max_seconds = max_seconds
        self.log_rate = log_rate
        self.timestamps: list[float] = []
        self.by_provider: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections_opened = 0
        self._cpu_at_reset = time.process_time()
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle ------------------------------------------------------------

    async def serve(self, ready: threading.Event | None = None) -> None:
        """Listen until `stop()`, a shutdown request or `max_seconds`, then close every connection."""
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, self.host, self.port, backlog=2048)
        self.port = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready.set()
        reporter = asyncio.create_task(self._report_rate()) if self.log_rate else None
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=self.max_seconds)
        except TimeoutError:
            print(f"provider_server: lifetime of {self.max_seconds:.0f} s is over, stopping", file=sys.stderr)
        finally:
            if reporter is not None:
                reporter.cancel()
            server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=2)

    def stop(self) -> None:
        """Ask the server to stop (call from the server's own loop)."""
        if self._stop is not None:
            self._stop.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        self.timestamps.clear()
        self.by_provider.clear()
        self.by_status.clear()
        self.max_in_flight = self.in_flight
        self.connections_opened = 0
        self._cpu_at_reset = time.process_time()

    def stats(self, with_timestamps: bool = True) -> dict[str, Any]:
        window, _ = max_in_window(self.timestamps)
        out: dict[str, Any] = {
            "requests": len(self.timestamps),
            "by_provider": dict(self.by_provider),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "max_in_flight": self.max_in_flight,
            "connections_opened": self.connections_opened,
            "max_in_1s_window": window,
            "latency_ms": self.latency_s * 1000,
            "cpu_s": round(time.process_time() - self._cpu_at_reset, 3),  # server CPU since reset
        }
        if with_timestamps:
            out["timestamps"] = list(self.timestamps)
        return out

    async def _report_rate(self) -> None:
        seen = 0
        while True:
            await asyncio.sleep(1)
            now = len(self.timestamps)
            if now != seen:
                print(f"provider_server: {now - seen} req/s (total {now})", file=sys.stderr, flush=True)
            seen = now

    # -- HTTP -----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections_opened += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                received = time.monotonic()
                try:
                    method, target, version, headers = _parse_head(head)
                except ValueError:
                    await _send(writer, 400, b'{"error":"bad request"}', "application/json", keep_alive=False)
                    return
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    body = b'{"error":"chunked bodies are not supported"}'
                    await _send(writer, 411, body, "application/json", keep_alive=False)
                    return
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"

                if target.startswith(CONTROL_PREFIX):
                    status, payload = self._control(method, target)
                    await _send(writer, status, payload, "application/json", keep_alive=keep_alive)
                else:
                    status, payload, content_type = await self._provider(
                        method, target, headers, body, received
                    )
                    await _send(writer, status, payload, content_type, keep_alive=keep_alive)
                if not keep_alive:
                    return
        except ConnectionError:
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _provider(
        self, method: str, target: str, headers: dict[str, str], body: bytes, received: float
    ) -> tuple[int, bytes, str]:
        self.timestamps.append(received)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            request = httpx.Request(
                method, f"http://{headers.get('host', self.host)}{target}", headers=headers, content=body
            )
            self.by_provider[provider_of(request.url.path)] += 1
            try:
                response = sandbox_handler(request, epoch=self.epoch)
                status, payload = response.status_code, response.content
                content_type = response.headers.get("content-type", "application/json")
            except Exception as exc:  # a simulator bug must show up as a 500, not a dead connection
                status, content_type = 500, "application/json"
                payload = json.dumps({"error": f"simulator: {type(exc).__name__}: {exc}"}).encode()
            self.by_status[status] += 1
            wait = self.latency_s - (time.monotonic() - received)
            if wait > 0:
                await asyncio.sleep(wait)
            return status, payload, content_type
        finally:
            self.in_flight -= 1

    def _control(self, method: str, target: str) -> tuple[int, bytes]:
        action = target[len(CONTROL_PREFIX) :].split("?", 1)[0]
        if action == "stats":
            return 200, json.dumps(self.stats("timestamps=0" not in target)).encode()
        if action == "reset" and method == "POST":
            self.reset()
            return 200, b'{"reset":true}'
        if action == "shutdown" and method == "POST":
            asyncio.get_running_loop().call_soon(self.stop)
            return 200, b'{"stopping":true}'
        return 404, b'{"error":"unknown control endpoint"}'


# Query parameters that carry a key: never part of what a request stands for.
KEY_PARAMS = frozenset({"KEY", "api_key"})


def request_key(target: str) -> tuple[str, ...]:
    """The paid call a request stands for: path and query, without the key."""
    parts = urlsplit(target)
    query = sorted((k, v) for k, v in parse_qsl(parts.query) if k not in KEY_PARAMS)
    return (parts.path, *(f"{k}={v}" for k, v in query))


class RecordingServer(ProviderServer):
    """The provider server, also noting each request's call and when its answer was complete
    (for the kill -9 test and benchmark: what was paid for before the kill)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requested: list[tuple[str, ...]] = []
        self.answered: list[tuple[tuple[str, ...], float]] = []
        self.guard = threading.Lock()

    async def _provider(
        self, method: str, target: str, headers: dict[str, str], body: bytes, received: float
    ) -> tuple[int, bytes, str]:
        key = request_key(target)
        with self.guard:
            self.requested.append(key)
        answer = await super()._provider(method, target, headers, body, received)
        with self.guard:
            self.answered.append((key, time.monotonic()))
        return answer

    def snapshot(self) -> tuple[list[tuple[str, ...]], list[tuple[tuple[str, ...], float]]]:
        with self.guard:
            return list(self.requested), list(self.answered)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    if not target.startswith("/") or not version.startswith("HTTP/1."):
        raise ValueError(lines[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(line)
            headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


async def _send(
    writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str, *, keep_alive: bool
) -> None:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        f"content-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()


# -- running it from other code ----------------------------------------------------


class _Client:
    """Control calls shared by `ServerThread` and `ServerProcess`."""

    url: str

    def stats(self, with_timestamps: bool = True) -> dict[str, Any]:
        suffix = "" if with_timestamps else "?timestamps=0"
        return httpx.get(f"{self.url}{CONTROL_PREFIX}stats{suffix}", timeout=30).json()

    def reset(self) -> None:
        httpx.post(f"{self.url}{CONTROL_PREFIX}reset", timeout=10).raise_for_status()


class ServerThread(_Client):
    """The server on its own event loop in a daemon thread of this process."""

    def __init__(self, **kwargs: Any) -> None:
        self.server = ProviderServer(**kwargs)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> ServerThread:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.server.serve(ready))
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="provider-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("provider server did not start within 10 s")
        self.url = self.server.url
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self.server.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess(_Client):
    """The server in a child Python process; it exits when its stdin closes (parent gone)."""

    def __init__(
        self,
        *,
        latency_ms: float = DEFAULT_LATENCY_MS,
        port: int = 0,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        self.args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--max-seconds",
            str(max_seconds),
            "--exit-on-stdin-eof",
        ]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"provider server failed to start: {line!r}")
        self.url = line.split()[1]
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()  # the child's cue to shut down
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # only ever this child, by its handle
            self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: let the OS choose (default)")
    parser.add_argument("--latency-ms", type=float, default=DEFAULT_LATENCY_MS)
    parser.add_argument("--epoch", type=int, default=1, help="the sandbox's clock (changes some stacks)")
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop on its own after this long"
    )
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes")
    parser.add_argument("--log-rate", action="store_true", help="print requests/second to stderr")
    args = parser.parse_args(argv)

    server = ProviderServer(
        args.host,
        args.port,
        latency_ms=args.latency_ms,
        epoch=args.epoch,
        max_seconds=args.max_seconds,
        log_rate=args.log_rate,
    )

    async def run() -> None:
        ready = threading.Event()
        task = asyncio.create_task(server.serve(ready))
        while not ready.is_set() and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            await task
            return
        print(f"listening {server.url}", flush=True)
        if args.exit_on_stdin_eof:
            loop = asyncio.get_running_loop()

            def watch_stdin() -> None:
                sys.stdin.read()
                loop.call_soon_threadsafe(server.stop)

            threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
        await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
