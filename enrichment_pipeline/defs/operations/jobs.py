"""Jobs: enrich a set of domains; rebuild the BI marts and publish them to the serving file.

The sensor and the schedule ask for enrichment runs over a partition range (`range_run_request`);
the marts follow every enrichment (`marts_sensor.py`).

Every job runs its steps in the run worker's own process (`in_process_executor`): a launched run
imports the code location once, not once more per step, and the steps here are few and mostly
wait on HTTP or the warehouse, which the fetch step already runs concurrently.
"""

from collections.abc import Mapping

import dagster as dg

from enrichment_pipeline.defs.partitions import domains_partitions

ENRICH_JOB_NAME = "enrich_domains"
MARTS_JOB_NAME = "build_marts"
ENRICH_GROUPS = ("raw", "staging", "profiles", "scoring", "history")
MARTS_GROUPS = ("marts_dbt", "serving")
RAW_OP = "raw__provider_responses"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

enrich_job = dg.define_asset_job(
    ENRICH_JOB_NAME,
    selection=dg.AssetSelection.groups(*ENRICH_GROUPS),
    partitions_def=domains_partitions,
    executor_def=dg.in_process_executor,
    description="Fetch, validate, merge and score the run's domains (one run for any number of domains).",
)

# dbt builds and the serving snapshot read whole tables: one run after the enrichment,
# not once per partition range, and a failing dbt test never undoes an enrichment.
marts_job = dg.define_asset_job(
    MARTS_JOB_NAME,
    selection=dg.AssetSelection.groups(*MARTS_GROUPS),
    executor_def=dg.in_process_executor,
    description="dbt build (models + tests) on the warehouse, then publish the marts to the serving file.",
)


def range_run_request(start: str, end: str, run_key: str, tags: Mapping[str, str]) -> dg.RunRequest:
    """One `enrich_domains` run over the partition range start..end, cache on (`force` off)."""
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {RAW_OP: {"config": {"force": False}}}},
        tags={RANGE_START: start, RANGE_END: end, **tags},
    )
