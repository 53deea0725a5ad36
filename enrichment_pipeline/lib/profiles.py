"""Merge what each provider said into one company profile per domain.

Each field group (firmographics, financials, technologies, traffic) takes the
values of the first provider in its waterfall order that has any value for the
group; the provider and the time it was observed are recorded for every field.
Where several providers answered the same field, their agreement gives a
confidence (`lib/agreement.py`). A provider that failed for a domain makes the
profile `partial`; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from enrichment_pipeline.lib.agreement import CONFIDENCE_SCHEMA, field_agreement
from enrichment_pipeline.lib.domains import display_domain
from enrichment_pipeline.lib.fields import CONTEXT_ONLY, FIELD_TYPES, GROUPS
from enrichment_pipeline.lib.frames import first_present, json_list
from enrichment_pipeline.lib.providers.base import ANSWERED
from enrichment_pipeline.lib.waterfall import Waterfall

# Vendors a site-search ICP cares about, in order of preference when a site runs several.
SEARCH_VENDORS = (
    "Algolia", "Coveo", "Bloomreach", "Constructor.io", "Lucidworks", "Klevu", "Searchspring",
    "Elasticsearch", "Elastic", "Yext", "SearchStax", "Swiftype", "Doofinder", "Attraqt",
)  # fmt: skip
ECOMMERCE_PLATFORMS = (
    "Shopify Plus", "Shopify", "Salesforce Commerce Cloud", "Magento", "Adobe Commerce",
    "BigCommerce", "WooCommerce", "commercetools", "SAP Commerce Cloud", "VTEX",
)  # fmt: skip
CMS_PLATFORMS = (
    "Adobe Experience Manager", "Sitecore", "Contentful", "Drupal", "WordPress", "Contentstack",
    "Optimizely", "Webflow", "Squarespace", "Wix",
)  # fmt: skip

UTC_TS = pl.Datetime("us", "UTC")

PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "domain_unicode": pl.String(),  # as people write it (bücher.de); `domain` is the punycode key
    **{f: (pl.String() if f == "technologies" else t) for f, t in FIELD_TYPES.items()},
    "technology_count": pl.Int32(),
    "search_vendor": pl.String(),
    "ecommerce_platform": pl.String(),
    "cms": pl.String(),
    **{f"{g}_source": pl.String() for g in GROUPS},
    "field_sources": pl.String(),
    **{k: v for k, v in CONFIDENCE_SCHEMA.items() if k != "domain"},
    "provider_statuses": pl.String(),
    "status": pl.String(),
    "mode": pl.String(),
    "enriched_at": UTC_TS,
}
STATUS_SCHEMA = {"provider": pl.String, "domain": pl.String, "status": pl.String}
REFUSED_SCHEMA = {"provider": pl.String, "domain": pl.String, "reason": pl.String}
# A provider whose answer staging refused (unreadable, or quarantined by a contract).
REFUSED = "refused"


def refused_answers(quarantine: pl.DataFrame) -> pl.DataFrame:
    """(provider, domain, reason) of quarantined staging rows, from ``staging.quarantine``.

    Each quarantined row names its provider in its stored ``row`` JSON; the
    reason says which staging table refused it and why.
    """
    if quarantine.is_empty():
        return pl.DataFrame(schema=REFUSED_SCHEMA)
    table = pl.col("source").str.replace(r"^staging\.", "")
    return (
        quarantine.select(
            pl.col("row").str.json_path_match("$.provider").alias("provider"),
            pl.col("domain"),
            (table + pl.lit(": ") + pl.col("reason").str.slice(0, 300)).alias("reason"),
        )
        .drop_nulls(["provider", "domain"])
        .unique(["provider", "domain"], keep="first", maintain_order=True)
        .cast(REFUSED_SCHEMA)
    )


def _has_value(group: str, *, filling: bool = False) -> pl.Expr:
    """Any value in the group; with `filling`, a value of a field that fills it (`filled_groups`)."""
    checks = []
    for field in GROUPS[group]:
        if filling and field in CONTEXT_ONLY:
            continue
        col = pl.col(field)
        checks.append(col.list.len() > 0 if field == "technologies" else col.is_not_null())
    return pl.any_horizontal(*checks).fill_null(False)


def pick_groups(domains: pl.DataFrame, fields: pl.DataFrame, waterfall: Waterfall) -> pl.DataFrame:
    """Per group, the first provider (waterfall order) whose values fill it, else the first with
    any value (a lone `is_public` flag); its values, name and time."""
    base = domains
    for group, columns in GROUPS.items():
        order = waterfall.order(group)
        rank = {p: i for i, p in enumerate(order)}
        chosen = (
            fields.filter(pl.col("provider").is_in(order) & _has_value(group))
            .with_columns(
                pl.col("provider").replace_strict(rank, return_dtype=pl.Int32).alias("_rank"),
                (~_has_value(group, filling=True)).alias("_context_only"),
            )
            .sort("domain", "_context_only", "_rank")
            .unique("domain", keep="first", maintain_order=True)
            .select(
                "domain",
                *columns,
                pl.col("provider").alias(f"{group}_source"),
                pl.col("observed_at").cast(UTC_TS).alias(f"_{group}_at"),
            )
        )
        base = base.join(chosen, on="domain", how="left")
    return base


def provider_status_per_domain(responses: pl.DataFrame) -> pl.DataFrame:
    """Worst endpoint status per (provider, domain): one failed endpoint makes the provider failed."""
    if responses.is_empty():
        return pl.DataFrame(schema=STATUS_SCHEMA)
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
        .sort("_severity", "provider", "domain", "status", descending=[True, False, False, False])
        .unique(["provider", "domain"], keep="first", maintain_order=True)
        .select("provider", "domain", "status")
        .sort("domain", "provider")
    )


def with_refused(statuses: pl.DataFrame, refused: pl.DataFrame | None) -> pl.DataFrame:
    """Statuses where a refused answer turns its provider's status into ``refused`` with the reason."""
    statuses = statuses.with_columns(
        pl.lit(None, dtype=pl.String).alias("detail")
        if "detail" not in statuses.columns
        else pl.col("detail")
    )
    if refused is None or refused.is_empty():
        return statuses
    marked = statuses.join(refused, on=["provider", "domain"], how="left").with_columns(
        pl.when(pl.col("reason").is_not_null()).then(pl.lit(REFUSED)).otherwise("status").alias("status"),
        pl.coalesce("reason", "detail").alias("detail"),
    )
    return marked.drop("reason")


