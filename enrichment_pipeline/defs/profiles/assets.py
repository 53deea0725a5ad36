"""One merged company profile per domain, with the source of every field."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from enrichment_pipeline.defs.normalized.assets import builtwith_technologies, similarweb_traffic
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.lib import profiles

PROFILES_TABLE = "marts.company_profiles"
PROFILES_KEY = dg.AssetKey(["marts", "company_profiles"])


@dg.asset(
    key=PROFILES_KEY,
    deps=[builtwith_technologies, similarweb_traffic],
    group_name="profiles",
    kinds={"polars", "duckdb"},
)
def company_profiles(warehouse: WarehouseResource, providers: ProvidersResource) -> dg.MaterializeResult:
    """Waterfall merge of the staging tables: one row per domain, each field with its provider."""
    mode = providers.setup().mode
    with warehouse.open() as wh:
        responses = wh.query(
            "SELECT provider, domain, status FROM raw.provider_responses WHERE mode = ?", [mode]
        )
        techs = profiles.technology_summary(wh.table("staging.builtwith_technologies"))
        traffic = wh.table("staging.similarweb_traffic")
        frame = profiles.build_profiles(
            responses["domain"].unique(maintain_order=True).to_list(),
            profiles.provider_status_per_domain(responses),
            {
                "technologies": techs.with_columns(
                    pl.lit("builtwith").alias("provider"),
                    pl.col("technologies_observed_at").alias("observed_at"),
                ),
                "traffic": traffic,
            },
            mode=mode,
            enriched_at=datetime.now(UTC),
        )
        rows = wh.replace_table(PROFILES_TABLE, frame, profiles.PROFILE_SCHEMA, ("domain",))
    counts = frame["status"].value_counts()
    by_status = {s: int(n) for s, n in counts.iter_rows()}
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "by_status": dg.MetadataValue.json(by_status),
            "with_technologies": int(frame["technologies_source"].is_not_null().sum()),
            "with_traffic": int(frame["traffic_source"].is_not_null().sum()),
        }
    )


@dg.asset_check(asset=company_profiles, blocking=True, description="Exactly one row per domain.")
def one_row_per_domain(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.open() as wh:
        dupes = wh.query(
            f"SELECT domain, count(*) AS n FROM {PROFILES_TABLE} GROUP BY domain HAVING count(*) > 1"
        )
    return dg.AssetCheckResult(passed=dupes.is_empty(), metadata={"duplicate_domains": dupes.height})
