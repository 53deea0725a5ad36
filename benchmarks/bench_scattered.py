"""Re-enriching a scattered set of domains: one run per partition range vs one run with a set.

    .venv/bin/python benchmarks/bench_scattered.py               # 100 of 1,000 domains
    .venv/bin/python benchmarks/bench_scattered.py --registered 2000 --scattered 300

On a fresh DAGSTER_HOME with the project's dagster.yaml and a fresh DuckDB warehouse (sandbox
mode, offline; BuiltWith and SimilarWeb), --registered domains are enriched once; then every
--step-th of them (the "scattered" set, e.g. the failed ones) is re-enriched with `force` two ways:

* ranges: what a UI backfill of those keys does: one `enrich_domains` run per contiguous range of
  partition keys (here every key is its own range), each run rebuilding the tables downstream;
* one run: ONE `enrich_domains` run on the first key of the set, with the raw step's config
  `domains: [the rest]` (what the Launchpad takes): every domain gets its own partition
  materialization and the tables downstream are rebuilt once.

Runs are in-process (`execute_in_process`), so the figures leave out what each launched run adds
on top (a run worker process: several seconds each, see bench_launch.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registered", type=int, default=1000)
    parser.add_argument("--scattered", type=int, default=100)
    parser.add_argument(
        "--max-range-runs", type=int, default=100, help="stop the ranges side after this many"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="ep_scattered_"))
    os.environ.update(
        {
            "DAGSTER_HOME": str(tmp / "dagster"),
            "WAREHOUSE_URL": f"duckdb:///{tmp / 'w.duckdb'}",
            "ENRICHMENT_MODE": "sandbox",
            "ENRICHMENT_PROVIDERS": "builtwith,similarweb",
        }
    )
    try:
        import dagster as dg

        from enrichment_pipeline.definitions import defs
        from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME
        from enrichment_pipeline.instance import install_instance_config

        install_instance_config(tmp / "dagster")
        instance = dg.DagsterInstance.get()
        job = defs.resolve_job_def(ENRICH_JOB_NAME)
        keys = [f"company{i:05d}.com" for i in range(1, args.registered + 1)]
        instance.add_dynamic_partitions("domains", keys)
        quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

        def run(tags: dict[str, str], raw_config: dict) -> float:
            started = time.perf_counter()
            result = job.execute_in_process(
                run_config={**quiet, "ops": {"raw__provider_responses": {"config": raw_config}}},
                instance=instance,
                tags=tags,
                raise_on_error=False,
            )
            assert result.success, "run failed"
            return time.perf_counter() - started

        first = run(
            {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
            {},
        )
        print(f"initial run over {len(keys)} domains: {first:.1f} s", file=sys.stderr)
        step = max(2, args.registered // args.scattered)
        scattered = keys[::step][: args.scattered]

        ranges_runs = min(len(scattered), args.max_range_runs)
        started = time.perf_counter()
        for key in scattered[:ranges_runs]:
            run({"dagster/partition": key}, {"force": True})
        ranges_s = time.perf_counter() - started
        one_s = run({"dagster/partition": scattered[0]}, {"force": True, "domains": scattered[1:]})
        extrapolated = ranges_s / ranges_runs * len(scattered)
        load = os.getloadavg()
        print(
            f"{len(scattered)} scattered of {len(keys)} domains (sandbox, BuiltWith + SimilarWeb, force), "
            f"in-process runs, load average {load[0]:.1f}:\n\n"
            "| how | runs | seconds |\n|---|---:|---:|\n"
            f"| one run per range (UI backfill of the keys) | {ranges_runs} | {ranges_s:.1f}"
            + (f" ({extrapolated:.0f} for all {len(scattered)})" if ranges_runs < len(scattered) else "")
            + " |\n"
            f"| one run with `domains: [...]` | 1 | {one_s:.1f} |"
        )
        instance.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
