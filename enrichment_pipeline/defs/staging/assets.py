"""Typed, validated staging tables computed from the raw provider answers.

Each table's pandera contract filters the rows as they are written (refused rows go to
`staging.quarantine`, counted in the materialization's metadata), so no asset check re-validates
the stored rows: they passed the same contract a moment before.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import pandera.polars as pa
import polars as pl

from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.lib import staging
from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES, build_provider
from enrichment_pipeline.lib.validation import (
    BUILTWITH_TECHNOLOGIES,
    PROVIDER_FIELDS,
    QUARANTINE_SCHEMA,
    SIMILARWEB_TRAFFIC,
    split_valid,
)

QUARANTINE = "staging.quarantine"


def _materialize(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    providers: ProvidersResource,
    *,
    table: str,
    build,
    schema: dict[str, pl.DataType],
    primary_key: tuple[str, ...],
    contract: pa.DataFrameSchema | None,
) -> dg.MaterializeResult:
    now = datetime.now(UTC)
    mode = providers.setup().mode
    with warehouse.open() as wh:
        refused: staging.Refused = []
        frame = build(wh.responses(mode=mode), refused)
        quarantined = pl.DataFrame(schema=QUARANTINE_SCHEMA)
        if contract is not None:
            frame, quarantined = split_valid(frame, contract, table, now)
        if refused:
            unreadable = pl.DataFrame(
                {
                    "source": [table] * len(refused),
                    "domain": [d for _, d, _ in refused],
                    "reason": [r for _, _, r in refused],
                    "row": [json.dumps({"provider": p}) for p, _, _ in refused],
                    "quarantined_at": [now] * len(refused),
                },
                schema=QUARANTINE_SCHEMA,
            )
            quarantined = pl.concat([quarantined, unreadable])
        rows = wh.replace_table(table, frame, schema, primary_key)
        kept = wh.table(QUARANTINE).filter(pl.col("source") != table) if wh.has_table(QUARANTINE) else None
        all_quarantine = pl.concat([kept, quarantined]) if kept is not None else quarantined
        wh.replace_table(QUARANTINE, all_quarantine, QUARANTINE_SCHEMA)
    for row in quarantined.head(20).iter_rows(named=True):
        context.log.warning(f"quarantined {row['domain']} from {table}: {row['reason']}")
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "domains": frame["domain"].n_unique() if rows else 0,
            "quarantined_rows": quarantined.height,
            "table": table,
        }
    )


def staging_asset(
    name: str,
    description: str,
    build: Callable[[pl.DataFrame, staging.Refused], pl.DataFrame],
    schema: dict[str, pl.DataType],
    primary_key: tuple[str, ...],
    contract: pa.DataFrameSchema | None,
) -> dg.AssetsDefinition:
    """A staging table rebuilt from the raw answers, validated by its pandera contract."""

    @dg.asset(
        key=dg.AssetKey(["staging", name]),
        deps=[RAW_KEY],
        group_name="staging",
        kinds={"polars", "duckdb"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, providers: ProvidersResource
    ) -> dg.MaterializeResult:
        return _materialize(
            context,
            warehouse,
            providers,
            table=f"staging.{name}",
            build=build,
            schema=schema,
            primary_key=primary_key,
            contract=contract,
        )

    return _asset


builtwith_technologies = staging_asset(
    "builtwith_technologies",
    "One row per (domain, technology) from BuiltWith's domain API, pandera-checked.",
    staging.builtwith_technologies,
    staging.TECH_SCHEMA,
    ("domain", "technology"),
    BUILTWITH_TECHNOLOGIES,
)
builtwith_groups = staging_asset(
    "builtwith_groups",
    "Technology group counts from BuiltWith's free API (when that API is configured).",
    staging.builtwith_groups,
    staging.GROUP_SCHEMA,
    ("domain", "tech_group"),
    None,
)
similarweb_traffic = staging_asset(
    "similarweb_traffic",
    "One row per domain of SimilarWeb engagement and traffic-source shares, pandera-checked.",
    staging.similarweb_traffic,
    staging.TRAFFIC_SCHEMA,
    ("domain",),
    SIMILARWEB_TRAFFIC,
)
provider_fields = staging_asset(
    "provider_fields",
    "One row per (provider, domain): every provider's answers in the standard fields and units "
    "(USD, NAICS sector, ISO country, 0-1 ratios), pandera-checked. The waterfall merges these.",
    lambda responses, refused: staging.provider_fields(
        responses, {n: build_provider(n) for n in PROVIDER_NAMES}, refused
    ),
    staging.provider_fields_schema(),
    ("provider", "domain"),
    PROVIDER_FIELDS,
)
