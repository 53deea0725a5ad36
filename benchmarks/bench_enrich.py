"""Benchmark the real enrichment path against a local provider simulator.

Every Dagster scenario calls `enrichment_pipeline.cli.main(["enrich", "--file", ...])`,
exactly what `enrichment-pipeline enrich` does: normalize the file, register the
dynamic partitions on a sqlite Dagster instance in a fresh temporary
DAGSTER_HOME, run the `enrich_domains` job in-process over one partition range,
write a fresh temporary DuckDB warehouse, and query the summary. Providers are
reached over real HTTP (`ENRICHMENT_MODE=live`, `<P>_BASE_URL` pointing at
`provider_server.py`, which answers with the sandbox's bodies after a fixed
latency and records the arrival time of every request).

Scenarios (see benchmarks/README.md):
  a  BuiltWith only, BUILTWITH_RPS=50: throughput vs the bound, max requests in any 1 s
  b  BuiltWith only, no rate limit, BUILTWITH_CONCURRENCY in --concurrency (16,32,64)
  c  both providers (1 BuiltWith + 6 SimilarWeb calls per domain), no rate limit, concurrency 32
  d  naive loop: one httpx.Client GET per domain, one after the other (--naive-n domains)
  e  scenario b (concurrency --cache-concurrency) run again on the same warehouse: cache only

    .venv/bin/python benchmarks/bench_enrich.py                 # everything, N=1000
    .venv/bin/python benchmarks/bench_enrich.py -n 200 -s b,e   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from provider_server import ServerProcess, max_in_window

from enrichment_pipeline.lib.domains import normalize_domain

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.md"
RAW_STEP = "raw__provider_responses"
PROVIDERS = ("builtwith", "similarweb")
# Every variable the run reads for a provider; unset unless a scenario sets it.
_PROVIDER_VARS = ("BASE_URL", "API_KEY", "RPS", "CONCURRENCY", "DAILY_QUOTA", "COST_PER_CALL", "MAX_ATTEMPTS")
_OTHER_VARS = (
    "DAGSTER_HOME",
    "WAREHOUSE_URL",
    "ENRICHMENT_MODE",
    "ENRICHMENT_PROVIDERS",
    "BUILTWITH_API",
    "SIMILARWEB_COUNTRY",
    "ICP_MODEL",
    "WATERFALL_CONFIG",
)


def synthetic_domains(n: int) -> list[str]:
    domains = [f"company{i:05d}.com" for i in range(1, n + 1)]
    for d in domains[:: max(1, n // 20)]:
        if normalize_domain(d) != d:
            raise SystemExit(f"synthetic domain {d!r} normalizes to {normalize_domain(d)!r}")
    return domains


# -- measurement helpers ---------------------------------------------------------------


def _mib(kib: int) -> float:
    return kib / 1024


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0) so each scenario gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak RSS since the last reset (VmHWM), else since the process started (ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return _mib(int(line.split()[1]))
    except OSError:
        pass
    return _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    names = set(values) | set(_OTHER_VARS) | {f"{p.upper()}_{v}" for p in PROVIDERS for v in _PROVIDER_VARS}
    saved = {k: os.environ.get(k) for k in names}
    try:
        for k in names:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Workspace:
    """A fresh DAGSTER_HOME and DuckDB warehouse in one temporary directory."""

    root: Path

    @classmethod
    def create(cls, label: str, base: Path | None = None) -> Workspace:
        return cls(Path(tempfile.mkdtemp(prefix=f"bench-{label}-", dir=base)))

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def warehouse_url(self) -> str:
        return f"duckdb:///{self.warehouse}"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def scenario_env(
    ws: Workspace, server_url: str, providers: Sequence[str], *, rps: float, concurrency: int
) -> dict[str, str]:
    env = {
        "DAGSTER_HOME": str(ws.dagster_home),
        "WAREHOUSE_URL": ws.warehouse_url,
        "ENRICHMENT_MODE": "live",
        # The pipeline's own switch for which providers a run calls (settings.enabled_providers).
        "ENRICHMENT_PROVIDERS": ",".join(providers),
    }
    for p in PROVIDERS:
        P = p.upper()
        env[f"{P}_BASE_URL"] = server_url
        env[f"{P}_API_KEY"] = f"bench-dummy-{p}-key"
        env[f"{P}_RPS"] = f"{rps:g}"  # 0 = no limit
        env[f"{P}_CONCURRENCY"] = str(concurrency)
    return env


@dataclass
class RunMeasure:
    """One `enrichment-pipeline enrich` call and what its event log says."""

    rc: int
    wall_s: float
    output: str
    run_id: str | None = None
    fetch_s: float | None = None
    calls: int | None = None
    cache_hits: int | None = None
    pre_run_s: float | None = None  # cli start -> first run event (normalize, partitions, launch)
    planning_s: float | None = None  # first run event -> raw step start (incl. N planned events)
    raw_step_s: float | None = None
    downstream_s: float | None = None  # every other step (staging, profiles, scores, checks)
    post_run_s: float | None = None  # run end -> cli return (summary query, printing)
    domains: int = 0  # the raw asset's `domains` metadata
    events: int = 0
    failed_steps: dict[str, str] = field(default_factory=dict)  # step -> first line of its error
    planned: int = 0
    materializations: int = 0
    steps: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    peak_rss_mib: float = 0.0

    @property
    def bookkeeping_ms_per_domain(self) -> float | None:
        if self.fetch_s is None or self.downstream_s is None or not self.domains:
            return None
        return (self.wall_s - self.fetch_s - self.downstream_s) / self.domains * 1000


def run_enrich(domain_file: Path, warehouse: Path) -> RunMeasure:
    """`enrichment-pipeline enrich --file domain_file`, in this process, output captured."""
    from enrichment_pipeline import cli

    out, err = io.StringIO(), io.StringIO()
    started_unix = time.time()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        # The enrichment path alone; the dbt marts build (a fixed ~8-10 s) is measured apart.
        rc = cli.main(["enrich", "--no-marts", "--file", str(domain_file)])
    wall = time.perf_counter() - started
    ended_unix = started_unix + wall
    m = RunMeasure(rc=rc, wall_s=wall, output=out.getvalue() + err.getvalue())
    if m.rc in (0, 1):  # 1: the run started and failed; its event log still has the timings
        _read_event_log(m, started_unix, ended_unix)
    if m.rc == 0:
        m.statuses = profile_statuses(warehouse)
    return m


def profile_statuses(warehouse: Path) -> dict[str, int]:
    """How many domains `marts.company_profiles` has per status (plain DuckDB, read-only)."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM marts.company_profiles GROUP BY status").fetchall()
    return {str(s): int(k) for s, k in rows}


