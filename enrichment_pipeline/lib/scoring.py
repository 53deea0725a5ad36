"""Score company profiles against an ICP model file, vectorized in polars.

The model is data (YAML): bands on numeric fields, technologies present,
disqualifiers and tier thresholds. Scoring reads only the profiles table, so
changing the model and re-scoring never calls a provider.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from datetime import datetime
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from enrichment_pipeline.lib.frames import json_list

Family = Literal["budget", "pain", "timing", "fit"]
ValueFormat = Literal["int", "pct", "signed_pct", "float1", "raw"]
NUMERIC_FIELDS = (
    "monthly_visits",
    "visits_growth",
    "bounce_rate",
    "pages_per_visit",
    "avg_visit_duration_s",
    "global_rank",
    "search_share",
    "direct_share",
    "technology_count",
)
TIERS = ("hot", "warm", "cool", "cold")
SCORE_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "icp_score": pl.Float64(),
    "icp_tier": pl.String(),
    "score_breakdown": pl.String(),
    "score_reasons": pl.String(),
    "disqualified": pl.Boolean(),
    "budget_signal": pl.Float64(),
    "pain_signal": pl.Float64(),
    "timing_signal": pl.Float64(),
    "model_version": pl.String(),
    "model_hash": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
}


class ModelError(ValueError):
    """The ICP model file is invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Strict):
    min: float | None = None
    max: float | None = None
    points: float = Field(ge=0)
    reason: str

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"band min {self.min} must be below max {self.max}")
        return self


class Criterion(_Strict):
    id: str
    family: Family
    field: str | None = None
    format: ValueFormat = "raw"
    bands: list[Band] | None = None
    technologies_any: list[str] | None = None
    points: float | None = Field(default=None, ge=0)
    reason: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        if (self.bands is None) == (self.technologies_any is None):
            raise ValueError("a criterion has either `field` + `bands` or `technologies_any` + `points`")
        if self.bands is not None:
            if self.field not in NUMERIC_FIELDS:
                raise ValueError(f"unknown field {self.field!r}; known: {', '.join(NUMERIC_FIELDS)}")
            ordered = sorted(self.bands, key=lambda b: float("-inf") if b.min is None else b.min)
            for low, high in itertools.pairwise(ordered):
                low_max = float("inf") if low.max is None else low.max
                if high.min is None or high.min < low_max:
                    raise ValueError(f"bands of {self.id!r} overlap")
        elif self.points is None or not self.reason:
            raise ValueError("a technologies_any criterion needs `points` and `reason`")
        return self

    @property
    def max_points(self) -> float:
        return max(b.points for b in self.bands) if self.bands else float(self.points or 0)


class Disqualifier(_Strict):
    """Disqualifies a company whose `field` lies in [min, max) (the same rule as bands)."""

    id: str
    field: str
    format: ValueFormat = "raw"
    min: float | None = None
    max: float | None = None
    reason: str

    @model_validator(mode="after")
    def _checked(self) -> Disqualifier:
        if self.field not in NUMERIC_FIELDS:
            raise ValueError(f"unknown field {self.field!r}; known: {', '.join(NUMERIC_FIELDS)}")
        if self.min is None and self.max is None:
            raise ValueError(f"disqualifier {self.id!r} needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"disqualifier {self.id!r}: min {self.min} must be below max {self.max}")
        return self


class Tiers(_Strict):
    hot: float = Field(gt=0, le=100)
    warm: float = Field(gt=0, le=100)
    cool: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _descending(self) -> Tiers:
        if not self.hot > self.warm > self.cool:
            raise ValueError("tier thresholds must satisfy hot > warm > cool")
        return self


class IcpModel(_Strict):
    version: str
    name: str
    tiers: Tiers
    criteria: list[Criterion] = Field(min_length=1)
    disqualifiers: list[Disqualifier] = []
    file_hash: str = ""

    @model_validator(mode="after")
    def _unique_ids(self) -> IcpModel:
        ids = [c.id for c in self.criteria] + [d.id for d in self.disqualifiers]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate criterion id(s): {', '.join(duplicates)}")
        return self

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.criteria)


def default_model_path() -> Path:
    return Path(str(resources.files("enrichment_pipeline") / "config" / "icp_model.yaml"))


