"""Launched runs, timed the way a data engineer sees them: `make dev`, then launch through GraphQL.

    .venv/bin/python benchmarks/bench_launch.py              # embedded instance (project dagster.yaml)
    .venv/bin/python benchmarks/bench_launch.py --deploy     # deploy/dagster.yaml, fresh PostgreSQL db
    .venv/bin/python benchmarks/bench_launch.py --modes run,backfill --repeat 3

What it does, in a temporary directory (removed at the end; `--keep` keeps it):

1. a fresh DAGSTER_HOME (`make instance` installs the project's dagster.yaml; `--deploy` copies
   deploy/dagster.yaml and creates a fresh PostgreSQL database `ep_i9_<hex>` on the server of
   --postgres-url, dropped at the end) and a fresh DuckDB warehouse;
2. fills the cache: `enrichment-pipeline enrich --file enrichment_pipeline/data/sample_domains.txt`
   (sandbox mode, offline), which registers the 67 sample domains as partitions;
3. starts `make dev DAGSTER_PORT=<free port>` (webserver, daemon, code server) and waits until
   the code location is loaded;
4. launches `enrich_domains` over the sample domains through GraphQL:
   * `run`: a run over the range (`launchPipelineExecution` with the partition range as
     `dagster/asset_partition_range_start/end` tags), what the Launchpad with those tags, a
     schedule or a sensor launches;
   * `backfill`: what Dagster's partition dialog launches for more than one partition
     (`launchPartitionBackfill` with the partition names; the asset has
     `BackfillPolicy.single_run`, so the backfill daemon makes one run, on its next pass);
5. polls GraphQL until the run is SUCCESS, then until the `build_marts` run that the
   `marts_after_enrichment` sensor launches is SUCCESS.

Reported per launch: launch → enrichment SUCCESS (wall clock, polled every 0.1 s) and enrichment
SUCCESS → marts SUCCESS, plus the server's own timestamps (run created → started → ended) and
where the marts run's time goes: the sensor noticing the enrichment, the queue and the worker's
start, each step (`stepStats`), and what precedes and follows the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from enrichment_pipeline.instance import postgres_env

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "enrichment_pipeline" / "data" / "sample_domains.txt"
ENRICH_JOB = "enrich_domains"
MARTS_JOB = "build_marts"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH_RUN = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 50) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
  }
}
"""
BACKFILL = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) { __typename ... on PartitionBackfill { status } }
}
"""
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
STEPS = """
query Steps($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { stepStats { stepKey startTime endTime } } }
}
"""
WORKSPACE = """
query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def log(message: str) -> None:
    print(f"[bench_launch {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GraphQL:
    def __init__(self, port: int) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(json.dumps(body["errors"])[:500])
        return body["data"]

    def runs(self, **filter_: Any) -> list[dict[str, Any]]:
        data = self(RUNS, {"filter": filter_})["runsOrError"]
        return data.get("results", [])


def wait_for_location(gql: GraphQL, proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("`make dev` exited")
        try:
            entries = gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
            for entry in entries:
                error = entry["locationOrLoadError"] or {}
                if error.get("__typename") == "PythonError":
                    raise RuntimeError(f"code location failed to load: {error['message'][:300]}")
                if entry["loadStatus"] == "LOADED" and error.get("__typename") == "RepositoryLocation":
                    return entry["name"]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the code location did not load in time")


def wait_run(gql: GraphQL, find, timeout_s: float, poll_s: float = 0.1) -> tuple[dict[str, Any], float]:
    """Poll until `find()` returns a finished run; (run, monotonic time it was seen finished)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = find()
        if run and run["status"] in FINISHED:
            return run, time.monotonic()
        time.sleep(poll_s)
    raise RuntimeError("timed out waiting for a run")


def launch_once(gql: GraphQL, mode: str, location: str, keys: list[str], asset_paths: list[list[str]],
                timeout_s: float) -> dict[str, Any]:  # fmt: skip
    tag = secrets.token_hex(4)
    started = time.monotonic()
    started_wall = time.time()
    backfill_runs: list[dict[str, Any]] = []
    if mode == "run":
        result = gql(
            LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": location,
                        "repositoryName": "__repository__",
                        "pipelineName": ENRICH_JOB,
                    },
                    "runConfigData": {},
                    "mode": "default",
                    "executionMetadata": {
                        "tags": [
                            {"key": RANGE_START, "value": keys[0]},
                            {"key": RANGE_END, "value": keys[-1]},
                            {"key": "bench/launch", "value": tag},
                        ]
                    },
                }
            },
        )["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {result}")
        run_id = result["run"]["runId"]

        def find_enrich() -> dict[str, Any] | None:
            runs = gql.runs(runIds=[run_id])
            return runs[0] if runs else None

    else:
        result = gql(
            LAUNCH_BACKFILL,
            {
                "backfillParams": {
                    "assetSelection": [{"path": p} for p in asset_paths],
                    "partitionNames": keys,
                    "fromFailure": False,
                    "tags": [{"key": "bench/launch", "value": tag}],
                }
            },
        )["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill launch failed: {result}")
        backfill_id = result["backfillId"]

        # Over the enrichment assets the backfill is two runs: the domains' partitions, then (on
        # the backfill daemon's next pass) the unpartitioned tables downstream. It is done when its
        # last run is; the marts sensor waits for that one.

        def find_enrich() -> dict[str, Any] | None:
            status = gql(BACKFILL, {"backfillId": backfill_id})["partitionBackfillOrError"].get("status")
            if status not in BACKFILL_DONE:
                return None
            backfill_runs[:] = gql.runs(tags=[{"key": "dagster/backfill", "value": backfill_id}])
            if not backfill_runs or any(r["status"] not in FINISHED for r in backfill_runs):
                return None
            return max(backfill_runs, key=lambda r: r["endTime"])

    enrich, enrich_done = wait_run(gql, find_enrich, timeout_s)
    if mode == "backfill":
        # The backfill is marked done on the daemon's pass after its last run, and seen done
        # only then: time from that run's end on the server's clock.
        enrich_done = started + (enrich["endTime"] - started_wall)
    marts_key = f"marts-after-{enrich['runId']}"

    def find_marts() -> dict[str, Any] | None:
        for run in gql.runs(pipelineName=MARTS_JOB):
            if any(t["key"] == "dagster/run_key" and t["value"] == marts_key for t in run["tags"]):
                return run
        return None

    marts, marts_done = (None, None)
    if enrich["status"] == "SUCCESS":
        marts, marts_done = wait_run(gql, find_marts, timeout_s, poll_s=0.2)
        if mode == "backfill":
            # It may have ended before the backfill was seen done: its end on the server's clock.
            marts_done = started + (marts["endTime"] - started_wall)
    # Marts runs requested for any of the backfill's runs (one: after its last run).
    keys_of_launch = {f"marts-after-{r['runId']}" for r in backfill_runs or [enrich]}
    marts_runs = sum(
        any(t["key"] == "dagster/run_key" and t["value"] in keys_of_launch for t in run["tags"])
        for run in gql.runs(pipelineName=MARTS_JOB)
    )
    return {
        "mode": mode,
        "enrich_status": enrich["status"],
        "launch_to_success_s": round(enrich_done - started, 2),
        "enrich_runs": len(backfill_runs) if mode == "backfill" else 1,
        "server_created_to_end_s": round(enrich["endTime"] - enrich["creationTime"], 2),
        "server_start_to_end_s": round(enrich["endTime"] - (enrich["startTime"] or enrich["endTime"]), 2),
        "marts_status": marts["status"] if marts else None,
        "marts_runs": marts_runs,
        "marts_after_s": round(marts_done - enrich_done, 2) if marts_done else None,
        "marts_server_created_to_end_s": round(marts["endTime"] - marts["creationTime"], 2)
        if marts
        else None,
        "marts_server_enrich_end_to_marts_end_s": round(marts["endTime"] - enrich["endTime"], 2)
        if marts
        else None,
        # Where the marts run's time goes: the sensor noticing, the queue and the worker's start,
        # each step, and what follows the last step.
        **(marts_breakdown(gql, enrich, marts) if marts else {}),
    }


def marts_breakdown(gql: GraphQL, enrich: dict[str, Any], marts: dict[str, Any]) -> dict[str, Any]:
    steps = gql(STEPS, {"runId": marts["runId"]})["runOrError"].get("stepStats") or []
    timed = [st for st in steps if st["startTime"] and st["endTime"]]
    started = marts["startTime"] or marts["endTime"]
    out: dict[str, Any] = {
        "marts_sensor_s": round(marts["creationTime"] - enrich["endTime"], 2),
        "marts_created_to_start_s": round(started - marts["creationTime"], 2),
        "marts_steps_s": {st["stepKey"]: round(st["endTime"] - st["startTime"], 2) for st in timed},
    }
    if timed:
        out["marts_start_to_first_step_s"] = round(min(st["startTime"] for st in timed) - started, 2)
        out["marts_last_step_to_end_s"] = round(marts["endTime"] - max(st["endTime"] for st in timed), 2)
    return out


def enrich_asset_paths() -> list[list[str]]:
    import warnings

    warnings.filterwarnings("ignore")
    from enrichment_pipeline.definitions import defs

    job = defs.resolve_job_def(ENRICH_JOB)
    return sorted(list(k.path) for k in job.asset_layer.selected_asset_keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deploy", action="store_true", help="deploy/dagster.yaml on a fresh PostgreSQL db")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--modes", default="run,backfill", help="comma list of run,backfill")
    parser.add_argument("--repeat", type=int, default=3, help="launches per mode")
    parser.add_argument("--timeout-s", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--tree",
        type=Path,
        help="another checkout of the project (e.g. an older commit, dbt manifest parsed) to measure with "
        "this virtualenv: PYTHONPATH=TREE, `dagster dev -w workspace.yaml` run in it instead of `make dev`",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "launch.json")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ep_launch_"))
    home = tmp / "dagster"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ENRICHMENT_", "WAREHOUSE_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "WAREHOUSE_URL": f"duckdb:///{tmp / 'warehouse.duckdb'}",
            "ENRICHMENT_MODE": "sandbox",
            "DOMAIN_DROP_DIR": str(tmp / "inbox"),
        }
    )
    database = None
    if args.deploy:
        import psycopg

        database = f"ep_i9_{secrets.token_hex(4)}"
        with psycopg.connect(args.postgres_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {database}")
        env.update(postgres_env(urlunsplit(urlsplit(args.postgres_url)._replace(path=f"/{database}"))))
        shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    tree = (args.tree or ROOT).resolve()
    if args.tree:
        env["PYTHONPATH"] = str(tree)
    dev: subprocess.Popen | None = None
    results: list[dict[str, Any]] = []
    try:
        bin_dir = Path(sys.executable).parent
        log(f"filling the cache: enrich the sample domains (DAGSTER_HOME {home})")
        subprocess.run(
            [str(bin_dir / "enrichment-pipeline"), "enrich", "--file", str(SAMPLE), "--no-marts"],
            env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        os.environ["DAGSTER_HOME"] = str(home)
        import dagster as dg

        instance = dg.DagsterInstance.from_config(str(home)) if not args.deploy else None
        if args.deploy:
            os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_PG_")})
            instance = dg.DagsterInstance.from_config(str(home))
        keys = list(instance.get_dynamic_partitions("domains"))
        instance.dispose()
        asset_paths = enrich_asset_paths()

        port = free_port()
        command = ["make", "-s", "dev", f"DAGSTER_PORT={port}"]
        if args.tree:
            env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
            command = [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)]
        dev = subprocess.Popen(
            command,
            env=env, cwd=tree, stdout=open(tmp / "dev.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True,
        )  # fmt: skip
        gql = GraphQL(port)
        location = wait_for_location(gql, dev, args.timeout_s)
        log(f"`make dev` on 127.0.0.1:{port}, location {location!r}; {len(keys)} partitions")
        time.sleep(3)  # let the daemon's loops start
        for mode in args.modes.split(","):
            for i in range(args.repeat):
                result = launch_once(gql, mode, location, keys, asset_paths, args.timeout_s)
                log(f"{mode} #{i + 1}: {result}")
                results.append(result)
    finally:
        if dev is not None and dev.poll() is None:
            os.killpg(dev.pid, signal.SIGTERM)
            try:
                dev.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
        if database:
            import psycopg

            with psycopg.connect(args.postgres_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summary = summarize(
        results, "deploy/dagster.yaml (PostgreSQL)" if args.deploy else "project dagster.yaml (sqlite)"
    )
    print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return (
        0
        if results
        and all(r["enrich_status"] == "SUCCESS" and r["marts_status"] == "SUCCESS" for r in results)
        else 1
    )


def summarize(results: list[dict[str, Any]], instance: str) -> str:
    load = os.getloadavg()
    lines = [
        f"instance: {instance}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        "",
        "| launch | n | launch → SUCCESS s (median, max) | run created → end s (server) | "
        "enrich SUCCESS → marts SUCCESS s (median, max) | statuses |",
        "|---|---|---|---|---|---|",
    ]
    for mode in dict.fromkeys(r["mode"] for r in results):
        rs = [r for r in results if r["mode"] == mode]
        wall = [r["launch_to_success_s"] for r in rs]
        server = [r["server_created_to_end_s"] for r in rs]
        marts = [r["marts_after_s"] for r in rs if r["marts_after_s"] is not None]
        statuses = ", ".join(sorted({f"{r['enrich_status']}/{r['marts_status']}" for r in rs}))
        marts_text = f"{statistics.median(marts):.1f}, {max(marts):.1f}" if marts else "-"
        lines.append(
            f"| {mode} | {len(rs)} | {statistics.median(wall):.1f}, {max(wall):.1f} | "
            f"{statistics.median(server):.1f} | {marts_text} | {statuses} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
