"""Validate staging frames with pandera; rows that fail are quarantined, never dropped silently."""

from __future__ import annotations

import json
from datetime import datetime

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime
from pandera.errors import SchemaError, SchemaErrors

QUARANTINE_SCHEMA = {
    "source": pl.String,
    "domain": pl.String,
    "reason": pl.String,
    "row": pl.String,
    "quarantined_at": pl.Datetime("us", "UTC"),
}


class BuiltWithTechnology(pa.DataFrameModel):
    domain: str = pa.Field(str_matches=r"^[a-z0-9.-]+$")
    technology: str = pa.Field(str_length={"min_value": 1, "max_value": 200})
    tag: str = pa.Field(nullable=True)
    first_detected: DateTime = pa.Field(nullable=True, dtype_kwargs={"time_unit": "us", "time_zone": "UTC"})
    last_detected: DateTime = pa.Field(nullable=True, dtype_kwargs={"time_unit": "us", "time_zone": "UTC"})
    is_premium: bool

    class Config:
        strict = False
        unique = ["domain", "technology"]


class SimilarWebTraffic(pa.DataFrameModel):
    domain: str = pa.Field(str_matches=r"^[a-z0-9.-]+$", unique=True)
    monthly_visits: float = pa.Field(ge=0, nullable=True)
    bounce_rate: float = pa.Field(ge=0, le=1, nullable=True)
    pages_per_visit: float = pa.Field(ge=0, le=1000, nullable=True)
    avg_visit_duration_s: float = pa.Field(ge=0, nullable=True)
    global_rank: int = pa.Field(ge=1, nullable=True)
    search_share: float = pa.Field(ge=0, le=1, nullable=True)
    direct_share: float = pa.Field(ge=0, le=1, nullable=True)

    class Config:
        strict = False


def split_valid(
    frame: pl.DataFrame, schema: type[pa.DataFrameModel], source: str, now: datetime
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


_NAICS = ["11", "21", "22", "23", "31-33", "42", "44-45", "48-49", "51", "52", "53", "54", "55", "56", "61",
          "62", "71", "72", "81", "92"]  # fmt: skip


class ProviderFields(pa.DataFrameModel):
    """Every provider's answers in the standard units (lib/fields.py)."""

    provider: str
    domain: str = pa.Field(str_matches=r"^[a-z0-9.-]+$")
    employees: int = pa.Field(ge=0, le=5_000_000, nullable=True)
    industry_naics: str = pa.Field(isin=_NAICS, nullable=True)
    country: str = pa.Field(str_matches=r"^[A-Z]{2}$", nullable=True)
    founded_year: int = pa.Field(ge=1600, le=2100, nullable=True)
    revenue_usd: float = pa.Field(ge=0, nullable=True)
    revenue_low_usd: float = pa.Field(ge=0, nullable=True)
    revenue_high_usd: float = pa.Field(ge=0, nullable=True)
    gross_margin: float = pa.Field(ge=-10, le=1, nullable=True)
    operating_margin: float = pa.Field(ge=-100, le=1, nullable=True)
    market_cap_usd: float = pa.Field(ge=0, nullable=True)
    total_funding_usd: float = pa.Field(ge=0, nullable=True)
    tech_spend_usd: float = pa.Field(ge=0, nullable=True)
    monthly_visits: float = pa.Field(ge=0, nullable=True)
    bounce_rate: float = pa.Field(ge=0, le=1, nullable=True)
    search_share: float = pa.Field(ge=0, le=1, nullable=True)
    direct_share: float = pa.Field(ge=0, le=1, nullable=True)

    class Config:
        strict = False
        unique = ["provider", "domain"]
