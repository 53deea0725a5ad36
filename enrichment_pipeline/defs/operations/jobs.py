"""Jobs: enrich a set of domains; rebuild the BI marts and publish them to the serving file."""

import dagster as dg

from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.lib.partition_keys import API_JOB_TAG

ENRICH_JOB_NAME = "enrich_domains"
MARTS_JOB_NAME = "build_marts"

enrich_job = dg.define_asset_job(
    ENRICH_JOB_NAME,
    selection=dg.AssetSelection.groups("raw", "normalized", "profiles", "scoring", "history"),
    partitions_def=domains_partitions,
    description="Fetch, validate, merge and score the run's domains (one run for any number of domains).",
)

# dbt builds and the serving snapshot read whole tables: one run after the enrichment,
# not once per partition range, and a failing dbt test never undoes an enrichment.
marts_job = dg.define_asset_job(
    MARTS_JOB_NAME,
    selection=dg.AssetSelection.groups("marts_dbt", "serving"),
    description="dbt build (models + tests) on the warehouse, then publish the marts to the serving file.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[enrich_job],
    request_job=marts_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds the marts after every successful enrichment run (UI, schedule or sensor).",
)
def marts_after_enrichment(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    if API_JOB_TAG in context.dagster_run.tags:
        # The read API waits for its run and rebuilds the marts itself right after (no sensor delay).
        return dg.SkipReason("run of an API enrichment job: the API rebuilds the marts")
    return dg.RunRequest(run_key=f"marts-after-{context.dagster_run.run_id}")
