"""The project's enrichment run next to a plain dlt loader doing the same fetch-and-land.

    .venv/bin/python benchmarks/bench_vs_dlt.py                          # 1,000 and 10,000 domains
    .venv/bin/python benchmarks/bench_vs_dlt.py --sizes 1000 --instances sqlite,stock
    .venv/bin/python benchmarks/bench_vs_dlt.py --instances sqlite,postgres,stock --rounds 2

Scenario (as in issue-9's figures): BuiltWith only, 100 ms simulated latency (the local
simulator of provider_server.py, in its own process), no rate limit, `--concurrency` requests
in flight on both sides; every domain is new (fresh warehouse); process start included.

* project: `enrichment-pipeline enrich --no-marts --file domains.txt` in a new process, live
  mode against the simulator, a fresh DuckDB warehouse and a fresh DAGSTER_HOME:
  - `sqlite`: the project's dagster.yaml (what `make` and the CLI install);
  - `postgres`: deploy/dagster.yaml on a fresh PostgreSQL database (`ep_i9_<hex>`, dropped after);
  - `stock`: Dagster's default sqlite storage (a dagster.yaml with telemetry only): the "before".
* dlt: benchmarks/dlt_load.py in a separate virtualenv (benchmarks/results/dlt-venv, created on
  first use with `pip install dlt[duckdb]`; dlt is never a dependency of the project), a fresh
  DuckDB file: one GET per domain, `--concurrency` extract workers, rows landed by dlt.

Per size and round the sides run one after the other (dlt first), so each ratio compares runs
made under the same machine load. Markdown goes to stdout and benchmarks/results/vs_dlt.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from provider_server import ServerProcess  # noqa: E402

from enrichment_pipeline.instance import postgres_env  # noqa: E402

DLT_VENV = ROOT / "benchmarks" / "results" / "dlt-venv"
DLT_REQUIREMENT = "dlt[duckdb]==1.31.0"
STOCK_CONFIG = "# Dagster's default sqlite storage (benchmark baseline)\ntelemetry:\n  enabled: false\n"


def log(message: str) -> None:
    print(f"[bench_vs_dlt {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def dlt_python() -> Path:
    python = DLT_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {DLT_VENV} with {DLT_REQUIREMENT}")
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
        httpx_version = __import__("httpx").__version__
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", DLT_REQUIREMENT, f"httpx=={httpx_version}"],
            check=True,
        )
    return python


def run_dlt(python: Path, server: str, domains: Path, work: Path, concurrency: int) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [str(python), str(ROOT / "benchmarks" / "dlt_load.py"), "--server", server, "--domains", str(domains),
         "--duckdb", str(work / "dlt.duckdb"), "--workers", str(concurrency)],
        capture_output=True, text=True, cwd=work,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"dlt failed: {out.stderr[-800:]}")
    return {"wall_s": round(wall, 2), **json.loads(out.stdout.strip().splitlines()[-1])}


def run_project(
    kind: str, server: str, domains: Path, work: Path, concurrency: int, pg_url: str
) -> dict[str, Any]:
    home = work / f"home-{kind}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ENRICHMENT_", "BUILTWITH_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "WAREHOUSE_URL": f"duckdb:///{work / f'wh-{kind}.duckdb'}",
            "ENRICHMENT_MODE": "live",
            "ENRICHMENT_PROVIDERS": "builtwith",
            "BUILTWITH_BASE_URL": server,
            "BUILTWITH_API_KEY": "bench-dummy-key",
            "BUILTWITH_RPS": "0",
            "BUILTWITH_CONCURRENCY": str(concurrency),
        }
    )
    database = None
    if kind == "stock":
        (home / "dagster.yaml").write_text(STOCK_CONFIG)
    elif kind == "postgres":
        import psycopg

        database = f"ep_i9_{secrets.token_hex(4)}"
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {database}")
        env.update(postgres_env(urlunsplit(urlsplit(pg_url)._replace(path=f"/{database}"))))
        shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    try:
        started = time.perf_counter()
        out = subprocess.run(
            [str(Path(sys.executable).with_name("enrichment-pipeline")), "enrich", "--no-marts",
             "--file", str(domains)],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"project ({kind}) failed: {(out.stdout + out.stderr)[-800:]}")
        return {"wall_s": round(wall, 2), **event_counts(home, env)}
    finally:
        if database:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def event_counts(home: Path, env: dict[str, str]) -> dict[str, Any]:
    probe = (
        "import json, collections, dagster as dg\n"
        "i = dg.DagsterInstance.get()\n"
        "r = i.get_runs(limit=1)[0]\n"
        "c = collections.Counter(e.dagster_event_type.value for e in i.all_logs(r.run_id)\n"
        "                        if e.dagster_event_type)\n"
        "print(json.dumps({'events': sum(c.values()), 'planned': c['ASSET_MATERIALIZATION_PLANNED'],"
        " 'materializations': c['ASSET_MATERIALIZATION'], 'status': r.status.value}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--instances", default="sqlite,postgres,stock", help="of sqlite, postgres, stock")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vs_dlt.md")
    args = parser.parse_args(argv)
    kinds = args.instances.split(",")
    python = dlt_python()
    results: list[dict[str, Any]] = []
    with ServerProcess(latency_ms=args.latency_ms, max_seconds=3600) as server:
        for size in (int(s) for s in args.sizes.split(",")):
            for round_ in range(args.rounds):
                work = Path(tempfile.mkdtemp(prefix="ep_vs_dlt_"))
                try:
                    domains = work / "domains.txt"
                    domains.write_text("".join(f"company{i:05d}.com\n" for i in range(1, size + 1)))
                    dlt = run_dlt(python, server.url, domains, work, args.concurrency)
                    log(f"{size} domains, round {round_ + 1}: dlt {dlt}")
                    row: dict[str, Any] = {"size": size, "round": round_ + 1, "dlt": dlt}
                    for kind in kinds:
                        row[kind] = run_project(
                            kind, server.url, domains, work, args.concurrency, args.postgres_url
                        )
                        log(f"  {kind}: {row[kind]} -> {row[kind]['wall_s'] / dlt['wall_s']:.2f}x dlt")
                    results.append(row)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    report = render(results, kinds, args)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    return 0


def render(results: list[dict[str, Any]], kinds: list[str], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [
        f"BuiltWith only, {args.latency_ms:g} ms latency, {args.concurrency} in flight, "
        f"process start included; load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        "(2 cores, shared)",
        "",
        "| domains | round | dlt s | " + " | ".join(f"{k} s (x dlt) | {k} events" for k in kinds) + " |",
        "|---|---|---|" + "---|---|" * len(kinds),
    ]
    for r in results:
        cells = [
            f"{r[k]['wall_s']:.1f} ({r[k]['wall_s'] / r['dlt']['wall_s']:.2f}x) | "
            f"{r[k]['events']} ({r[k]['planned']} planned)"
            for k in kinds
        ]
        lines.append(
            f"| {r['size']:,} | {r['round']} | {r['dlt']['wall_s']:.1f} | " + " | ".join(cells) + " |"
        )
    for size in dict.fromkeys(r["size"] for r in results):
        rs = [r for r in results if r["size"] == size]
        med = {k: statistics.median(r[k]["wall_s"] / r["dlt"]["wall_s"] for r in rs) for k in kinds}
        lines.append("")
        lines.append(
            f"{size:,} domains, median ratio to dlt: " + ", ".join(f"{k} {v:.2f}x" for k, v in med.items())
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