def _status(statuses: pl.DataFrame) -> pl.DataFrame:
    """enriched: some provider had data and none failed; partial: data, but some provider
    failed or had its answer refused by staging; not_found: every provider answered that it
    does not know the domain; failed:
    no data and some provider failed (or nobody answered)."""
    if statuses.is_empty():
        return pl.DataFrame(schema={"domain": pl.String, "provider_statuses": pl.String, "status": pl.String})
    return (
        statuses.sort("domain", "provider")
        .group_by("domain", maintain_order=True)
        .agg(
            pl.struct("provider", "status", "detail").alias("_s"),
            (pl.col("status") == "ok").any().alias("_ok"),
            (~pl.col("status").is_in(list(ANSWERED))).any().alias("_failed"),
        )
        .select(
            "domain",
            json_list(pl.col("_s")).alias("provider_statuses"),
            pl.when(pl.col("_ok") & ~pl.col("_failed"))
            .then(pl.lit("enriched"))
            .when(pl.col("_ok"))
            .then(pl.lit("partial"))
            .when(~pl.col("_failed"))
            .then(pl.lit("not_found"))
            .otherwise(pl.lit("failed"))
            .alias("status"),
        )
    )


def build_profiles(
    domains: Sequence[str],
    statuses: pl.DataFrame,
    fields: pl.DataFrame,
    waterfall: Waterfall,
    *,
    mode: str,
    enriched_at: datetime,
    refused: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per domain from `staging.provider_fields` and the per-provider statuses.

    `refused` (provider, domain, reason): answers staging quarantined. Such a
    provider shows as ``refused`` with the reason in ``provider_statuses`` and
    the profile is ``partial`` at best, never silently ``enriched``.
    """
    statuses = with_refused(statuses, refused)
    base = pl.DataFrame({"domain": list(dict.fromkeys(domains))}, schema={"domain": pl.String})
    base = base.with_columns(
        pl.col("domain").map_elements(display_domain, return_dtype=pl.String).alias("domain_unicode")
    )
    fields = fields.cast({k: v for k, v in FIELD_TYPES.items() if k in fields.columns})
    picked = pick_groups(base, fields, waterfall)
    techs = pl.col("technologies")
    picked = picked.with_columns(
        techs.list.len().cast(pl.Int32).alias("technology_count"),
        first_present(techs, SEARCH_VENDORS).alias("search_vendor"),
        first_present(techs, ECOMMERCE_PLATFORMS).alias("ecommerce_platform"),
        first_present(techs, CMS_PLATFORMS).alias("cms"),
    )
    confidence = field_agreement(picked, fields)
    field_sources = pl.struct(
        *(
            pl.struct(
                pl.when(pl.col(field).is_not_null()).then(pl.col(f"{group}_source")).alias("provider"),
                pl.when(pl.col(field).is_not_null())
                .then(pl.col(f"_{group}_at").dt.to_string("%Y-%m-%dT%H:%M:%SZ"))
                .alias("observed_at"),
            ).alias(field)
            for group, columns in GROUPS.items()
            for field in columns
        )
    ).struct.json_encode()
    merged = (
        picked.with_columns(field_sources.alias("field_sources"))
        .with_columns(
            pl.when(techs.is_not_null()).then(json_list(techs)).alias("technologies"),
        )
        .join(confidence, on="domain", how="left")
        .join(_status(statuses), on="domain", how="left")
        .with_columns(
            pl.col("provider_statuses").fill_null("[]"),
            pl.col("status").fill_null("failed"),
            pl.lit(mode).alias("mode"),
            pl.lit(enriched_at, dtype=UTC_TS).alias("enriched_at"),
        )
    )
    return merged.select(pl.col(c).cast(t) for c, t in PROFILE_SCHEMA.items())


def coverage(profiles: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per provider, the share of profiles for which it supplied each field group."""
    total = max(1, profiles.height)
    out: dict[str, dict[str, float]] = {}
    for group in GROUPS:
        counts = profiles[f"{group}_source"].drop_nulls().value_counts()
        for provider, n in counts.iter_rows():
            out.setdefault(provider, {})[group] = round(n / total, 3)
    return out
