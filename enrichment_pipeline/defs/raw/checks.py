"""Per-domain outcome of a fetch run, where the UI shows it.

`raw/provider_responses` is materialized for every partition of a run, also for a
domain no provider answered (its rows say why, and a later run retries it). This
check names those domains: WARN on the asset, with the count and the domains in
its metadata (Asset → Checks → `every_domain_answered`).
"""

import dagster as dg

from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib.warehouse.schema import RESPONSES, answered_sql

LISTED = 200

# `skipped` is a provider the run did not call: neither an answer nor a failure.
UNANSWERED_SQL = f"""
SELECT domain, string_agg(DISTINCT provider || ': ' || status, ', ') AS statuses
FROM {RESPONSES}
WHERE run_id = ? AND status <> 'skipped'
GROUP BY domain
HAVING sum(CASE WHEN {answered_sql()} THEN 1 ELSE 0 END) = 0
ORDER BY domain
"""


@dg.asset_check(
    asset=RAW_KEY,
    blocking=False,
    description=(
        "Every domain of the run got an answer (found or not found) from at least one provider; "
        "WARN lists the domains whose every call failed (they are retried by the next run)."
    ),
)
def every_domain_answered(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    with warehouse.open(read_only=True) as wh:
        fetched = wh.has_table(RESPONSES)
        rows = wh.query(UNANSWERED_SQL, [context.run.run_id]) if fetched else None
    unanswered = [] if rows is None else list(rows.iter_rows(named=True))
    return dg.AssetCheckResult(
        passed=not unanswered,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unanswered_domains": len(unanswered),
            "domains": dg.MetadataValue.json({r["domain"]: r["statuses"] for r in unanswered[:LISTED]}),
            "query": dg.MetadataValue.md(
                f"```sql\nSELECT domain, provider, status, detail FROM {RESPONSES}\n"
                f"WHERE run_id = '{context.run.run_id}' ORDER BY domain\n```"
            ),
        },
    )
