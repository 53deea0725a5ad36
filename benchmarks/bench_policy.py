"""What the HTTP policy and the durable writes protect against, measured on local servers.

    .venv/bin/python benchmarks/bench_policy.py [breaker] [drip] [bomb] [kill]

- breaker: a server answering 503 to everything; 38 domains at 5 requests/s with 16
  in flight through `fetch_domains` and the default retry and breaker settings.
  Prints how many requests reached the server.
- drip: a server that sends a valid answer one byte every 0.5 s; read timeout 1 s,
  attempt deadline 2 s, one attempt. Prints how long the call was held.
- bomb: a 65 KB gzip body that inflates to 67 MB, 5 MB cap. Prints the peak Python
  memory (tracemalloc) while the call ran.
- kill: `enrichment-pipeline enrich` in live mode (BuiltWith + SimilarWeb, 40
  domains) against `provider_server.py`, kill -9 once half the calls are answered,
  then the same command again. Prints the calls the re-run bought again.

All servers listen on 127.0.0.1 only. Figures are in the README (HTTP policy, crash safety).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from provider_server import RecordingServer, ServerThread

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.settings import ProviderSettings

ROOT = Path(__file__).resolve().parents[1]
BOMB = gzip.compress(b"[" + b" " * 67_000_000 + b"]", 9)
DRIP_BODY = b'{"Results": [], "padding": "' + b"x" * 30 + b'"}'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


@contextmanager
def local_server(mode: str) -> Iterator[tuple[str, dict[str, int]]]:
    hits = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                hits["n"] += 1
            try:
                if mode == "503":
                    self._head(503, {"Content-Length": "16"})
                    self.wfile.write(b'{"error":"down"}')
                elif mode == "drip":
                    self._head(200, {"Content-Length": str(len(DRIP_BODY))})
                    for i in range(len(DRIP_BODY)):
                        self.wfile.write(DRIP_BODY[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.5)
                else:
                    self._head(200, {"Content-Encoding": "gzip", "Content-Length": str(len(BOMB))})
                    self.wfile.write(BOMB)
            except OSError:  # the client hung up
                self.close_connection = True

        def _head(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


async def breaker() -> None:
    with local_server("503") as (url, hits):
        settings = ProviderSettings(name="builtwith", base_url=url, api_key="k", rps=5, concurrency=16)
        domains = [f"d{i}.example" for i in range(38)]
        started = time.monotonic()
        report = await fetch_domains(
            [(BuiltWith(), settings)], FetchPlan(domains=domains), write=lambda rows: None, mode="live"
        )
        stats = report.stats["builtwith"]
        print(
            f"breaker: {hits['n']} requests reached the 503 server (bound: {settings.breaker_failures} + "
            f"in flight); calls {stats.calls}, retries {stats.retries}, statuses {dict(stats.statuses)}, "
            f"{time.monotonic() - started:.1f} s"
        )


async def drip() -> None:
    with local_server("drip") as (url, _):
        settings = ProviderSettings(
            name="builtwith",
            base_url=url,
            api_key="k",
            read_timeout_s=1.0,
            attempt_deadline_s=2.0,
            max_attempts=1,
        )
        provider = BuiltWith()
        started = time.monotonic()
        async with ProviderClient(provider, settings) as client:
            result = await client.fetch(provider.requests_for("a.example")[0])
        print(f"drip: call held {time.monotonic() - started:.1f} s ({result.status}: {result.detail})")


async def bomb() -> None:
    with local_server("bomb") as (url, _):
        settings = ProviderSettings(name="builtwith", base_url=url, api_key="k", max_attempts=1)
        provider = BuiltWith()
        tracemalloc.start()
        async with ProviderClient(provider, settings) as client:
            result = await client.fetch(provider.requests_for("a.example")[0])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"bomb: {len(BOMB) / 1000:.0f} KB gzip -> 67 MB; peak traced memory {peak / 1e6:.1f} MB "
            f"({result.status}: {result.detail})"
        )


def kill(n_domains: int = 40) -> None:
    sys.path.insert(0, str(ROOT))
    from enrichment_pipeline_tests.defs.helpers import sandbox_domains

    tmp = Path(tempfile.mkdtemp(prefix="bench_policy_"))
    thread = ServerThread(latency_ms=20, max_seconds=900)
    thread.server = RecordingServer(latency_ms=20, max_seconds=900)
    with thread:
        server: RecordingServer = thread.server  # type: ignore[assignment]
        domain_file = tmp / "domains.txt"
        domain_file.write_text("\n".join(sandbox_domains(n_domains)) + "\n")
        home = tmp / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = dict(
            os.environ,
            DAGSTER_HOME=str(home),
            WAREHOUSE_URL=f"duckdb:///{tmp / 'warehouse.duckdb'}",
            ENRICHMENT_MODE="live",
            ENRICHMENT_PROVIDERS="builtwith,similarweb",
            BUILTWITH_API_KEY="bench-key",
            SIMILARWEB_API_KEY="bench-key",
            BUILTWITH_BASE_URL=thread.url,
            SIMILARWEB_BASE_URL=thread.url,
            BUILTWITH_RPS="10",
            SIMILARWEB_RPS="30",
        )
        command = [
            str(Path(sys.executable).with_name("enrichment-pipeline")),
            "enrich",
            "--file",
            str(domain_file),
        ]
        command.append("--no-marts")
        total = n_domains * 7
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(server.answered) < total // 2:
            if proc.poll() is not None:
                raise SystemExit("the run ended before the kill")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
        time.sleep(0.3)
        with server.guard:
            before, answered = list(server.requested), list(server.answered)
        paid = {key for key, at in answered if at <= killed_at - 1.0}
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)
        again = server.requested[len(before) :]
        print(
            f"kill: {len(answered)} of {total} calls answered before kill -9 ({len(paid)} >= 1 s before); "
            f"re-run (exit {rerun.returncode}) made {len(again)} calls, "
            f"{sum(k in paid for k in again)} of them for answers received >= 1 s before the kill, "
            f"{sum(k in {a for a, _ in answered} for k in again)} for any answer the killed run received"
        )


def main(argv: list[str]) -> None:
    wanted = argv or ["breaker", "drip", "bomb", "kill"]
    for name in wanted:
        if name == "kill":
            kill()
        else:
            asyncio.run({"breaker": breaker, "drip": drip, "bomb": bomb}[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
