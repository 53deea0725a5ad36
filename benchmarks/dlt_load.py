"""The dlt side of bench_vs_dlt.py: fetch BuiltWith's Domain API for each domain, land it in DuckDB.

Runs in its own interpreter (a separate virtualenv with dlt; dlt is never a dependency of the
project). What a plain loader does for the same fetch-and-land: one GET per domain against the
local simulator, `--workers` requests in flight (dlt's parallelized transformer on its extract
thread pool, one shared keep-alive client), rows (domain, HTTP status, body) into a DuckDB
table through dlt's normalize and load steps. Prints one JSON line: seconds inside the script,
rows loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--domains", required=True)
    parser.add_argument("--duckdb", required=True)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    os.environ["EXTRACT__WORKERS"] = str(args.workers)
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

    import dlt
    import httpx

    with open(args.domains) as f:
        domains = [line.strip() for line in f if line.strip()]
    client = httpx.Client(
        base_url=args.server,
        timeout=30,
        limits=httpx.Limits(max_connections=args.workers, max_keepalive_connections=args.workers),
    )

    @dlt.resource(name="domains", selected=False)
    def domain_list():
        for d in domains:
            yield {"domain": d}

    @dlt.transformer(data_from=domain_list, name="builtwith_responses", parallelized=True)
    def builtwith(item):
        response = client.get("/v22/api.json", params={"KEY": "bench-dummy-key", "LOOKUP": item["domain"]})
        yield {"domain": item["domain"], "http_status": response.status_code, "payload": response.text}

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{os.getpid()}",
        destination=dlt.destinations.duckdb(args.duckdb),
        dataset_name="raw",
        pipelines_dir=os.path.join(os.path.dirname(args.duckdb), "dlt_pipelines"),
    )
    pipeline.run(builtwith, write_disposition="merge", primary_key="domain")
    with pipeline.sql_client() as sql:
        rows = sql.execute_sql("SELECT count(*) FROM builtwith_responses")[0][0]
    print(json.dumps({"script_s": round(time.perf_counter() - started, 2), "rows": rows}))
    return 0 if rows == len(domains) else 1


if __name__ == "__main__":
    sys.exit(main())