def _read_event_log(m: RunMeasure, started_unix: float, ended_unix: float) -> None:
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="enrich_domains"), limit=1)
        if not runs:
            return
        m.run_id = runs[0].run_id
        logs = instance.all_logs(m.run_id)
    m.events = len(logs)
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    run_end = None
    kinds = dg.DagsterEventType
    for entry in logs:
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == kinds.ASSET_MATERIALIZATION_PLANNED:
            m.planned += 1
        elif kind == kinds.ASSET_MATERIALIZATION:
            m.materializations += 1
            if m.fetch_s is None and event.step_key == RAW_STEP:
                meta = {k: v.value for k, v in entry.asset_materialization.metadata.items()}
                m.fetch_s = float(meta["fetch_seconds"])
                m.domains = int(meta["domains"])
                m.calls = int(meta["calls"])
                m.cache_hits = int(meta["cache_hits"])
        elif kind == kinds.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif kind in (kinds.STEP_SUCCESS, kinds.STEP_FAILURE):
            ends[event.step_key] = entry.timestamp
            if kind == kinds.STEP_FAILURE:
                error = getattr(event.event_specific_data, "error", None)
                message = (getattr(error, "message", None) or "").strip().splitlines()
                m.failed_steps[event.step_key] = message[0] if message else "failed"
        elif kind in (kinds.RUN_SUCCESS, kinds.RUN_FAILURE):
            run_end = entry.timestamp
    first = min(e.timestamp for e in logs) if logs else None
    m.steps = {k: ends[k] - starts[k] for k in starts if k in ends}
    if first is not None:
        m.pre_run_s = first - started_unix
        if RAW_STEP in starts:
            m.planning_s = starts[RAW_STEP] - first
    m.raw_step_s = m.steps.get(RAW_STEP)
    m.downstream_s = sum(v for k, v in m.steps.items() if k != RAW_STEP)
    if run_end is not None:
        m.post_run_s = ended_unix - run_end


# -- scenarios ----------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    providers: str
    n: int
    limits: str
    measure: RunMeasure | None = None
    # for the naive loop (no Dagster)
    wall_s: float | None = None
    calls: int | None = None
    max_window: int | None = None
    peak_rss_mib: float | None = None

    @property
    def calls_at_server(self) -> int | None:
        if self.measure is not None:
            return self.measure.server.get("requests")
        return self.calls


