"""Jobs: enrich a set of domains; rebuild the BI marts and publish them to the serving file.

Every job runs its steps in the run worker's own process (`in_process_executor`): a launched run
imports the code location once, not once more per step, and the steps here are few and mostly
wait on HTTP or the warehouse, which the fetch step already runs concurrently.
"""

import dagster as dg

from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.lib.partition_keys import API_JOB_TAG

ENRICH_JOB_NAME = "enrich_domains"
MARTS_JOB_NAME = "build_marts"
ENRICH_GROUPS = ("raw", "normalized", "profiles", "scoring", "history")
MARTS_GROUPS = ("marts_dbt", "serving")
# The run-status sensor ticks this often (the daemon's sensor loop runs every 5 s at best).
MARTS_SENSOR_INTERVAL_S = 5

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


def enriched_tables_changed(run: dg.DagsterRun, enrich_keys: frozenset[dg.AssetKey]) -> bool:
    """Whether a successful run wrote any enrichment table (the marts read them all)."""
    if run.job_name == ENRICH_JOB_NAME:
        return True
    selection = run.asset_selection
    return bool(selection and selection & enrich_keys)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=marts_job,
    minimum_interval_seconds=MARTS_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Rebuilds the marts after every successful run that wrote enrichment tables: the "
        "enrich_domains job (UI, schedule, sensor, CLI) or the UI's Materialize on those assets."
    ),
)
def marts_after_enrichment(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    from enrichment_pipeline.definitions import defs

    run = context.dagster_run
    if API_JOB_TAG in run.tags:
        # The read API waits for its run and rebuilds the marts itself right after (no sensor delay).
        return dg.SkipReason("run of an API enrichment job: the API rebuilds the marts")
    enrich_keys = frozenset(defs.resolve_job_def(ENRICH_JOB_NAME).asset_layer.selected_asset_keys)
    if not enriched_tables_changed(run, enrich_keys):
        return dg.SkipReason(f"run {run.run_id} wrote no enrichment table")
    return dg.RunRequest(run_key=f"marts-after-{run.run_id}")
