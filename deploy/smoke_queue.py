"""End-to-end check of deploy/dagster.yaml on one machine: webserver, daemon, run queue, pool.

    .venv/bin/python deploy/smoke_queue.py [--postgres-url URL] [--runs 6] [--domains-per-run 30]

On fresh databases (Dagster instance, warehouse) on the server of --postgres-url (default:
TEST_DATABASE_URL), with a temporary DAGSTER_HOME holding a copy of deploy/dagster.yaml:

1. `dagster instance concurrency set provider_calls 1` (the deploy step of deploy/README.md);
2. registers --runs x --domains-per-run sandbox domains as `domains` partitions;
3. starts `dagster-webserver` and `dagster-daemon run` on workspace.yaml (sandbox mode, the
   PostgreSQL warehouse, DAGSTER_EVENT_BATCH_SIZE=1000);
4. submits --runs runs of `enrich_domains` through the GraphQL API, each over its own range;
5. watches the instance until every run has finished, recording how many runs were in
   progress and how many pool slots were claimed at once;
6. checks: every run succeeded, never more runs in progress than `max_concurrent_runs`, never
   more than one `provider_calls` slot claimed, the runs' fetches took turns, every domain has
   all of its rows; prints a Markdown summary.

With --kill-one, one run's worker process is killed with SIGKILL in the middle of its raw step
(with --kill-warm, a worker that the project's warm launcher forked, not one of the first runs,
which start the default way); the script records how long until the run is marked failed (the
process that started the worker notices: the warm launcher's supervisor of the run, or the code
server for a run started the default way; after 60 s it would mark the run failed itself, as an
operator would), and checks that the daemon's run retry re-executes the run and that the retry
succeeds. For that check the copy of dagster.yaml polls every 5 s and frees pool slots 5 s
after a run ends (instead of 60 s and 300 s).

Everything it started is stopped, and the databases dropped, at the end. Exit status 0 when
every check holds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from enrichment_pipeline.instance import postgres_env

ROOT = Path(__file__).resolve().parents[1]
POOL = "provider_calls"
TIMEOUT_S = 600


def log(message: str) -> None:
    print(f"[smoke_queue {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def kill_a_fetching_worker(instance, run_ids: list[str], warm_only: bool = False) -> dict[str, object]:
    """SIGKILL the worker of the first run whose raw step has started (with `warm_only`, of a run
    whose worker was forked by the warm launcher); {} if none has yet."""
    import dagster as dg

    for run_id in run_ids:
        if warm_only and not instance.get_run_by_id(run_id).tags.get("enrichment/run_worker_pid"):
            continue
        events = instance.all_logs(
            run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.ENGINE_EVENT}
        )
        started = any(
            e.step_key == "raw__provider_responses"
            for e in events
            if e.dagster_event.event_type_value == "STEP_START"
        )
        pids = [
            e.dagster_event.engine_event_data.metadata["pid"].value
            for e in events
            if e.dagster_event.event_type_value == "ENGINE_EVENT"
            and "pid" in (e.dagster_event.engine_event_data.metadata or {})
        ]
        if started and pids:
            pid = int(pids[-1])
            os.kill(pid, signal.SIGKILL)  # the run worker the daemon launched for this script
            log(f"killed the worker of run {run_id} (pid {pid}) in its raw step")
            return {"run": run_id, "pid": pid, "killed_at": time.monotonic()}
    return {}


def follow_up_on_the_killed_run(instance, killed: dict[str, object]) -> None:
    """Record how long until the killed run is FAILURE (the process that started the worker
    notices its death); if it is still STARTED after 60 s, mark it failed as an operator would.
    Then wait for the daemon's automatic retry and record how it ended."""
    import dagster as dg

    run = instance.get_run_by_id(killed["run"])
    waited = time.monotonic() - float(killed["killed_at"])  # type: ignore[arg-type]
    if "run failed" not in killed:
        if run.status == dg.DagsterRunStatus.FAILURE:
            how = "forked warm" if run.tags.get("enrichment/run_worker_pid") else "started the default way"
            killed["run failed"] = f"{waited:.0f} s after the kill (worker {how})"
        elif waited > 60:
            instance.report_run_failed(run, "run worker killed (smoke_queue --kill-one)")
            killed["run failed"] = "still STARTED after 60 s: marked failed by hand"
        return
    retries = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
    if retries:
        retry = retries[0]
        killed["retry"] = f"{retry.run_id[:8]}, {waited:.0f} s after the kill: {retry.status.value}"
        if retry.status == dg.DagsterRunStatus.SUCCESS:
            killed["outcome"] = "retry succeeded"
        elif retry.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            killed["outcome"] = f"retry {retry.status.value}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--domains-per-run", type=int, default=30)
    parser.add_argument("--kill-one", action="store_true", help="kill -9 one run worker mid-fetch")
    parser.add_argument(
        "--kill-warm", action="store_true", help="with --kill-one: a worker the warm launcher forked"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import dagster as dg
    import polars as pl
    import psycopg
    from dagster_graphql import DagsterGraphQLClient

    from enrichment_pipeline.lib.warehouse import Warehouse

    tmp = Path(tempfile.mkdtemp(prefix="ep_smoke_queue_"))
    home = tmp / "dagster"
    home.mkdir()
    config = (ROOT / "deploy" / "dagster.yaml").read_text()
    if args.kill_one:
        config = config.replace("poll_interval_seconds: 60", "poll_interval_seconds: 5")
        config = config.replace(
            "free_slots_after_run_end_seconds: 300", "free_slots_after_run_end_seconds: 5"
        )
    (home / "dagster.yaml").write_text(config)
    names = {role: f"ep_smoke_{role}_{secrets.token_hex(4)}" for role in ("instance", "warehouse")}
    warehouse_url = with_database(args.postgres_url, names["warehouse"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PG_", "ENRICHMENT_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            **postgres_env(with_database(args.postgres_url, names["instance"])),
            "WAREHOUSE_URL": warehouse_url,
            "ENRICHMENT_MODE": "sandbox",
            "ENRICHMENT_PROVIDERS": "builtwith,similarweb",
            "DAGSTER_EVENT_BATCH_SIZE": "1000",
        }
    )
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", *postgres_env(args.postgres_url))})
    procs: list[subprocess.Popen] = []
    report: dict[str, object] = {}
    ok = False
    with psycopg.connect(args.postgres_url, autocommit=True) as admin:
        for name in names.values():
            admin.execute(f"CREATE DATABASE {name}")
    try:
        dagster = str(Path(sys.executable).with_name("dagster"))
        subprocess.run([dagster, "instance", "concurrency", "set", POOL, "1"], env=env, check=True, cwd=tmp)
        domains = [f"company{i}.com" for i in range(args.runs * args.domains_per_run)]
        chunks = [domains[i : i + args.domains_per_run] for i in range(0, len(domains), args.domains_per_run)]
        instance = dg.DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions("domains", domains)
        limit = instance.get_concurrency_config().run_queue_config.max_concurrent_runs  # type: ignore[union-attr]

        port = free_port()
        for command in (
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                "-w",
                "workspace.yaml",
                "-p",
                str(port),
            ],
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        ):
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=open(tmp / f"{Path(command[0]).name}.log", "w"),  # noqa: SIM115
                    start_new_session=True,
                )
            )
        log(f"webserver on 127.0.0.1:{port} and daemon started; DAGSTER_HOME {home}")
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the webserver did not come up"
                time.sleep(1)

        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_ids: list[str] = []
        submitted_at = time.monotonic()
        for chunk in chunks:
            while True:
                try:
                    run_ids.append(
                        client.submit_job_execution(
                            "enrich_domains",
                            run_config={"ops": {"raw__provider_responses": {"config": {"force": False}}}},
                            tags={
                                "dagster/asset_partition_range_start": chunk[0],
                                "dagster/asset_partition_range_end": chunk[-1],
                                "enrichment/source": "smoke_queue",
                            },
                        )
                    )
                    break
                except Exception as exc:  # the code location may still be loading
                    assert time.monotonic() < deadline, f"cannot submit: {exc}"
                    time.sleep(2)
        log(f"submitted {len(run_ids)} runs")

        in_progress = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
        finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
        max_running = max_claimed = max_queued = 0
        killed: dict[str, object] = {}
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if args.kill_one and not killed:
                killed = kill_a_fetching_worker(instance, run_ids, warm_only=args.kill_warm)
            elif killed and "outcome" not in killed:
                follow_up_on_the_killed_run(instance, killed)
            statuses = [
                r.dagster_run.status for r in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
            ]
            running = sum(s in in_progress for s in statuses)
            queued = sum(s == dg.DagsterRunStatus.QUEUED for s in statuses)
            claimed = instance.event_log_storage.get_concurrency_info(POOL).active_slot_count
            max_running, max_queued, max_claimed = (
                max(max_running, running),
                max(max_queued, queued),
                max(max_claimed, claimed),
            )
            if all(s in finished for s in statuses) and (not args.kill_one or "outcome" in killed):
                break
            assert time.monotonic() < deadline, f"runs not finished after {TIMEOUT_S} s: {statuses}"
            time.sleep(0.25)
        elapsed = time.monotonic() - submitted_at

        with Warehouse.open(warehouse_url, read_only=True) as wh:
            raw = wh.table("raw.provider_responses")
        windows = (
            raw.group_by("run_id")
            .agg(pl.col("fetched_at").min().alias("first"), pl.col("fetched_at").max().alias("last"))
            .sort("first")
        )
        took_turns = all(windows["last"][i] <= windows["first"][i + 1] for i in range(windows.height - 1))
        per_domain = raw.group_by("domain").len()
        succeeded = sum(s == dg.DagsterRunStatus.SUCCESS for s in statuses)
        # A killed run was failed by hand; its automatic retry stands in for it.
        succeeded += killed.get("outcome") == "retry succeeded"
        report = {
            "runs submitted": len(run_ids),
            "runs succeeded (a killed run: its retry)": succeeded,
            "wall time, first submit to last finish": f"{elapsed:.0f} s",
            f"most runs in progress at once (limit {limit})": max_running,
            "most runs queued at once": max_queued,
            f"most `{POOL}` slots claimed at once (limit 1)": max_claimed,
            "runs whose fetches overlapped another's": "none" if took_turns else "SOME",
            "domains with all 7 rows": f"{int((per_domain['len'] == 7).sum())} / {len(domains)}",
        }
        report.update({f"kill -9: {k}": v for k, v in killed.items() if k not in ("run", "killed_at")})
        ok = (
            succeeded == len(run_ids)
            and max_running <= limit
            and max_claimed <= 1
            and took_turns
            and set(raw["domain"]) == set(domains)
            and per_domain["len"].unique().to_list() == [7]
        )
        instance.dispose()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the group this script started
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            # What outlived its leader too: the code servers the webserver and the daemon started
            # wait for executions on SIGTERM, and were seen waiting forever once the daemon was gone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with psycopg.connect(args.postgres_url, autocommit=True) as admin:
            for name in names.values():
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp} (webserver and daemon logs) for a look")

    print("\n| smoke_queue check | value |\n|---|---|")
    for key, value in report.items():
        print(f"| {key} | {value} |")
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
