"""Raw provider answers, one partition per domain.

This is the only per-domain-partitioned asset: Dagster writes two events per
partition per asset, so the per-domain status lives here and everything
downstream is computed as whole tables from `raw.provider_responses`.
"""

import asyncio
from datetime import UTC, datetime

import dagster as dg
import httpx

from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.resources import ProgressReporter, ProvidersResource, WarehouseResource
from enrichment_pipeline.lib import cost
from enrichment_pipeline.lib.domains import normalize_domains
from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains, fresh_answers
from enrichment_pipeline.lib.http_policy import ProviderStats
from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES
from enrichment_pipeline.lib.warehouse import ResponseRow
from enrichment_pipeline.lib.waterfall import load_waterfall

RAW_KEY = dg.AssetKey(["raw", "provider_responses"])


class FetchConfig(dg.Config):
    force: bool = False  # ignore the cache and call every provider again


@dg.asset(
    key=RAW_KEY,
    partitions_def=domains_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # With deploy/dagster.yaml one fetch step runs at a time across all runs, so each provider's
    # per-process rate limit also holds across concurrent runs (quotas hold regardless).
    pool="provider_calls",
    group_name="raw",
    kinds={"python", "duckdb"},
    description=__doc__,
)
def provider_responses(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    warehouse: WarehouseResource,
    providers: ProvidersResource,
    progress: dg.ResourceParam[ProgressReporter],
    http_transport: dg.ResourceParam[httpx.AsyncBaseTransport | None],
) -> dg.MaterializeResult:
    """Every provider's answer for each domain of the run (cached within its TTL)."""
    domains, rejected = normalize_domains(context.partition_keys)
    for bad in rejected:
        # Partitions can be added by hand in the UI; junk is never sent to a provider.
        context.log.warning(f"not fetching {bad.raw!r}: {bad.reason}")
    setup = providers.setup(http_transport)
    waterfall = load_waterfall()
    waterfall.check_providers(PROVIDER_NAMES)
    for name, reason in setup.skipped.items():
        context.log.warning(f"{name} skipped: {reason}")
    now = datetime.now(UTC)
    with warehouse.open() as wh:
        plan = FetchPlan(domains=domains)
        if not config.force:
            for provider, _ in setup.active:
                plan.fresh[provider.name], plan.cached[provider.name] = fresh_answers(
                    wh.query, provider.name, domains, setup.mode, now
                )
        # Refuse before any call when the run's upper-bound cost is over ENRICHMENT_MAX_COST_USD.
        estimate = cost.summarize(
            cost.plan_needs(domains, setup.active, waterfall, plan.fresh, plan.cached),
            setup.active,
            waterfall=waterfall,
            quota_used=cost.quota_used(wh, setup.active, now),
            mode=setup.mode,
            forced=config.force,
        )
        try:
            cost.enforce_budget(estimate)
        except cost.BudgetExceeded as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"estimate": dg.MetadataValue.json(estimate.summary())},
                allow_retries=False,
            ) from None
        skipped_rows = [
            ResponseRow(
                name,
                "*",
                d,
                "skipped",
                None,
                None,
                reason,
                now,
                now,
                0,
                None,
                0.0,
                setup.mode,
                context.run_id,
            )
            for name, reason in setup.skipped.items()
            for d in domains
        ]
        wh.write_responses(skipped_rows)

        def report(done: int, total: int) -> None:
            progress.update(done, total)
            if done == total or done % max(1, total // 10) == 0:
                context.log.info(f"fetched {done}/{total} domains")

        live: dict[str, ProviderStats] = {}
        progress.watch(live)
        report_ = asyncio.run(
            fetch_domains(
                setup.active,
                plan,
                # Each answer is durable within a fraction of a second (journal); a domain goes
                # into raw.provider_responses whole, once no provider is left to ask.
                write=wh.journal_responses,
                complete=wh.complete_responses,
                mode=setup.mode,
                waterfall=waterfall,
                run_id=context.run_id,
                transport=setup.transport,
                ledger=wh,
                progress=report,
                logger=context.log,
                stats=live,
            )
        )
    totals = {
        "calls": sum(s.calls for s in report_.stats.values()),
        "cache_hits": sum(s.cache_hits for s in report_.stats.values()),
        "retries": sum(s.retries for s in report_.stats.values()),
        "calls_saved_by_waterfall": sum(s.calls_saved for s in report_.stats.values()),
        "cost_usd": round(sum(s.cost for s in report_.stats.values()), 4),
    }
    metadata: dict[str, object] = {
        "domains": len(domains),
        "invalid_domains": len(rejected),
        "mode": setup.mode,
        **totals,
        "rows_written": report_.rows_written,
        "fetch_seconds": round(report_.seconds, 2),
        "skipped_providers": dg.MetadataValue.json(setup.skipped),
        "disabled_providers": dg.MetadataValue.json(report_.disabled),
    }
    for name, stats in report_.stats.items():
        metadata[f"provider/{name}"] = dg.MetadataValue.json(stats.summary())
    return dg.MaterializeResult(metadata=metadata)
