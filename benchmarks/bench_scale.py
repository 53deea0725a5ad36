"""Scale benchmark: many domain partitions, one big backfill run, the UI's partition-status queries.

For each instance kind (a fresh sqlite DAGSTER_HOME; with --postgres also a fresh PostgreSQL
instance from deploy/dagster.yaml with DAGSTER_EVENT_BATCH_SIZE=1000):

  1. register --partitions domains (`companyN.com`) as `domains` partitions in one call, and
     read them all back (what the CLI does before every run);
  2. materialize the `enrich_domains` job for the first --domains of them in ONE run (a
     partition range, as a UI backfill with BackfillPolicy.single_run does), sandbox mode,
     no rate limit (`<P>_RPS=0`), into a fresh warehouse (DuckDB with sqlite, PostgreSQL with
     --postgres): wall time, the raw step's own time, provider calls, Dagster events, peak RSS;
  3. time what the UI asks for the partitioned asset: `instance.get_materialized_partitions`
     and, through a GraphQL client on a code server (dagster_graphql's test utilities, the
     queries the webserver answers), `assetNodes { partitionStats }` (the asset list and the
     partition health bar) and `assetPartitionStatuses` (the asset's Partitions tab).

Each instance kind runs in a child process of its own (clean peak RSS, its own environment).

    .venv/bin/python benchmarks/bench_scale.py              # sqlite: 100,000 partitions, a 10,000-domain run
    .venv/bin/python benchmarks/bench_scale.py --postgres   # and PostgreSQL (server: TEST_DATABASE_URL)
    .venv/bin/python benchmarks/bench_scale.py --postgres --compare-batch   # and PostgreSQL without batching
    .venv/bin/python benchmarks/bench_scale.py --partitions 20000 --domains 2000 --no-graphql   # a quick look

Nothing is downloaded; temporary directories and databases (`ep_bench_*`) are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from enrichment_pipeline.instance import postgres_env

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROVIDERS = "builtwith,similarweb"
PARTITION_STATS_QUERY = """
query PartitionStats($key: [AssetKeyInput!]) {
  assetNodes(assetKeys: $key) {
    assetKey { path }
    partitionStats { numMaterialized numPartitions numFailed numMaterializing }
  }
}
"""
PARTITION_STATUSES_QUERY = """
query PartitionStatuses($key: [AssetKeyInput!]) {
  assetNodes(assetKeys: $key) {
    assetPartitionStatuses {
      __typename
      ... on DefaultPartitionStatuses {
        materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
      }
    }
  }
}
"""
SQLITE_CONFIG = "telemetry:\n  enabled: false\n"  # default storage: sqlite files in DAGSTER_HOME


def log(message: str) -> None:
    print(f"[bench_scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- one instance kind, in a child process -------------------------------------------------------------


def run_scenario(kind: str, args: argparse.Namespace, home: Path, warehouse_url: str) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    import dagster as dg
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from enrichment_pipeline.definitions import defs
    from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME
    from enrichment_pipeline.defs.partitions import domains_partitions
    from enrichment_pipeline.defs.raw.assets import RAW_KEY
    from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource

    out: dict[str, Any] = {
        "kind": args.label or kind,
        "batch": os.environ.get("DAGSTER_EVENT_BATCH_SIZE", "0"),
    }
    keys = [f"company{i}.com" for i in range(args.partitions)]
    name = domains_partitions.name
    with dg.DagsterInstance.from_config(str(home)) as instance:
        out["instance"] = type(instance.event_log_storage).__name__
        out["warehouse"] = warehouse_url.split(":", 1)[0]
        started = time.perf_counter()
        instance.add_dynamic_partitions(name, keys)
        out["register_s"] = time.perf_counter() - started
        started = time.perf_counter()
        listed = instance.get_dynamic_partitions(name)
        out["list_s"] = time.perf_counter() - started
        assert listed[: args.domains] == keys[: args.domains], "partitions came back in another order"
        log(f"{kind}: registered {len(listed):,} partitions in {out['register_s']:.1f} s")

        pool = defs.get_assets_def(RAW_KEY).op.pool
        if pool and instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.set_concurrency_slots(pool, 1)  # the deploy step (deploy/README.md)
        job = defs.resolve_job_def(ENRICH_JOB_NAME)
        rss_before = peak_rss_mb()
        called_at = time.time()
        started = time.perf_counter()
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[args.domains - 1],
            },
            resources={
                "warehouse": WarehouseResource(url=warehouse_url),
                "providers": ProvidersResource(mode="sandbox", providers=args.providers.split(",")),
            },
            raise_on_error=False,
        )
        out["run_s"] = time.perf_counter() - started
        out["rss_before_run_mb"] = rss_before
        out["peak_rss_mb"] = peak_rss_mb()
        out["success"] = result.success
        out["events"] = len(result.all_events)
        raw = result.asset_materializations_for_node("raw__provider_responses")
        meta = {k: v.value for k, v in raw[0].metadata.items()} if raw else {}
        out["calls"] = meta.get("calls")
        out["fetch_s"] = meta.get("fetch_seconds")
        step_events = instance.all_logs(
            result.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
        )
        bounds: dict[str, dict[str, float]] = {}
        for e in step_events:
            bounds.setdefault(e.step_key or "", {})[e.dagster_event.event_type_value] = e.timestamp  # type: ignore[union-attr]
        durations = {
            key: b["STEP_SUCCESS"] - b["STEP_START"]
            for key, b in bounds.items()
            if "STEP_START" in b and "STEP_SUCCESS" in b
        }
        out["raw_step_s"] = durations.pop("raw__provider_responses", None)
        out["other_steps_s"] = sum(durations.values())
        stored = instance.all_logs(result.run_id)
        out["stored_events"] = len(stored)
        out["planned_events"] = sum(
            1
            for e in stored
            if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION_PLANNED"
        )
        run_start = next(
            (
                e.timestamp
                for e in stored
                if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_START"
            ),
            None,
        )
        out["setup_s"] = run_start - called_at if run_start else None
        out["slowest_other_step"] = max(durations.items(), key=lambda kv: kv[1]) if durations else None
        log(f"{kind}: {args.domains:,}-domain run {out['run_s']:.1f} s, success={result.success}")

        started = time.perf_counter()
        materialized = instance.get_materialized_partitions(RAW_KEY)
        out["materialized_s"] = time.perf_counter() - started
        out["materialized"] = len(materialized)

        if not args.no_graphql:
            variables = {"key": [{"path": list(RAW_KEY.path)}]}
            started = time.perf_counter()
            with define_out_of_process_context(str(ROOT / "workspace.yaml"), None, instance) as context:
                out["code_server_s"] = time.perf_counter() - started
                for label, query in (
                    ("stats", PARTITION_STATS_QUERY),
                    ("statuses", PARTITION_STATUSES_QUERY),
                ):
                    timings = []
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        answer = execute_dagster_graphql(context, query, variables)
                        timings.append(time.perf_counter() - started)
                    out[f"gql_{label}_s"] = min(timings)
                    node = answer.data["assetNodes"][0]
                    if label == "stats":
                        out["gql_stats"] = node["partitionStats"]
                    else:
                        statuses = node["assetPartitionStatuses"]
                        out["gql_statuses_counts"] = {
                            k: len(v) for k, v in statuses.items() if isinstance(v, list)
                        }
            log(f"{kind}: GraphQL partitionStats {out['gql_stats_s']:.2f} s")
    return out


# --- the parent: set up each kind, run it in a child, print the table ----------------------------------


def _admin(server_url: str):
    import psycopg

    return psycopg.connect(server_url, autocommit=True)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def launch(kind: str, args: argparse.Namespace, batch_size: int = 0, label: str = "") -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ep_bench_scale_", dir=args.tmp_dir))
    home = tmp / "dagster"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PG_", "ENRICHMENT_"))}
    env.update({"DAGSTER_HOME": str(home), "ENRICHMENT_MODE": "sandbox", "PYTHONPATH": str(ROOT)})
    for provider in ("BUILTWITH", "SIMILARWEB", "CLEARBIT", "APOLLO", "EXPLORIUM", "YAHOO"):
        env[f"{provider}_RPS"] = "0"
        env.pop(f"{provider}_DAILY_QUOTA", None)
    databases: list[str] = []
    try:
        if kind == "postgres":
            for role in ("instance", "warehouse"):
                name = f"ep_bench_{role}_{secrets.token_hex(4)}"
                with _admin(args.postgres_url) as admin:
                    admin.execute(f"CREATE DATABASE {name}")
                databases.append(name)
            shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
            env.update(postgres_env(_with_database(args.postgres_url, databases[0])))
            env["DAGSTER_EVENT_BATCH_SIZE"] = str(batch_size)
            warehouse_url = _with_database(args.postgres_url, databases[1])
        else:
            (home / "dagster.yaml").write_text(SQLITE_CONFIG)
            env.pop("DAGSTER_EVENT_BATCH_SIZE", None)
            warehouse_url = f"duckdb:///{tmp / 'warehouse.duckdb'}"
        child = [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--home",
            str(home),
            "--warehouse-url",
            warehouse_url,
        ]
        child += ["--label", label or kind]
        for flag in ("partitions", "domains", "providers", "repeat"):
            child += [f"--{flag}", str(getattr(args, flag))]
        if args.no_graphql:
            child.append("--no-graphql")
        log(f"{kind}: starting (DAGSTER_HOME {home})")
        proc = subprocess.run(child, env=env, cwd=tmp, stdout=subprocess.PIPE, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            return {"kind": kind, "error": f"child exited {proc.returncode}"}
        return json.loads(lines[-1])
    finally:
        if databases:
            with _admin(args.postgres_url) as admin:
                for name in databases:
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)


def _fmt(value: Any, spec: str = ".1f", unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:{spec}}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    header = ["measure", *(r["kind"] for r in results)]
    rows: list[list[str]] = []

    def row(label: str, fn) -> None:
        rows.append([label, *(fn(r) if "error" not in r else r["error"] for r in results)])

    row(
        "Dagster instance (event log storage)",
        lambda r: f"{r['instance']}, DAGSTER_EVENT_BATCH_SIZE={r['batch']}",
    )
    row("warehouse", lambda r: r.get("warehouse", "-"))
    row(f"register {args.partitions:,} partitions (one call)", lambda r: _fmt(r["register_s"], ".2f", " s"))
    row(f"list all {args.partitions:,} partitions", lambda r: _fmt(r["list_s"], ".2f", " s"))
    row(f"{args.domains:,}-domain run, one run (wall)", lambda r: _fmt(r["run_s"], ".1f", " s"))
    row(
        "  run set-up (planned events, before the run starts)",
        lambda r: (
            f"{r['setup_s']:.1f} s ({r['planned_events']:,} planned events)" if r.get("setup_s") else "-"
        ),
    )
    row("  raw step (fetch + its materialization events)", lambda r: _fmt(r.get("raw_step_s"), ".1f", " s"))
    row("    of which fetching (calls + warehouse writes)", lambda r: _fmt(r.get("fetch_s"), ".1f", " s"))
    row("  the other steps (sum)", lambda r: _fmt(r.get("other_steps_s"), ".1f", " s"))
    row(
        "    slowest of them",
        lambda r: (
            f"{r['slowest_other_step'][0]} {r['slowest_other_step'][1]:.1f} s"
            if r.get("slowest_other_step")
            else "-"
        ),
    )
    row("run succeeded", lambda r: str(r["success"]))
    row("provider calls", lambda r: _fmt(r["calls"]))
    row("Dagster events stored for the run", lambda r: _fmt(r.get("stored_events")))
    row(
        "peak RSS after the run (before it)",
        lambda r: f"{r['peak_rss_mb']:.0f} MB ({r['rss_before_run_mb']:.0f} MB)",
    )
    row(
        "`get_materialized_partitions(raw)`",
        lambda r: f"{r['materialized_s']:.2f} s ({r['materialized']:,} keys)",
    )
    if not args.no_graphql:
        row("code server start (GraphQL context)", lambda r: _fmt(r.get("code_server_s"), ".1f", " s"))
        row(
            "GraphQL `assetNodes { partitionStats }`",
            lambda r: (
                f"{r['gql_stats_s']:.2f} s ({r['gql_stats']['numMaterialized']:,}"
                f" / {r['gql_stats']['numPartitions']:,})"
            ),
        )
        row(
            "GraphQL `assetPartitionStatuses` (Partitions tab)",
            lambda r: f"{r['gql_statuses_s']:.2f} s",
        )
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--partitions", type=int, default=100_000)
    parser.add_argument("--domains", type=int, default=10_000, help="domains in the one backfill run")
    parser.add_argument("--providers", default=DEFAULT_PROVIDERS)
    parser.add_argument("--postgres", action="store_true", help="also a PostgreSQL instance + warehouse")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="server to create the temporary databases on (any database of it)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="DAGSTER_EVENT_BATCH_SIZE for PostgreSQL"
    )
    parser.add_argument(
        "--compare-batch",
        action="store_true",
        help="with --postgres: also PostgreSQL with DAGSTER_EVENT_BATCH_SIZE=0",
    )
    parser.add_argument("--no-graphql", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="GraphQL queries: best of N")
    parser.add_argument("--tmp-dir", default=None)
    parser.add_argument("--child", choices=("sqlite", "postgres"), help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse-url", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.domains > args.partitions:
        parser.error("--domains must not exceed --partitions")

    if args.child:
        print(json.dumps(run_scenario(args.child, args, Path(args.home), args.warehouse_url), default=str))
        return 0

    scenarios: list[tuple[str, int, str]] = [] if args.postgres_only else [("sqlite", 0, "sqlite")]
    if args.postgres or args.postgres_only:
        scenarios.append(("postgres", args.batch_size, f"postgres, batch {args.batch_size}"))
        if args.compare_batch:
            scenarios.append(("postgres", 0, "postgres, batch 0"))
    started = time.perf_counter()
    results = [launch(kind, args, batch, label) for kind, batch, label in scenarios]
    print(
        f"\n### Scale: {args.partitions:,} partitions, one {args.domains:,}-domain run "
        f"({args.providers}, sandbox, no rate limit), {os.cpu_count()} CPUs\n"
    )
    print(table(results, args))
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")
    return 0 if all(r.get("success") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