def load_model(path: str | Path | None = None) -> IcpModel:
    path = Path(path or os.environ.get("ICP_MODEL") or default_model_path())
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read ICP model {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a mapping at the top level")
    try:
        model = IcpModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelError(f"{path}: {where}: {first['msg']}") from None
    if model.max_points <= 0:
        raise ModelError(f"{path}: the criteria can give no points")
    return model.model_copy(update={"file_hash": hashlib.sha256(raw).hexdigest()[:16]})


def _formatted(expr: pl.Expr, fmt: ValueFormat) -> pl.Expr:
    if fmt == "int":
        return expr.round(0).cast(pl.Int64).cast(pl.String)
    if fmt == "pct":
        return (expr * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")
    if fmt == "signed_pct":
        pct = (expr * 100).round(0).cast(pl.Int64)
        return pl.when(pct >= 0).then(pl.lit("+")).otherwise(pl.lit("")) + pct.cast(pl.String) + pl.lit("%")
    if fmt == "float1":
        return expr.round(1).cast(pl.String)
    return expr.cast(pl.String)


def _template(text: str, value: pl.Expr | None, matched: pl.Expr | None) -> pl.Expr:
    """Fill `{value}` / `{matched}` vectorized (no per-row Python)."""
    parts: list[pl.Expr] = []
    rest = text
    while rest:
        cut = min(
            (i for i in (rest.find("{value}"), rest.find("{matched}")) if i >= 0),
            default=-1,
        )
        if cut < 0:
            parts.append(pl.lit(rest))
            break
        parts.append(pl.lit(rest[:cut]))
        if rest.startswith("{value}", cut):
            parts.append(value if value is not None else pl.lit(""))
            rest = rest[cut + len("{value}") :]
        else:
            parts.append(matched if matched is not None else pl.lit(""))
            rest = rest[cut + len("{matched}") :]
    return pl.concat_str(parts)


def _in_band(col: pl.Expr, low: float | None, high: float | None) -> pl.Expr:
    cond = col.is_not_null()
    if low is not None:
        cond = cond & (col >= low)
    if high is not None:
        cond = cond & (col < high)
    return cond


def _criterion(c: Criterion, techs: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(points, reason-or-null) expressions for one criterion."""
    if c.bands is not None:
        col = pl.col(c.field).cast(pl.Float64)
        value = _formatted(col, c.format)
        points: pl.Expr = pl.lit(0.0)
        reason: pl.Expr = pl.lit(None, dtype=pl.String)
        for band in reversed(c.bands):
            hit = _in_band(col, band.min, band.max)
            points = pl.when(hit).then(pl.lit(float(band.points))).otherwise(points)
            reason = pl.when(hit).then(_template(band.reason, value, None)).otherwise(reason)
        return points, reason
    wanted = pl.lit(pl.Series(c.technologies_any, dtype=pl.String).implode())
    matched = techs.list.set_intersection(wanted)
    hit = matched.list.len() > 0
    label = matched.list.join(", ")
    return (
        pl.when(hit).then(pl.lit(float(c.points or 0))).otherwise(pl.lit(0.0)),
        pl.when(hit).then(_template(c.reason or "", None, label)).otherwise(pl.lit(None, dtype=pl.String)),
    )


def score_profiles(profiles: pl.DataFrame, model: IcpModel, scored_at: datetime) -> pl.DataFrame:
    """One row per domain: icp_score, icp_tier, breakdown, reasons and signals."""
    techs = pl.col("_techs")
    frame = profiles.lazy().with_columns(
        pl.col("technologies").fill_null("[]").str.json_decode(pl.List(pl.String)).alias("_techs")
    )
    point_cols, reason_cols = [], []
    for c in model.criteria:
        points, reason = _criterion(c, techs)
        point_cols.append(points.alias(f"_p_{c.id}"))
        reason_cols.append(reason.alias(f"_r_{c.id}"))
    dq_reasons = []
    for d in model.disqualifiers:
        col = pl.col(d.field).cast(pl.Float64)
        hit = col.is_not_null()
        if d.min is not None:
            hit = hit & (col >= d.min)
        if d.max is not None:
            hit = hit & (col < d.max)
        dq_reasons.append(
            pl.when(hit).then(_template(d.reason, _formatted(col, d.format), None)).alias(f"_dq_{d.id}")
        )
    frame = frame.with_columns(*point_cols, *reason_cols, *dq_reasons)

    total = reduce(lambda a, b: a + b, (pl.col(f"_p_{c.id}") for c in model.criteria))
    disqualified = (
        pl.any_horizontal(*(pl.col(f"_dq_{d.id}").is_not_null() for d in model.disqualifiers))
        if model.disqualifiers
        else pl.lit(False)
    )
    raw_score = (total / model.max_points * 100).clip(0, 100).round(1)
    score = pl.when(disqualified).then(pl.lit(0.0)).otherwise(raw_score)
    tier = (
        pl.when(score >= model.tiers.hot)
        .then(pl.lit("hot"))
        .when(score >= model.tiers.warm)
        .then(pl.lit("warm"))
        .when(score >= model.tiers.cool)
        .then(pl.lit("cool"))
        .otherwise(pl.lit("cold"))
    )

    def family(name: str) -> pl.Expr:
        members = [c for c in model.criteria if c.family == name]
        possible = sum(c.max_points for c in members)
        if not members or possible == 0:
            return pl.lit(None, dtype=pl.Float64)
        got = reduce(lambda a, b: a + b, (pl.col(f"_p_{c.id}") for c in members))
        return (got / possible * 100).round(1)

    breakdown = pl.struct(*(pl.col(f"_p_{c.id}").alias(c.id) for c in model.criteria)).struct.json_encode()
    reasons_list = pl.concat_list(
        *(pl.col(f"_dq_{d.id}") for d in model.disqualifiers),
        *(pl.col(f"_r_{c.id}") for c in model.criteria),
    ).list.drop_nulls()
    return (
        frame.select(
            "domain",
            score.alias("icp_score"),
            tier.alias("icp_tier"),
            breakdown.alias("score_breakdown"),
            reasons_list.alias("_reasons"),
            disqualified.alias("disqualified"),
            family("budget").alias("budget_signal"),
            family("pain").alias("pain_signal"),
            family("timing").alias("timing_signal"),
            pl.lit(model.version).alias("model_version"),
            pl.lit(model.file_hash).alias("model_hash"),
            pl.lit(scored_at, dtype=pl.Datetime("us", "UTC")).alias("scored_at"),
        )
        .with_columns(
            json_list(pl.col("_reasons")).alias("score_reasons"),
        )
        .drop("_reasons")
        .collect()
    )
