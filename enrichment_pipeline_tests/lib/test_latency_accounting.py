"""Latency is the provider's HTTP round trip; the wait for a rate-limit slot is recorded apart.

A server on 127.0.0.1 answers every request after a fixed delay, and the client
may send 5 requests per second. Ten domains then take ~0.2 s each on the wire
while most of them wait far longer for their slot: the recorded latency must
match the server's delay (within 20 %), and the wait must show the limit.
Every bound comes from the server's delay and the configured rate, never from
timing the test itself.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.http_policy import ProviderStats
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.conftest import FakeProvider, make_settings

DELAY_S = 0.2  # the server's latency
RPS = 5.0  # the client's rate limit
DOMAINS = [f"d{i}.example" for i in range(10)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def slow_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(DELAY_S)
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_latency_is_the_round_trip_and_the_rate_limit_wait_is_apart(
    slow_server: str, warehouse: Warehouse
) -> None:
    settings = make_settings(base_url=slow_server, rps=RPS, read_timeout_s=5.0, connect_timeout_s=5.0)
    stats: dict[str, ProviderStats] = {}
    report = await fetch_domains(
        [(FakeProvider(), settings)],
        FetchPlan(domains=list(DOMAINS)),
        write=warehouse.write_responses,
        mode="sandbox",
        stats=stats,
    )
    assert report.stats["fake"] is stats["fake"]  # the live figures a progress display reads
    rows = warehouse.query(
        "SELECT domain, status, attempts, latency_ms, wait_ms FROM raw.provider_responses ORDER BY wait_ms"
    )
    assert rows["status"].to_list() == ["ok"] * len(DOMAINS)
    assert rows["attempts"].to_list() == [1] * len(DOMAINS)

    delay_ms = DELAY_S * 1000
    latencies = rows["latency_ms"].to_list()
    # Never less than the server's delay; the typical call within 20 % of it.
    assert min(latencies) >= delay_ms
    assert statistics.median(latencies) <= 1.2 * delay_ms
    summary = stats["fake"].summary()
    assert delay_ms <= summary["latency_p50_ms"] <= 1.2 * delay_ms
    assert summary["latency_p95_ms"] <= 1.5 * delay_ms

    # The k-th call to start cannot start before k slots of 1/RPS have passed: that time is wait.
    waits = rows["wait_ms"].to_list()
    for k, wait in enumerate(waits):
        assert wait >= 0.8 * k * 1000 / RPS, (k, waits)
    assert statistics.median(waits) > 3 * delay_ms  # the limit dominates, and is not latency
    assert summary["wait_p95_ms"] >= 0.8 * (len(DOMAINS) - 2) * 1000 / RPS
    assert summary["wait_p50_ms"] > summary["latency_p50_ms"]
