"""One merged company profile per domain, with the source of every field."""

import json
from datetime import UTC, datetime

import dagster as dg

from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.defs.staging.assets import (
    builtwith_technologies,
    provider_fields,
    similarweb_traffic,
)
from enrichment_pipeline.lib import profiles
from enrichment_pipeline.lib.waterfall import load_waterfall

PROFILES_TABLE = "marts.company_profiles"
PROFILES_KEY = dg.AssetKey(["marts", "company_profiles"])


# `domain` is the table's primary key: a second row for a domain cannot be written, so no asset
# check counts duplicates.
@dg.asset(
    key=PROFILES_KEY,
    # All staging tables: their quarantined answers make a profile `partial`.
    deps=[provider_fields, similarweb_traffic, builtwith_technologies],
    group_name="profiles",
    kinds={"polars", "duckdb"},
)
def company_profiles(warehouse: WarehouseResource, providers: ProvidersResource) -> dg.MaterializeResult:
    """Waterfall merge of every provider's fields: one row per domain, each field with its
    provider and observation time, a confidence from provider agreement, and a status."""
    mode = providers.setup().mode
    waterfall = load_waterfall()
    with warehouse.open() as wh:
        responses = wh.query(
            "SELECT provider, domain, status FROM raw.provider_responses WHERE mode = ?", [mode]
        )
        fields = wh.table("staging.provider_fields")
        quarantine = wh.table("staging.quarantine") if wh.has_table("staging.quarantine") else None
        refused = profiles.refused_answers(quarantine) if quarantine is not None else None
        frame = profiles.build_profiles(
            sorted(responses["domain"].unique().to_list()),
            profiles.provider_status_per_domain(responses),
            fields,
            waterfall,
            mode=mode,
            enriched_at=datetime.now(UTC),
            refused=refused,
        )
        rows = wh.replace_table(PROFILES_TABLE, frame, profiles.PROFILE_SCHEMA, ("domain",))
    by_status = {s: int(n) for s, n in frame["status"].value_counts().sort("status").iter_rows()}
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "by_status": dg.MetadataValue.json(by_status),
            "coverage_by_provider": dg.MetadataValue.json(profiles.coverage(frame)),
            "mean_profile_confidence": float(frame["profile_confidence"].mean() or 0.0),
            "refused_answers": 0 if refused is None else refused.height,
        }
    )


@dg.asset_check(
    asset=company_profiles,
    description="Providers agree on employees, revenue, industry and technologies within tolerance.",
)
def providers_agree(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Flags (as a warning) profiles whose providers disagree, with the values side by side."""
    with warehouse.open() as wh:
        disputed = wh.query(
            f"SELECT domain, disagreements FROM {PROFILES_TABLE} "
            "WHERE disagreements <> '{}' ORDER BY domain"
        )
        total = wh.query(f"SELECT count(*) AS n FROM {PROFILES_TABLE}")["n"][0]
    examples = {d: json.loads(v) for d, v in disputed.head(25).iter_rows()}
    by_field: dict[str, int] = {}
    for value in disputed["disagreements"]:
        for field in json.loads(value):
            by_field[field] = by_field.get(field, 0) + 1
    return dg.AssetCheckResult(
        passed=disputed.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "profiles": int(total),
            "disputed_profiles": disputed.height,
            "disputed_by_field": dg.MetadataValue.json(by_field),
            "examples": dg.MetadataValue.json(examples),
        },
    )
