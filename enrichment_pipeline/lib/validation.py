"""Validate staging frames with pandera; rows that fail are quarantined, never dropped silently."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from enrichment_pipeline.lib import staging
from enrichment_pipeline.lib.field_rules import COUNTRY, FIELD_BOUNDS, INF, NAICS

QUARANTINE_SCHEMA = {
    "source": pl.String,
    "domain": pl.String,
    "reason": pl.String,
    "row": pl.String,
    "quarantined_at": pl.Datetime("us", "UTC"),
}

_DOMAIN = pa.Check.str_matches(r"^[a-z0-9.-]+$")


def _range(name: str) -> list[pa.Check]:
    low, high = FIELD_BOUNDS[name]
    return [pa.Check.ge(low)] if high == INF else [pa.Check.ge(low), pa.Check.le(high)]


def _bounded(table: Mapping[str, pl.DataType | type[pl.DataType]]) -> dict[str, pa.Column]:
    """A nullable column of the table's type and FIELD_BOUNDS' range for every bounded field it has."""
    return {
        name: pa.Column(dtype, _range(name), nullable=True)
        for name, dtype in table.items()
        if name in FIELD_BOUNDS
    }


BUILTWITH_TECHNOLOGIES = pa.DataFrameSchema(
    {
        "domain": pa.Column(pl.String, _DOMAIN),
        "technology": pa.Column(pl.String, pa.Check.str_length(1, 200)),
        "tag": pa.Column(pl.String, nullable=True),
        "first_detected": pa.Column(pl.Datetime("us", "UTC"), nullable=True),
        "last_detected": pa.Column(pl.Datetime("us", "UTC"), nullable=True),
        "is_premium": pa.Column(pl.Boolean),
    },
    unique=["domain", "technology"],
    name="builtwith_technologies",
)
SIMILARWEB_TRAFFIC = pa.DataFrameSchema(
    {"domain": pa.Column(pl.String, _DOMAIN, unique=True), **_bounded(staging.TRAFFIC_SCHEMA)},
    name="similarweb_traffic",
)
# Every provider's answers in the standard units (lib/fields.py).
PROVIDER_FIELDS = pa.DataFrameSchema(
    {
        "provider": pa.Column(pl.String),
        "domain": pa.Column(pl.String, _DOMAIN),
        "industry_naics": pa.Column(pl.String, pa.Check.isin(NAICS), nullable=True),
        "country": pa.Column(pl.String, pa.Check.str_matches(COUNTRY), nullable=True),
        **_bounded(staging.provider_fields_schema()),
    },
    unique=["provider", "domain"],
    name="provider_fields",
)


def split_valid(
    frame: pl.DataFrame, schema: pa.DataFrameSchema, source: str, now: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, quarantine rows with the failed checks as the reason)."""
    empty = pl.DataFrame(schema=QUARANTINE_SCHEMA)
    if frame.is_empty():
        return frame, empty
    try:
        schema.validate(frame, lazy=True)
        return frame, empty
    except (SchemaErrors, SchemaError) as exc:
        cases = exc.failure_cases if isinstance(exc, SchemaErrors) else None
    if cases is None or cases.filter(pl.col("index").is_null()).height:
        # A whole-frame problem (missing column, wrong dtype) is a bug, not bad data: fail loudly.
        schema.validate(frame, lazy=True)
    reasons = (
        cases.group_by("index")
        .agg(
            (
                pl.col("column")
                + pl.lit(": ")
                + pl.col("check")
                + pl.lit(" (got ")
                + pl.col("failure_case").cast(pl.String)
                + pl.lit(")")
            ).alias("why")
        )
        .with_columns(pl.col("why").list.join("; "))
    )
    indexed = frame.with_row_index("index").with_columns(pl.col("index").cast(pl.Int32))
    bad = indexed.join(reasons.with_columns(pl.col("index").cast(pl.Int32)), on="index", how="inner")
    good = indexed.join(reasons.with_columns(pl.col("index").cast(pl.Int32)), on="index", how="anti").drop(
        "index"
    )
    quarantined = bad.select(
        pl.lit(source).alias("source"),
        pl.col("domain"),
        pl.col("why").alias("reason"),
        pl.struct(pl.exclude("index", "why"))
        .map_elements(lambda r: json.dumps(r, default=str), return_dtype=pl.String)
        .alias("row"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    return good, quarantined
