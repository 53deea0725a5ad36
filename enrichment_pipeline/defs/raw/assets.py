"""Raw provider answers, one partition per domain.

This is the only per-domain-partitioned asset: Dagster writes two events per
partition per asset, so the per-domain status lives here and everything
downstream is computed as whole tables from `raw.provider_responses`.
"""

import asyncio

import dagster as dg
import httpx

from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.resources import (
    FETCH_LOCK,
    ProgressReporter,
    ProvidersResource,
    WarehouseResource,
)
from enrichment_pipeline.lib import cost, reenrich
from enrichment_pipeline.lib.domains import normalize_domains
from enrichment_pipeline.lib.fetching import fetch_into
from enrichment_pipeline.lib.http_policy import ProviderStats
from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES
from enrichment_pipeline.lib.waterfall import load_waterfall

RAW_KEY = dg.AssetKey(["raw", "provider_responses"])


class FetchConfig(dg.Config):
    """Launchpad config of the raw step (`ops: raw__provider_responses: config:`).

    `domains`, `failed` and `tier` re-enrich a scattered set of domains in ONE run, besides the
    run's own partitions: Dagster runs one partition *range* per run, so picking scattered keys
    in the UI's backfill dialog makes one run per range. Launch any one partition (e.g. the
    first of the set) with this config; every domain of the set gets its own materialization
    (partition status) and the tables downstream are rebuilt once, in the same run.
    """

    force: bool = False  # ignore the cache and call every provider again
    domains: list[str] = []  # more domains to fetch (registered as partitions when new)
    failed: bool = False  # and every domain whose current answers all failed
    tier: str | None = None  # and every domain scored in this ICP tier (hot, warm, cool, cold)


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
    extra = _extra_domains(context, config, warehouse, setup.mode, set(domains))
    domains += extra
    waterfall = load_waterfall()
    waterfall.check_providers(PROVIDER_NAMES)
    for name, reason in setup.skipped.items():
        context.log.warning(f"{name} skipped: {reason}")

    def report(done: int, total: int) -> None:
        progress.update(done, total)
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"fetched {done}/{total} domains")

    live: dict[str, ProviderStats] = {}
    progress.watch(live)
    with warehouse.open(lock=FETCH_LOCK) as wh:
        try:
            report_ = asyncio.run(
                fetch_into(
                    wh,
                    domains,
                    providers=setup.active,
                    skipped=setup.skipped,
                    mode=setup.mode,
                    waterfall=waterfall,
                    force=config.force,
                    run_id=context.run_id,
                    transport=setup.transport,
                    progress=report,
                    logger=context.log,
                    stats=live,
                )
            )
        except cost.BudgetExceeded as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"estimate": dg.MetadataValue.json(exc.estimate.summary())},
                allow_retries=False,
            ) from None
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
    if extra:
        metadata["reenriched_domains"] = len(extra)
        # The partitions of the set outside the run's range: their own materialization each.
        for domain in extra:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=RAW_KEY, partition=domain, metadata={"reenriched_in_run": context.run_id}
                )
            )
    return dg.MaterializeResult(metadata=metadata)


def _extra_domains(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    warehouse: WarehouseResource,
    mode: str,
    run: set[str],
) -> list[str]:
    """The scattered set of `config` beyond the run's partitions, registered as partitions."""
    if not (config.domains or config.failed or config.tier):
        return []
    listed, refused = normalize_domains(config.domains)
    for bad in refused:
        context.log.warning(f"not re-enriching {bad.raw!r}: {bad.reason}")
    with warehouse.open(read_only=True) as wh:
        try:
            chosen = reenrich.select(wh, mode=mode, failed=config.failed, tier=config.tier, listed=listed)
        except reenrich.SelectionError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
    extra = [d for d in chosen if d not in run]
    known = set(context.instance.get_dynamic_partitions(domains_partitions.name))
    new = [d for d in extra if d not in known]
    if new:
        context.instance.add_dynamic_partitions(domains_partitions.name, new)
    context.log.info(f"re-enriching {len(extra)} more domain(s) in this run ({len(new)} newly registered)")
    return extra
