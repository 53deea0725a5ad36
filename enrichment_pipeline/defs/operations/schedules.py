"""`stale_reenrich_schedule`: once a day, re-enrich what the cache no longer answers, within quotas.

Targets: domains with a provider row past its TTL (`lib/staleness.stale_domains`,
SQL over `raw.provider_responses`) and registered domains with no row at all
(a crashed run, a sensor tick lost between registering and launching),
counting only the providers a run would call, in the run's mode.

Why one range run from the first target to the last, and not one run per
stale key: a run with `force` off serves every fresh answer from cache, so the
fresh domains between two stale ones cost no call. The range is therefore as
cheap as the stale keys alone, and one run per tick is one fetch pass and one
rebuild of the marts. That only holds while every key inside the range is
either a target or free, so the tick checks it with `lib/cost.py` on the cache:
a key that would cost calls but is not a target (a provider enabled since it
was enriched), a target beyond the day's quota or the per-run budget
(`ENRICHMENT_MAX_COST_USD`), or a key a running enrichment covers, ends the
range and a later target starts another. Hence usually one run, at most
`MAX_RUNS_PER_TICK` (3); what does not fit waits for the next day.

Quota: the estimated upper-bound calls of each provider over all of the tick's
runs must fit what is left of its `<P>_DAILY_QUOTA` today. Lower waterfall
levels are counted at their upper bound, so the cut is on the safe side.

Turn on: Dagster UI → Automation → `stale_reenrich_schedule` → toggle on (or
`dagster schedule start stale_reenrich_schedule`). Daily at 03:00 UTC (`CRON_SCHEDULE`), at
most `MAX_DOMAINS_PER_TICK` targets a tick.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from enrichment_pipeline.defs.operations.jobs import (
    ENRICH_JOB_NAME,
    RANGE_END,
    RANGE_START,
    enrich_job,
    range_run_request,
)
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.lib import cost, staleness
from enrichment_pipeline.lib.domains import normalize_domains
from enrichment_pipeline.lib.partition_keys import SOURCE_TAG
from enrichment_pipeline.lib.warehouse import Warehouse, WarehouseError
from enrichment_pipeline.lib.waterfall import load_waterfall

STALE_SCHEDULE_NAME = "stale_reenrich_schedule"
CRON_SCHEDULE = "0 3 * * *"
MAX_DOMAINS_PER_TICK = 2000  # targets per tick
MAX_SPAN = 20_000  # partition keys one tick estimates, from the first target on
MAX_RUNS_PER_TICK = 3
WAREHOUSE_WAIT_S = 30.0
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def busy_keys(instance: dg.DagsterInstance, keys: Sequence[str]) -> set[str]:
    """Partitions that queued or running `enrich_domains` runs cover."""
    position = {k: i for i, k in enumerate(keys)}
    busy: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=ENRICH_JOB_NAME, statuses=_IN_FLIGHT)):
        start, end = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
        single = run.tags.get("dagster/partition")
        if start in position and end in position:
            busy.update(keys[position[start] : position[end] + 1])
        elif single:
            busy.add(single)
    return busy


@dg.schedule(
    name=STALE_SCHEDULE_NAME,
    job=enrich_job,
    cron_schedule=CRON_SCHEDULE,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Re-enriches domains whose cached answers are past their TTL (or were never fetched), "
        "within each provider's daily quota and ENRICHMENT_MAX_COST_USD, in one range run."
    ),
)
def stale_reenrich_schedule(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource, providers: ProvidersResource
) -> list[dg.RunRequest] | dg.SkipReason:
    now = context.scheduled_execution_time or datetime.now(UTC)
    setup = providers.setup()
    active = [p.name for p, _ in setup.active]
    waterfall = load_waterfall()
    budget = cost.max_cost_usd()
    keys = list(context.instance.get_dynamic_partitions(domains_partitions.name))
    registered = set(keys)
    try:
        wh_ctx = Warehouse.open(warehouse.resolved_url(), lock_wait_s=WAREHOUSE_WAIT_S)
    except WarehouseError as exc:
        return dg.SkipReason(f"warehouse not available: {exc}")
    with wh_ctx as wh:
        stale = staleness.stale_domains(wh, now, mode=setup.mode, providers=active)
        candidates = [k for k in stale if k in registered]
        candidates += staleness.unfetched_domains(wh, keys, mode=setup.mode)
        # A key added by hand in the UI may be junk: the raw asset never fetches it, so never a target.
        valid, _ = normalize_domains(candidates)
        targets = set(valid) & set(candidates)
        if not targets:
            return dg.SkipReason("nothing is stale")
        first = min(i for i, k in enumerate(keys) if k in targets)
        span = keys[first : first + MAX_SPAN]
        needs = cost.domain_needs(wh, span, now, setup.mode, setup.active, waterfall)
        used = cost.quota_used(wh, setup.active, now)
    quota_left = {
        p.name: None if limits.daily_quota is None else max(0, limits.daily_quota - used[p.name])
        for p, limits in setup.active
    }
    plan = staleness.plan_refresh(
        span,
        targets,
        needs,
        setup.active,
        quota_left=quota_left,
        budget=budget,
        busy=busy_keys(context.instance, keys),
        max_domains=MAX_DOMAINS_PER_TICK,
        max_ranges=MAX_RUNS_PER_TICK,
    )
    for key, reason in list(plan.deferred.items())[:20]:
        context.log.info(f"{key} waits: {reason}")
    if not plan.ranges:
        if not plan.deferred:
            return dg.SkipReason(
                f"{len(targets)} stale domain(s), but a run would call no provider for them "
                "(their expired rows belong to providers the waterfall no longer needs)"
            )
        reasons = "; ".join(sorted(set(plan.deferred.values())))
        return dg.SkipReason(f"{len(targets)} stale domain(s), none fits today: {reasons}")
    day = now.astimezone(UTC).strftime("%Y-%m-%d")
    requests = []
    for r in plan.ranges:
        estimate = cost.summarize(
            {k: needs.get(k, {}) for k in r.keys},
            setup.active,
            waterfall=waterfall,
            quota_used=used,
            mode=setup.mode,
        )
        digest = hashlib.sha256(f"{r.start}\n{r.end}".encode()).hexdigest()[:16]
        requests.append(
            range_run_request(
                r.start,
                r.end,
                run_key=f"stale-{day}-{digest}",
                tags={
                    SOURCE_TAG: STALE_SCHEDULE_NAME,
                    "enrichment/stale_domains": str(len(r.targets)),
                    "enrichment/range_domains": str(len(r.keys)),
                    "enrichment/estimated_cost_usd": f"{estimate.cost_min:.2f}..{estimate.cost_max:.2f}",
                },
            )
        )
        context.log.info(
            f"re-enriching {len(r.targets)} stale of {len(r.keys)} domain(s) {r.start}..{r.end}, "
            f"up to {estimate.calls_max} calls / ${estimate.cost_max:.2f}"
        )
    return requests
