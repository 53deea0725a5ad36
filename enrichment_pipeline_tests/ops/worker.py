"""One `enrich_domains` run in a process of its own, like a Dagster run worker.

    DAGSTER_HOME=... python -m enrichment_pipeline_tests.ops.worker --warehouse-url URL [options] DOMAIN...

The domains are registered as `domains` partitions (appended if new) and must
form one range in the partition order. Providers answer from the sandbox
simulators through an httpx transport that waits `--latency-ms` per request,
like a slow network; with `--live` they are called over HTTP in live mode
instead, at the base URLs, keys and rate limits the environment gives. With
`--wait-for-go` the worker prints `ready` once it has imported everything and
waits for a line on stdin, so tests can start two runs at the same moment. The
last line of stdout is a JSON summary.

Two runs at once are two processes (as in a real deployment), not two threads:
`execute_in_process` on an instance loaded from a dagster.yaml calls
`logging.config.dictConfig` at every run start, which can deadlock against the
other thread's event logging.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse-url", required=True)
    parser.add_argument("--providers", default="builtwith,similarweb")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--wait-for-go", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("domains", nargs="+")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import dagster as dg
    import httpx

    from enrichment_pipeline.cli import contiguous_ranges
    from enrichment_pipeline.definitions import defs
    from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME
    from enrichment_pipeline.defs.partitions import domains_partitions
    from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
    from enrichment_pipeline.lib.sandbox.transport import sandbox_handler

    delay = args.latency_ms / 1000

    async def slow_sandbox(request: httpx.Request) -> httpx.Response:
        if delay:
            await asyncio.sleep(delay)
        return sandbox_handler(request)

    job = defs.resolve_job_def(ENRICH_JOB_NAME)
    with dg.DagsterInstance.get() as instance:
        name = domains_partitions.name
        known = set(instance.get_dynamic_partitions(name))
        new = [d for d in args.domains if d not in known]
        if new:
            instance.add_dynamic_partitions(name, new)
        ranges = contiguous_ranges(instance.get_dynamic_partitions(name), args.domains)
        if len(ranges) != 1:
            raise SystemExit(f"the domains are not one partition range: {ranges}")
        ((start, end),) = ranges
        if args.wait_for_go:
            print("ready", flush=True)
            sys.stdin.readline()
        resources = {
            "warehouse": WarehouseResource(url=args.warehouse_url),
            "providers": ProvidersResource(
                mode="live" if args.live else "sandbox", providers=args.providers.split(",")
            ),
        }
        if not args.live:
            resources["http_transport"] = httpx.MockTransport(slow_sandbox)
        result = job.execute_in_process(
            run_config={
                "ops": {"raw__provider_responses": {"config": {"force": args.force}}},
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": start,
                "dagster/asset_partition_range_end": end,
            },
            resources=resources,
            raise_on_error=False,
        )
        failures = [
            f"{e.event_type_value} {e.step_key or ''}: {e.message} {_error(e)}".strip()
            for e in result.all_events
            if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE", "PIPELINE_FAILURE")
            or (e.event_type_value == "ENGINE_EVENT" and _error(e))
        ]
        raw = result.asset_materializations_for_node("raw__provider_responses")
        metadata = {k: v.value for k, v in raw[0].metadata.items()} if raw else {}
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "success": result.success,
                    "status": result.dagster_run.status.value,
                    "last_events": [e.event_type_value for e in result.all_events[-5:]],
                    "failures": failures,
                    "calls": metadata.get("calls"),
                    "provider_calls": {
                        k.removeprefix("provider/"): v.get("calls")
                        for k, v in metadata.items()
                        if k.startswith("provider/") and isinstance(v, dict)
                    },
                    "cache_hits": metadata.get("cache_hits"),
                },
                default=str,
            ),
            flush=True,
        )
    return 0 if result.success else 1


def _error(event) -> str:
    data = event.event_specific_data
    error = getattr(data, "error", None)
    return error.to_string() if error is not None else ""


if __name__ == "__main__":
    sys.exit(main())
