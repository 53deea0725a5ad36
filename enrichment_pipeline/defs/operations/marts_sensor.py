"""`marts_after_enrichment`: the marts are rebuilt after every successful run that wrote them.

It reads which assets an enrichment writes from `defs/enrichment.py` (the enrichment part alone),
so it needs nothing of the code location it belongs to.
"""

import dagster as dg

from enrichment_pipeline.defs.enrichment import enrichment_defs
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, marts_job
from enrichment_pipeline.lib.partition_keys import API_JOB_TAG

# Below the daemon's sensor loop (one pass every 5 s), so the sensor is evaluated on every pass.
# At 5 s, a pass that started a few milliseconds less than 5 s after the previous tick skipped
# the sensor, so it ran every 10 s and a marts run started up to 10 s after its enrichment.
MARTS_SENSOR_INTERVAL_S = 1


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
    run = context.dagster_run
    if API_JOB_TAG in run.tags:
        # The read API waits for its run and rebuilds the marts itself right after (no sensor delay).
        return dg.SkipReason("run of an API enrichment job: the API rebuilds the marts")
    enrich_keys = frozenset(enrichment_defs.resolve_job_def(ENRICH_JOB_NAME).asset_layer.selected_asset_keys)
    if not enriched_tables_changed(run, enrich_keys):
        return dg.SkipReason(f"run {run.run_id} wrote no enrichment table")
    return dg.RunRequest(run_key=f"marts-after-{run.run_id}")
