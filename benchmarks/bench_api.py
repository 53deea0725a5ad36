"""Read API benchmark: 100,000 companies, lookups and filtered pages at 32 concurrent connections.

For each source (the DuckDB serving snapshot; PostgreSQL when --database-url or
TEST_DATABASE_URL is set) it starts the API as its own process (`python -m
enrichment_pipeline.api`, `--workers` uvicorn workers (default 1), admin key so no rate
limit applies)
on 127.0.0.1, then drives it with 32 keep-alive HTTP/1.1 connections:

- lookup: `GET /v1/companies/{domain}` of random known domains (of 100,000: nearly
  every request is the first for its domain, so it reads the warehouse);
- lookup, 1,000 popular domains: the same among the first 1,000 companies (most
  answers come from the API's cache of this data version);
- page: `GET /v1/companies?limit=100&...` with a random filter combination
  (tier, score range, country, technology present/absent, status) and sort: about
  140 distinct questions, so after the warm-up most come from the cache;
- page, every query distinct: the same with a random `min_score` below 25 added
  (no two alike, so every one is computed).

The client is raw asyncio streams (request bytes prepared in advance, responses
read by Content-Length) so it leaves the shared CPUs to the server; `--client
httpx` uses the former httpx client. It prints p50/p95/p99 latency, requests/s
and the API process's peak RSS as Markdown. Usage:

    .venv/bin/python benchmarks/bench_api.py [-n 100000] [--requests 4000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enrichment_pipeline.lib.api_keys import KeyStore
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline_tests.api import marts_data

CONCURRENCY = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of `pid` and its children (the worker processes when API_WORKERS > 1)."""
    total = rss_kib(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                total += rss_kib(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


class Api:
    def __init__(self, env: dict[str, str], work: Path, workers: int = 1) -> None:
        self.workers = workers
        self.port = free_port()
        self.state = work / f"state-{self.port}.sqlite3"
        self.key = KeyStore(StateStore(self.state)).create("bench", ("read",), "admin")[1]
        full_env = {
            **os.environ,
            **env,
            "API_PORT": str(self.port),
            "API_HOST": "127.0.0.1",
            "API_STATE_DB": str(self.state),
            "API_START_DAEMON": "0",
            "API_WORKERS": str(workers),
        }
        self.log = work / f"api-{self.port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "enrichment_pipeline.api"], env=full_env, stdout=log, stderr=log
            )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the API did not become ready")
            time.sleep(0.2)
        self.peak_rss = tree_rss_kib(self.proc.pid)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def wait_for_copies(self) -> None:
        """Until every worker has built its row index and listing of the data, ranked the listing
        and rendered its lookup bodies: measuring while one is still being built measures the
        build."""
        rnd = random.Random(0)
        deadline = time.monotonic() + 300

        def ready(text: str) -> bool:
            # Each worker logs its row index (and listing) built, its listing ranked in memory
            # and its lookup bodies rendered.
            return all(
                text.count(line) >= self.workers
                for line in (" built: ", "listing ranked in memory", "lookup bodies and list items of ")
            )

        while not ready(self.log.read_text(errors="replace")):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the API did not build its copies: {self.log.read_text()[-2000:]}")
            # Requests on new connections reach every worker, and each starts its builds.
            for path in paths("lookup", 2, 1000, rnd) + paths("page", 2, 1000, rnd):
                httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
            time.sleep(0.5)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, tree_rss_kib(self.proc.pid))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=20)


def page_params(rnd: random.Random) -> dict:
    params: dict = {
        "limit": 100,
        "sort": rnd.choice(["-icp_score", "-monthly_visits", "domain", "-enriched_at"]),
    }
    choice = rnd.randrange(5)
    if choice == 0:
        params["tier"] = rnd.choice(["hot", "warm"])
    elif choice == 1:
        params |= {"min_score": 40, "max_score": 80, "country": rnd.choice(marts_data.COUNTRIES)}
    elif choice == 2:
        params["technology"] = rnd.choice(marts_data.TECHS)
    elif choice == 3:
        params |= {"without_technology": rnd.choice(marts_data.TECHS), "status": "enriched"}
    else:
        params |= {"industry": rnd.choice(marts_data.SECTORS)[0], "tier": "cool"}
    return params


KINDS = {
    "lookup": "lookup by domain",
    "lookup-hot": "lookup, 1,000 popular domains",
    "page": "filtered page of 100",
    "page-distinct": "filtered page of 100, every query distinct",
}


