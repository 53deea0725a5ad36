"""Confidence from agreement: how far the other providers back the value a profile shows.

For each compared field the profile's value (the waterfall's pick) is checked
against every other provider that answered the same field:

* numbers (employees, revenue): agree when within a ratio tolerance;
* industry: agree when the NAICS sector is the same;
* technologies: the mean Jaccard overlap of the technology sets.

Confidence is the share of sources that agree (the chosen one included), 0.5
when only one source answered (nothing contradicts it, nothing confirms it),
null when none did. A profile's confidence is the mean of its fields'.
"""

from __future__ import annotations

import polars as pl

NUMERIC_FIELDS = ("employees", "revenue_usd")
COMPARED_FIELDS = (*NUMERIC_FIELDS, "industry_naics", "technologies")
# Within x1.5 either way counts as agreeing: providers estimate head count and
# revenue differently (ranges, fiscal years), so exact equality means little.
RATIO_TOLERANCE = 1.5
SINGLE_SOURCE = 0.5

CONFIDENCE_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    **{f"{f}_confidence": pl.Float64() for f in COMPARED_FIELDS},
    "profile_confidence": pl.Float64(),
    "disagreements": pl.String(),  # JSON: field -> {provider: value} where sources disagree
}


def _numeric_agree(chosen: pl.Expr, other: pl.Expr) -> pl.Expr:
    low, high = pl.min_horizontal(chosen, other), pl.max_horizontal(chosen, other)
    return (low > 0) & (high / low <= RATIO_TOLERANCE) | ((low == 0) & (high == 0))


def _jaccard(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    inter = a.list.set_intersection(b).list.len()
    union = a.list.set_union(b).list.len()
    return pl.when(union > 0).then(inter / union).otherwise(None)


def field_agreement(profiles: pl.DataFrame, fields: pl.DataFrame) -> pl.DataFrame:
    """Per domain: confidence per compared field, profile confidence and the disagreements.

    `profiles` has `domain` and the chosen values; `fields` has one row per
    (provider, domain) with each provider's own values (staging.provider_fields).
    """
    rows = []
    for field in COMPARED_FIELDS:
        chosen = profiles.select("domain", pl.col(field).alias("_chosen"))
        others = fields.select("domain", "provider", pl.col(field).alias("_value")).filter(
            pl.col("_value").is_not_null()
            if field != "technologies"
            else pl.col("_value").is_not_null() & (pl.col("_value").list.len() > 0)
        )
        joined = others.join(chosen, on="domain", how="inner").filter(pl.col("_chosen").is_not_null())
        if field in NUMERIC_FIELDS:
            score = _numeric_agree(pl.col("_chosen").cast(pl.Float64), pl.col("_value").cast(pl.Float64))
            score = score.cast(pl.Float64)
        elif field == "technologies":
            score = _jaccard(pl.col("_chosen"), pl.col("_value"))
        else:
            score = (pl.col("_chosen") == pl.col("_value")).cast(pl.Float64)
        per_domain = (
            joined.with_columns(score.alias("_score"))
            .group_by("domain")
            .agg(
                pl.len().alias("_n"),
                pl.col("_score").mean().alias("_mean"),
                (pl.col("_score") < 0.5).any().alias("_disagree"),
                pl.struct(
                    "provider",
                    pl.col("_value").cast(pl.String)
                    if field != "technologies"
                    else pl.col("_value").list.len().cast(pl.String),
                ).alias("_values"),
            )
        )
        rows.append(
            per_domain.select(
                "domain",
                pl.lit(field).alias("field"),
                pl.when(pl.col("_n") >= 2)
                .then(pl.col("_mean"))
                .otherwise(pl.lit(SINGLE_SOURCE))
                .alias("confidence"),
                (pl.col("_disagree") & (pl.col("_n") >= 2)).alias("disagree"),
                "_values",
            )
        )
    long = pl.concat(rows) if rows else pl.DataFrame()
    base = profiles.select("domain")
    if long.is_empty():
        return base.with_columns(
            *(pl.lit(None, dtype=pl.Float64).alias(f"{f}_confidence") for f in COMPARED_FIELDS),
            pl.lit(None, dtype=pl.Float64).alias("profile_confidence"),
            pl.lit("{}").alias("disagreements"),
        ).select(list(CONFIDENCE_SCHEMA))
    wide = long.pivot(on="field", index="domain", values="confidence")
    for field in COMPARED_FIELDS:
        if field not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(field))
    disagreements = (
        long.filter(pl.col("disagree"))
        .with_columns(pl.struct(pl.col("field"), pl.col("_values")).alias("d"))
        .group_by("domain")
        .agg(pl.col("d"))
        .with_columns(
            pl.col("d").map_elements(_disagreement_json, return_dtype=pl.String).alias("disagreements")
        )
        .select("domain", "disagreements")
    )
    result = base.join(wide, on="domain", how="left").join(disagreements, on="domain", how="left")
    return result.select(
        "domain",
        *(pl.col(f).cast(pl.Float64).round(3).alias(f"{f}_confidence") for f in COMPARED_FIELDS),
        pl.mean_horizontal(*(pl.col(f) for f in COMPARED_FIELDS)).round(3).alias("profile_confidence"),
        pl.col("disagreements").fill_null("{}"),
    )


def _disagreement_json(items) -> str:
    import json

    out: dict[str, dict[str, str]] = {}
    for item in items:
        out[item["field"]] = {v["provider"]: v["_value"] for v in item["_values"]}
    return json.dumps(out, sort_keys=True)
