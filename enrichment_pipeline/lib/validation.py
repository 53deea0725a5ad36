"""Validate staging frames with pandera; rows that fail are quarantined, never dropped silently."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

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


INF = float("inf")
# The ranges the ProviderFields contract enforces, in one place: the contract below
# and the per-answer check at fetch time (`field_problem`) both read them.
FIELD_BOUNDS: dict[str, tuple[float, float]] = {
    "employees": (0, 5_000_000),
    "founded_year": (1600, 2100),
    "revenue_usd": (0, INF),
    "revenue_low_usd": (0, INF),
    "revenue_high_usd": (0, INF),
    "gross_margin": (-10, 1),
    "operating_margin": (-100, 1),
    "market_cap_usd": (0, INF),
    "total_funding_usd": (0, INF),
    "tech_spend_usd": (0, INF),
    "monthly_visits": (0, INF),
    "bounce_rate": (0, 1),
    "search_share": (0, 1),
    "direct_share": (0, 1),
    "referral_share": (0, 1),
    "social_share": (0, 1),
    "pages_per_visit": (0, 1000),
    "avg_visit_duration_s": (0, INF),
    "global_rank": (1, INF),
}
_COUNTRY = r"^[A-Z]{2}$"


def _bounded(name: str) -> Any:
    low, high = FIELD_BOUNDS[name]
    return pa.Field(ge=low, nullable=True) if high == INF else pa.Field(ge=low, le=high, nullable=True)


def field_problem(values: dict[str, Any]) -> str | None:
    """The first standard field whose value the ProviderFields contract would refuse, as a reason."""
    for name, (low, high) in FIELD_BOUNDS.items():
        value = values.get(name)
        if value is not None and not (isinstance(value, int | float) and low <= value <= high):
            return f"{name} out of range ({str(value)[:40]})"
    naics = values.get("industry_naics")
    if naics is not None and naics not in _NAICS:
        return f"industry_naics not a NAICS sector ({str(naics)[:40]})"
    country = values.get("country")
    if country is not None and not (isinstance(country, str) and re.match(_COUNTRY, country)):
        return f"country not ISO alpha-2 ({str(country)[:40]})"
    return None


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
    monthly_visits: float = _bounded("monthly_visits")
    bounce_rate: float = _bounded("bounce_rate")
    pages_per_visit: float = _bounded("pages_per_visit")
    avg_visit_duration_s: float = _bounded("avg_visit_duration_s")
    global_rank: int = _bounded("global_rank")
    search_share: float = _bounded("search_share")
    direct_share: float = _bounded("direct_share")

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
    employees: int = _bounded("employees")
    industry_naics: str = pa.Field(isin=_NAICS, nullable=True)
    country: str = pa.Field(str_matches=_COUNTRY, nullable=True)
    founded_year: int = _bounded("founded_year")
    revenue_usd: float = _bounded("revenue_usd")
    revenue_low_usd: float = _bounded("revenue_low_usd")
    revenue_high_usd: float = _bounded("revenue_high_usd")
    gross_margin: float = _bounded("gross_margin")
    operating_margin: float = _bounded("operating_margin")
    market_cap_usd: float = _bounded("market_cap_usd")
    total_funding_usd: float = _bounded("total_funding_usd")
    tech_spend_usd: float = _bounded("tech_spend_usd")
    monthly_visits: float = _bounded("monthly_visits")
    bounce_rate: float = _bounded("bounce_rate")
    search_share: float = _bounded("search_share")
    direct_share: float = _bounded("direct_share")

    class Config:
        strict = False
        unique = ["provider", "domain"]