class Bench:
    def __init__(self, args: argparse.Namespace, server: ServerProcess) -> None:
        self.args = args
        self.server = server
        self.n = args.n
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-enrich-", dir=args.tmp_dir))
        self.domain_file = self.tmp / "domains.txt"
        self.domain_file.write_text("\n".join(synthetic_domains(self.n)) + "\n")
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.cache_ws: Workspace | None = None

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def dagster_run(
        self,
        label: str,
        ws: Workspace,
        providers: Sequence[str],
        *,
        rps: float,
        concurrency: int,
        domain_file: Path | None = None,
    ) -> RunMeasure:
        self.server.reset()
        reset_peak_rss()
        with patched_env(scenario_env(ws, self.server.url, providers, rps=rps, concurrency=concurrency)):
            m = run_enrich(domain_file or self.domain_file, ws.warehouse)
        m.peak_rss_mib = peak_rss_mib()
        m.server = self.server.stats()
        if m.rc != 0:
            self.log(m.output)
            last = m.output.strip().splitlines()[-1:] or [""]
            if m.rc != 1 or m.run_id is None or m.fetch_s is None:
                raise SystemExit(f"scenario {label}: enrich exited with {m.rc}: {last[0]}")
            # The fetch finished and a later step failed: keep the timings, say what failed.
            failures = "; ".join(f"{k}: {v}" for k, v in m.failed_steps.items()) or last[0]
            self.notes.append(f"**{label}**: the Dagster run FAILED after the fetch ({failures}).")
        stamps = sorted(m.server.pop("timestamps"))
        m.server["max_in_1s_window"], _ = max_in_window(stamps)
        gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
        for name, q in (("min", 0.0), ("median", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
            m.server[f"{name}_gap_ms"] = gaps[min(len(gaps) - 1, int(q * len(gaps)))] * 1000 if gaps else None
        m.server["span_s"] = (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0
        self.log(
            f"  {label}: wall {m.wall_s:.2f} s, fetch {m.fetch_s} s, calls {m.server['requests']}, "
            f"max/1s {m.server['max_in_1s_window']}, statuses {m.statuses}, steps "
            + ", ".join(f"{k} {v:.2f}" for k, v in m.steps.items())
        )
        return m

    def warmup(self) -> None:
        """A small run first, so imports and first-run setup are not charged to scenario a."""
        ws = Workspace.create("warmup", self.tmp)
        small = self.tmp / "warmup.txt"
        small.write_text("\n".join(f"warmup{i:03d}.com" for i in range(20)) + "\n")
        t = time.perf_counter()
        try:
            self.dagster_run("warm-up", ws, ["builtwith"], rps=0, concurrency=16, domain_file=small)
        finally:
            ws.remove()
        took = time.perf_counter() - t
        self.notes.append(f"Warm-up (imports + one 20-domain run, not in the table): {took:.1f} s.")

    def scenario_a(self) -> None:
        rps = self.args.rps
        self.log(f"[a] rate-limited: BuiltWith only, BUILTWITH_RPS={rps:g}, concurrency 16, N={self.n}")
        ws = Workspace.create("a", self.tmp)
        try:
            m = self.dagster_run("a", ws, ["builtwith"], rps=rps, concurrency=16)
        finally:
            ws.remove()
        rate = self.n / m.fetch_s if m.fetch_s else 0.0
        served = m.server["requests"]
        server_rate = (served - 1) / m.server["span_s"] if m.server["span_s"] else 0.0
        ok = m.server["max_in_1s_window"] <= rps
        self.rows.append(Row("a rate-limited", "builtwith", self.n, f"rps {rps:g} / conc 16", m))
        self.notes.append(
            f"**a**: {rate:.1f} domains/s during the fetch vs the bound {rps:g}/s "
            f"= {rate / rps:.3f} of the bound "
            f"(server saw {server_rate:.2f} req/s between its first and last request; gaps between "
            f"arrivals: min {m.server['min_gap_ms']:.2f} / median {m.server['median_gap_ms']:.2f} / "
            f"p90 {m.server['p90_gap_ms']:.2f} / p99 {m.server['p99_gap_ms']:.2f} / "
            f"max {m.server['max_gap_ms']:.2f} ms vs the limiter's interval {1000 / rps:.2f} ms); "
            f"max requests in any 1-second window at the server = {m.server['max_in_1s_window']} "
            f"({'OK, ≤' if ok else 'EXCEEDS'} {rps:g}). Whole run: {self.n / m.wall_s:.1f} domains/s."
        )

    def scenario_b(self) -> None:
        keep = self.args.cache_concurrency if "e" in self.args.scenarios else None
        for conc in self.args.concurrency:
            self.log(f"[b] no limits: BuiltWith only, RPS=0, BUILTWITH_CONCURRENCY={conc}, N={self.n}")
            ws = Workspace.create(f"b{conc}", self.tmp)
            m = self.dagster_run(f"b/{conc}", ws, ["builtwith"], rps=0, concurrency=conc)
            if conc == keep and self.cache_ws is None:
                self.cache_ws = ws
            else:
                ws.remove()
            self.rows.append(Row(f"b no limits, conc {conc}", "builtwith", self.n, f"rps 0 / conc {conc}", m))

    def scenario_c(self) -> None:
        conc = self.args.full_concurrency
        self.log(f"[c] full pipeline: both providers, RPS=0, concurrency {conc} each, N={self.n}")
        ws = Workspace.create("c", self.tmp)
        try:
            m = self.dagster_run("c", ws, list(PROVIDERS), rps=0, concurrency=conc)
        finally:
            ws.remove()
        limits = f"rps 0 / conc {conc} each"
        self.rows.append(Row("c both providers", "builtwith+similarweb", self.n, limits, m))

    def scenario_d(self) -> None:
        n = self.args.naive_n
        self.log(f"[d] naive sequential httpx.Client loop, BuiltWith path, N={n}")
        self.server.reset()
        reset_peak_rss()
        domains = synthetic_domains(n)
        t = time.perf_counter()
        with httpx.Client(base_url=self.server.url, timeout=20) as client:
            for d in domains:
                r = client.get("/v22/api.json", params={"LOOKUP": d, "KEY": "bench-dummy-builtwith-key"})
                r.raise_for_status()
                r.json()
        wall = time.perf_counter() - t
        stats = self.server.stats()
        per = wall / n
        window, _ = max_in_window(stats["timestamps"])
        self.rows.append(
            Row(
                "d naive sequential loop",
                "builtwith",
                n,
                "1 request at a time",
                wall_s=wall,
                calls=stats["requests"],
                max_window=window,
                peak_rss_mib=peak_rss_mib(),
            )
        )
        self.notes.append(
            f"**d**: {per * 1000:.1f} ms per domain sequentially ({1 / per:.1f} domains/s); "
            f"extrapolated to N={self.n}: {per * self.n:.0f} s."
        )

    def scenario_e(self) -> None:
        conc = self.args.cache_concurrency
        ws = self.cache_ws
        if ws is None:
            self.log(f"[e] priming a warehouse first (scenario b, concurrency {conc})")
            ws = Workspace.create("e", self.tmp)
            self.dagster_run("e/prime", ws, ["builtwith"], rps=0, concurrency=conc)
        self.log(f"[e] cached re-run of b (concurrency {conc}) on the same warehouse and DAGSTER_HOME")
        try:
            m = self.dagster_run("e", ws, ["builtwith"], rps=0, concurrency=conc)
        finally:
            ws.remove()
            self.cache_ws = None
        self.rows.append(Row("e cached re-run of b", "builtwith", self.n, f"rps 0 / conc {conc}", m))
        self.notes.append(
            f"**e**: provider calls on the re-run = {m.server['requests']} at the server "
            f"({m.calls} per the raw asset's metadata, {m.cache_hits} cache hits); wall {m.wall_s:.2f} s."
        )

    def close(self) -> None:
        if self.cache_ws is not None:
            self.cache_ws.remove()
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- report ---------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def code_version() -> str:
    """The commit and how many files differ from it (the numbers belong to that working tree)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "enrichment_pipeline"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}" + (
        f" + {len(dirty)} changed path(s) under enrichment_pipeline/" if dirty else ""
    )


def render(bench: Bench, args: argparse.Namespace, total_s: float, code_at_start: str) -> str:
    code_at_end = code_version()
    code = (
        code_at_start
        if code_at_end == code_at_start
        else f"{code_at_start} at the start, {code_at_end} at the end"
    )
    lines = [
        f"# Enrichment benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Code: {code} (modules are imported once, at the start). "
        f"Command: `{' '.join(['benchmarks/bench_enrich.py', *sys.argv[1:]])}`.",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.2f} "
        f"(other work on the machine skews the figures), Python {sys.version.split()[0]}. Simulator latency "
        f"{args.latency_ms:g} ms per request, in its own process on 127.0.0.1. Dagster: sqlite instance in a "
        "fresh temporary DAGSTER_HOME per scenario, DuckDB warehouse in a fresh temporary file, "
        "`ENRICHMENT_MODE=live`, run through `enrichment_pipeline.cli.main(['enrich', '--file', ...])`.",
        "",
        "| scenario | providers | N | limits | calls at server | wall s | fetch s | domains/s (fetch) "
        "| domains/s (wall) | max req in any 1 s | peak RSS MiB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in bench.rows:
        m = r.measure
        if m is not None:
            fetch_rate = r.n / m.fetch_s if m.fetch_s else None
            lines.append(
                f"| {r.scenario} | {r.providers} | {r.n} | {r.limits} | {r.calls_at_server} | {m.wall_s:.2f} "
                f"| {_f(m.fetch_s)} | {_f(fetch_rate, 1)} | {r.n / m.wall_s:.1f} "
                f"| {m.server['max_in_1s_window']} | {m.peak_rss_mib:.0f} |"
            )
        else:
            lines.append(
                f"| {r.scenario} | {r.providers} | {r.n} | {r.limits} | {r.calls} | {_f(r.wall_s)} "
                f"| {_f(r.wall_s)} | {r.n / r.wall_s:.1f} | {r.n / r.wall_s:.1f} | {r.max_window} "
                f"| {_f(r.peak_rss_mib, 0)} |"
            )
    dagster_rows = [r for r in bench.rows if r.measure is not None]
    if dagster_rows:
        lines += [
            "",
            "Where the wall time of the Dagster runs goes "
            "(seconds; bookkeeping = (wall - fetch - downstream) / N):",
            "",
            "| scenario | wall | pre-run (normalize, register partitions, launch) | run start → raw step "
            "| raw step | of which fetch | downstream steps | run end → CLI return | bookkeeping ms/domain "
            "| events (planned / materialized) | server CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in dagster_rows:
            m = r.measure
            assert m is not None
            lines.append(
                f"| {r.scenario} | {m.wall_s:.2f} | {_f(m.pre_run_s)} | {_f(m.planning_s)} "
                f"| {_f(m.raw_step_s)} "
                f"| {_f(m.fetch_s)} | {_f(m.downstream_s)} | {_f(m.post_run_s)} "
                f"| {_f(m.bookkeeping_ms_per_domain, 1)} | {m.events} ({m.planned} / {m.materializations}) "
                f"| {_f(m.server.get('cpu_s'))} |"
            )
    lines += ["", *[f"- {note}" for note in bench.notes]]
    lines += [
        f"- Peak RSS of the benchmark process over the whole run (ru_maxrss): "
        f"{_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss):.0f} MiB; the per-row figure is the peak "
        "during that scenario (VmHWM reset before it).",
        f"- Total benchmark time: {total_s:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n", type=int, default=1000, help="domains per Dagster scenario")
    parser.add_argument("-s", "--scenarios", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="simulator latency per request")
    parser.add_argument("--rps", type=float, default=50.0, help="BUILTWITH_RPS for scenario a")
    parser.add_argument("--concurrency", default="16,32,64", help="BUILTWITH_CONCURRENCY values for b")
    parser.add_argument("--full-concurrency", type=int, default=32, help="<P>_CONCURRENCY for scenario c")
    parser.add_argument("--cache-concurrency", type=int, default=32, help="which b run scenario e repeats")
    parser.add_argument("--naive-n", type=int, default=200, help="domains for the naive loop (d)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the 20-domain warm-up run")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="where the temporary DAGSTER_HOMEs and warehouses go"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"Markdown report (default {RESULTS})")
    parser.add_argument(
        "--timeout-s", type=float, default=900.0, help="abort the whole benchmark after this long"
    )
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set("abcde")
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.n < 1 or args.naive_n < 1:
        parser.error("-n and --naive-n must be at least 1")
    return args


def _watchdog(seconds: float) -> threading.Timer:
    def fire() -> None:
        print(f"benchmark exceeded --timeout-s {seconds:.0f} s; aborting", file=sys.stderr, flush=True)
        os._exit(3)  # the simulator child exits on its own when our end of its stdin closes

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    timer = _watchdog(args.timeout_s)
    code_at_start = code_version()
    started = time.perf_counter()
    server = ServerProcess(latency_ms=args.latency_ms, max_seconds=args.timeout_s + 60)
    with server:
        bench = Bench(args, server)
        try:
            if not args.no_warmup and set(args.scenarios) & set("abce"):
                bench.warmup()
            for name in "abcde":  # b before e: e re-runs b's warehouse
                if name in args.scenarios:
                    try:
                        getattr(bench, f"scenario_{name}")()
                    except (Exception, SystemExit) as exc:  # report it, keep the other scenarios
                        bench.log(f"scenario {name} failed: {exc!r}")
                        bench.notes.append(f"**{name}** FAILED: {exc!r}")
        finally:
            bench.close()
    report = render(bench, args, time.perf_counter() - started, code_at_start)
    timer.cancel()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    print(f"(written to {args.out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
