"""Merge what each provider said into one company profile per domain.

Each field group has an ordered list of providers (the waterfall); the first
provider with a value wins and is recorded as the field's source, with the
time it was observed. A provider that failed for a domain makes the profile
`partial`; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from enrichment_pipeline.lib.frames import first_present, json_list

# Field group -> (providers in order of preference, columns the group fills).
WATERFALL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "technologies": (
        ("builtwith",),
        (
            "technologies",
            "technology_count",
            "technology_categories",
            "search_vendor",
            "ecommerce_platform",
            "cms",
        ),
    ),
    "traffic": (
        ("similarweb",),
        (
            "monthly_visits",
            "visits_growth",
            "bounce_rate",
            "pages_per_visit",
            "avg_visit_duration_s",
            "global_rank",
            "search_share",
            "direct_share",
        ),
    ),
}

ANSWERED = ("ok", "not_found")

# Vendors a site-search ICP cares about; BuiltWith tags are too coarse to tell them apart.
SEARCH_VENDORS = (
    "Algolia",
    "Coveo",
    "Bloomreach",
    "Constructor.io",
    "Lucidworks",
    "Klevu",
    "Searchspring",
    "Elasticsearch",
    "Elastic",
    "Yext",
    "SearchStax",
    "Swiftype",
    "Doofinder",
    "Attraqt",
)
ECOMMERCE_PLATFORMS = (
    "Shopify Plus",
    "Shopify",
    "Salesforce Commerce Cloud",
    "Magento",
    "Adobe Commerce",
    "BigCommerce",
    "WooCommerce",
    "commercetools",
    "SAP Commerce Cloud",
    "VTEX",
)
CMS_PLATFORMS = (
    "Adobe Experience Manager",
    "Sitecore",
    "Contentful",
    "Drupal",
    "WordPress",
    "Contentstack",
    "Optimizely",
    "Webflow",
    "Squarespace",
    "Wix",
)

PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "technologies": pl.String(),
    "technology_count": pl.Int32(),
    "technology_categories": pl.String(),
    "search_vendor": pl.String(),
    "ecommerce_platform": pl.String(),
    "cms": pl.String(),
    "monthly_visits": pl.Float64(),
    "visits_growth": pl.Float64(),
    "bounce_rate": pl.Float64(),
    "pages_per_visit": pl.Float64(),
    "avg_visit_duration_s": pl.Float64(),
    "global_rank": pl.Int64(),
    "search_share": pl.Float64(),
    "direct_share": pl.Float64(),
    "technologies_source": pl.String(),
    "traffic_source": pl.String(),
    "field_sources": pl.String(),
    "provider_statuses": pl.String(),
    "status": pl.String(),
    "mode": pl.String(),
    "enriched_at": pl.Datetime("us", "UTC"),
}


def technology_summary(techs: pl.DataFrame) -> pl.DataFrame:
    """One row per domain from staging.builtwith_technologies."""
    if techs.is_empty():
        return pl.DataFrame(
            schema={
                "domain": pl.String,
                "technologies": pl.String,
                "technology_count": pl.Int32,
                "technology_categories": pl.String,
                "search_vendor": pl.String,
                "ecommerce_platform": pl.String,
                "cms": pl.String,
                "technologies_observed_at": pl.Datetime("us", "UTC"),
            }
        )
    grouped = (
        techs.sort("domain", "technology")
        .group_by("domain", maintain_order=True)
        .agg(
            pl.col("technology").unique(maintain_order=True).alias("names"),
            pl.col("categories")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .drop_nulls()
            .unique()
            .sort()
            .alias("cats"),
            pl.col("last_detected").max().alias("technologies_observed_at"),
        )
    )
    names = pl.col("names")
    return grouped.select(
        "domain",
        json_list(names).alias("technologies"),
        names.list.len().cast(pl.Int32).alias("technology_count"),
        json_list(pl.col("cats")).alias("technology_categories"),
        first_present(names, SEARCH_VENDORS).alias("search_vendor"),
        first_present(names, ECOMMERCE_PLATFORMS).alias("ecommerce_platform"),
        first_present(names, CMS_PLATFORMS).alias("cms"),
        pl.col("technologies_observed_at").cast(pl.Datetime("us", "UTC")),
    )


def build_profiles(
    domains: Sequence[str],
    statuses: pl.DataFrame,
    groups: Mapping[str, pl.DataFrame],
    *,
    mode: str,
    enriched_at,
) -> pl.DataFrame:
    """Merge field groups into one row per domain.

    `statuses` has one row per (provider, domain) with the worst endpoint
    status for that provider; `groups` maps a field group to a frame with
    `domain`, `provider`, `observed_at` and the group's columns.
    """
    base = pl.DataFrame({"domain": list(dict.fromkeys(domains))}, schema={"domain": pl.String})
    sources: dict[str, pl.Expr] = {}
    for group, (order, columns) in WATERFALL.items():
        frame = groups.get(group)
        if frame is None or frame.is_empty():
            base = base.with_columns(
                *(pl.lit(None, dtype=PROFILE_SCHEMA[c]).alias(c) for c in columns),
                pl.lit(None, dtype=pl.String).alias(f"{group}_source"),
                pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias(f"_{group}_at"),
            )
        else:
            rank = {p: i for i, p in enumerate(order)}
            best = (
                frame.filter(pl.col("provider").is_in(list(order)))
                .with_columns(pl.col("provider").replace_strict(rank, return_dtype=pl.Int32).alias("_rank"))
                .sort("domain", "_rank")
                .unique("domain", keep="first", maintain_order=True)
                .select(
                    "domain",
                    *columns,
                    pl.col("provider").alias(f"{group}_source"),
                    pl.col("observed_at").cast(pl.Datetime("us", "UTC")).alias(f"_{group}_at"),
                )
            )
            base = base.join(best, on="domain", how="left")
        sources[group] = pl.struct(
            pl.col(f"{group}_source").alias("provider"),
            pl.col(f"_{group}_at").dt.to_string("%Y-%m-%dT%H:%M:%SZ").alias("observed_at"),
        )

    per_provider = (
        statuses.group_by("domain").agg(
            pl.struct("provider", "status").alias("s"),
            pl.col("status").is_in(["ok"]).any().alias("_any_ok"),
            (~pl.col("status").is_in(list(ANSWERED))).any().alias("_any_failed"),
        )
        if not statuses.is_empty()
        else pl.DataFrame(
            schema={
                "domain": pl.String,
                "s": pl.List(pl.Struct({"provider": pl.String, "status": pl.String})),
                "_any_ok": pl.Boolean,
                "_any_failed": pl.Boolean,
            }
        )
    )
    base = base.join(per_provider, on="domain", how="left")
    field_sources = pl.struct(
        *(sources[group].alias(column) for group, (_, columns) in WATERFALL.items() for column in columns)
    ).struct.json_encode()
    return base.select(
        *(
            pl.col(c).cast(PROFILE_SCHEMA[c])
            for c in PROFILE_SCHEMA
            if c in base.columns
            and not c.startswith("_")
            and c not in ("field_sources", "provider_statuses", "status", "mode", "enriched_at")
        ),
        field_sources.alias("field_sources"),
        json_list(pl.col("s")).fill_null("[]").alias("provider_statuses"),
        pl.when(pl.col("_any_failed").fill_null(True) & ~pl.col("_any_ok").fill_null(False))
        .then(pl.lit("failed"))
        .when(pl.col("_any_failed").fill_null(False))
        .then(pl.lit("partial"))
        .otherwise(pl.lit("enriched"))
        .alias("status"),
        pl.lit(mode).alias("mode"),
        pl.lit(enriched_at, dtype=pl.Datetime("us", "UTC")).alias("enriched_at"),
    ).select(list(PROFILE_SCHEMA))


def provider_status_per_domain(responses: pl.DataFrame) -> pl.DataFrame:
    """Worst endpoint status per (provider, domain): one failed endpoint makes the provider failed."""
    if responses.is_empty():
        return pl.DataFrame(schema={"provider": pl.String, "domain": pl.String, "status": pl.String})
    # Severity: a failure beats an answer; "ok" on any endpoint beats "not found".
    return (
        responses.with_columns(
            pl.when(pl.col("status") == "ok")
            .then(1)
            .when(pl.col("status") == "not_found")
            .then(0)
            .otherwise(2)
            .alias("_severity")
        )
        .sort("_severity", descending=True)
        .unique(["provider", "domain"], keep="first")
        .select("provider", "domain", "status")
    )
