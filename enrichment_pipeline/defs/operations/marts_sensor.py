"""`marts_after_enrichment`: the marts are rebuilt after every successful run that wrote them.

It reads which assets an enrichment writes from `defs/enrichment.py` (the enrichment part alone),
so it needs nothing of the code location it belongs to.
"""

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import BACKFILL_ID_TAG

from enrichment_pipeline.defs.enrichment import enrichment_defs
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, marts_job
from enrichment_pipeline.lib.partition_keys import API_JOB_TAG

# Dagster's smallest interval (0 means its default, 30 s). The daemon's sensor loop passes every
# second with the project's dagster.yaml (every 5 s with Dagster's own), so the sensor is evaluated
# every second or two: a pass that starts a few milliseconds early finds the interval not yet
# elapsed. Against Dagster's 5-s loop it is evaluated on every pass.
MARTS_SENSOR_INTERVAL_S = 1


def enriched_tables_changed(run: dg.DagsterRun, enrich_keys: frozenset[dg.AssetKey]) -> bool:
    """Whether a successful run wrote any enrichment table (the marts read them all)."""
    if run.job_name == ENRICH_JOB_NAME:
        return True
    selection = run.asset_selection
    return bool(selection and selection & enrich_keys)


def backfill_still_running(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why the marts should wait for more of the backfill this run belongs to, if they should.

    The partition dialog's backfill over the enrichment assets is two runs: the `domains`
    partitions of the raw asset (one run, `BackfillPolicy.single_run`), then, on the backfill
    daemon's next pass, the unpartitioned tables downstream. Rebuilding the marts after the first
    would build them twice and race the second run for the warehouse; they are rebuilt once,
    after the backfill's last run (or after its last successful one, if it was canceled or
    failed before requesting the rest)."""
    backfill_id = run.tags.get(BACKFILL_ID_TAG)
    if not backfill_id:
        return None
    backfill = instance.get_backfill(backfill_id)
    # A canceled or failed backfill requests nothing more: its successful runs are rebuilt after.
    active = backfill is not None and backfill.status == BulkActionStatus.REQUESTED
    data = backfill.asset_backfill_data if backfill and active else None
    if data is not None:
        unrequested = data.target_subset - data.requested_subset - data.failed_and_downstream_subset
        if not unrequested.is_empty:
            names = sorted(key.to_user_string() for key in unrequested.asset_keys)
            return f"backfill {backfill_id} has still to run {', '.join(names)}"
    records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    others = [r for r in records if r.dagster_run.run_id != run.run_id]
    running = [r for r in others if r.dagster_run.status in IN_PROGRESS_RUN_STATUSES]
    if running:
        return f"backfill {backfill_id} has {len(running)} more run(s) in progress"
    # A sensor that falls behind (a busy or restarted daemon) sees both runs' successes at once:
    # only the later one rebuilds.
    ended = next((r.end_time for r in records if r.dagster_run.run_id == run.run_id), None) or 0.0
    later = [
        r
        for r in others
        if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS and (r.end_time or 0.0) > ended
    ]
    if later:
        return f"run {later[0].dagster_run.run_id} of backfill {backfill_id} ended later"
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=marts_job,
    minimum_interval_seconds=MARTS_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Rebuilds the marts after every successful run that wrote enrichment tables: the "
        "enrich_domains job (UI, schedule, sensor, CLI) or the UI's Materialize on those assets "
        "(a backfill: after its last run)."
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
    waiting = backfill_still_running(context.instance, run)
    if waiting:
        return dg.SkipReason(f"run {run.run_id}: {waiting}; the marts are rebuilt after its last run")
    return dg.RunRequest(run_key=f"marts-after-{run.run_id}")