def paths(kind: str, n: int, companies: int, rnd: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        if kind == "lookup":
            out.append(f"/v1/companies/{marts_data.company_domain(rnd.randrange(companies))}")
        elif kind == "lookup-hot":
            out.append(f"/v1/companies/{marts_data.company_domain(rnd.randrange(min(1000, companies)))}")
        else:
            params = page_params(rnd)
            if kind == "page-distinct":
                params["min_score"] = round(rnd.uniform(0, 25), 6)
            out.append(f"/v1/companies?{urlencode(params, doseq=True)}")
    return out


async def drive_raw(url: str, key: str, targets: list[str]) -> tuple[list[float], int, float]:
    host, port = url.removeprefix("http://").split(":")
    head = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n"
    prepared = [f"GET {t} HTTP/1.1\r\n{head}".encode() for t in targets]
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors, next_index
        try:
            while next_index < len(prepared):
                request = prepared[next_index]
                next_index += 1
                started = time.perf_counter()
                writer.write(request)
                header = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - started) * 1000)
                if header[9:12] != b"200":
                    errors += 1
        finally:
            writer.close()

    # Connections opened before the clock starts.
    opened = [await asyncio.open_connection(host, int(port)) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    await asyncio.gather(*(connection(r, w) for r, w in opened))
    return latencies, errors, time.perf_counter() - started


async def drive_httpx(url: str, key: str, targets: list[str]) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for t in targets:
        queue.put_nowait(t)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                try:
                    r = await client.get(path)
                except httpx.TransportError:
                    errors += 1  # counted, and the latency too: a dropped connection is a slow answer
                    latencies.append((time.perf_counter() - started) * 1000)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    errors += 1

        for _ in range(CONCURRENCY):  # connections opened before the clock starts
            await client.get("/health")
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return latencies, errors, time.perf_counter() - started


def drive(url: str, key: str, kind: str, n: int, companies: int, client: str, seed: int = 1) -> dict:
    targets = paths(kind, n, companies, random.Random(seed))
    run = drive_raw if client == "raw" else drive_httpx
    latencies, errors, elapsed = asyncio.run(run(url, key, targets))
    qs = statistics.quantiles(latencies, n=100)
    return {"n": n, "errors": errors, "p50": qs[49], "p95": qs[94], "p99": qs[98], "rps": n / elapsed}


WARM_UP_S = 10.0  # at least, once the row index and listing are built


def measure(
    name: str, env: dict[str, str], work: Path, companies: int, requests: int, client: str, workers: int
) -> list[dict]:
    api = Api(env, work, workers)
    api.wait_for_copies()
    started = time.monotonic()
    rows = []
    try:
        for kind in KINDS:
            if api.proc.poll() is not None:
                raise RuntimeError(f"the API exited: {api.log.read_text()[-2000:]}")
            print(f"{name}: {kind} x {requests} ...", file=sys.stderr, flush=True)
            seed = 99
            drive(api.url, api.key, kind, min(500, requests), companies, client, seed=seed)  # warm-up
            while time.monotonic() - started < WARM_UP_S:
                seed += 1
                drive(api.url, api.key, kind, 200, companies, client, seed=seed)
            result = drive(api.url, api.key, kind, requests, companies, client)
            rows.append({"source": name, "kind": kind, **result, "rss_mib": api.peak_rss / 1024})
    except Exception:
        print(f"API log tail:\n{api.log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        api.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--companies", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=4000, help="requests per scenario")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="PostgreSQL server; a database is created for the run and dropped after",
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--workers", type=int, default=1, help="API_WORKERS for the API process")
    args = parser.parse_args()
    print(f"generating {args.companies} companies ...", file=sys.stderr, flush=True)
    frames = marts_data.marts(args.companies)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        snapshot = marts_data.write_snapshot(work / "serving.duckdb", frames, work / "warehouse")
        rows += measure(
            "DuckDB snapshot",
            {
                "WAREHOUSE_URL": f"duckdb:///{work / 'warehouse' / 'warehouse.duckdb'}",
                "SERVING_DUCKDB": str(snapshot),
            },
            work,
            args.companies,
            args.requests,
            args.client,
            args.workers,
        )
        if args.database_url:
            import psycopg

            name = f"bench_api_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            url = args.database_url.rsplit("/", 1)[0] + f"/{name}"
            try:
                marts_data.write_marts(url, frames)
                with psycopg.connect(url, autocommit=True) as conn:
                    # The server's own after-load work done before measuring: autovacuum would
                    # visit the fresh tables, and the checkpointer write them out, during the
                    # measured rows (PostgreSQL lookups at twice their usual p95 in some runs).
                    conn.execute("VACUUM ANALYZE")
                    try:
                        conn.execute("CHECKPOINT")
                    except psycopg.errors.InsufficientPrivilege:
                        print("(not a superuser: no CHECKPOINT before measuring)", file=sys.stderr)
                rows += measure(
                    "PostgreSQL",
                    {"WAREHOUSE_URL": url},
                    work,
                    args.companies,
                    args.requests,
                    args.client,
                    args.workers,
                )
            finally:
                with psycopg.connect(args.database_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(
        f"\n{args.companies:,} companies, {args.requests} requests per row, {CONCURRENCY} concurrent "
        f"connections ({args.client} client), {args.workers} uvicorn worker(s); client and server share "
        "the machine.\n"
    )
    print("| source | request | p50 ms | p95 ms | p99 ms | requests/s | errors | API RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        label = KINDS[r["kind"]]
        print(
            f"| {r['source']} | {label} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | "
            f"{r['rps']:.0f} | {r['errors']} | {r['rss_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
