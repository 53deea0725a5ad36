"""Score company profiles against a validated ICP model, vectorized in polars.

Each criterion and disqualifier becomes polars expressions (no per-row Python).
Unknown values (null) never earn points and never disqualify. The score is the
points earned as a share of all criteria's best points (0-100); a disqualified
company scores 0 and is `cold`. Scoring reads only the profiles table (and the
count of recent technology changes joined onto it), so changing the model and
re-scoring never calls a provider.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import reduce

import polars as pl

from enrichment_pipeline.lib.scoring.model import (
    RECENT_TECH_CHANGES,
    Criterion,
    Disqualifier,
    IcpModel,
    ValueFormat,
)

SIGNAL_FAMILIES = ("budget", "pain", "timing")
TIERS = ("hot", "warm", "cool", "cold")
SCORE_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "icp_score": pl.Float64(),
    "icp_tier": pl.String(),
    "score_breakdown": pl.String(),
    "score_reasons": pl.String(),
    "disqualified": pl.Boolean(),
    "disqualification_reason": pl.String(),
    "budget_signal": pl.Float64(),
    "pain_signal": pl.Float64(),
    "timing_signal": pl.Float64(),
    "model_version": pl.String(),
    "model_hash": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
}

_NULL_TEXT = pl.lit(None, dtype=pl.String)


def _number(name: str) -> pl.Expr:
    """A numeric field as Float64, NaN as unknown (polars orders NaN above every number)."""
    return pl.col(name).cast(pl.Float64).fill_nan(None)


def _formatted(expr: pl.Expr, fmt: ValueFormat) -> pl.Expr:
    """A number as reason text (vectorized); values too large for an integer show as "?"."""
    if fmt == "int":
        return expr.round(0).cast(pl.Int64, strict=False).cast(pl.String)
    if fmt == "pct":
        return (expr * 100).round(0).cast(pl.Int64, strict=False).cast(pl.String) + pl.lit("%")
    if fmt == "signed_pct":
        pct = (expr * 100).round(0).cast(pl.Int64, strict=False)
        return pl.when(pct >= 0).then(pl.lit("+")).otherwise(pl.lit("")) + pct.cast(pl.String) + pl.lit("%")
    if fmt == "float1":
        return expr.round(1).cast(pl.String)
    if fmt == "usd":  # $1.2B, $350M, $12K, $900
        size = expr.abs()
        sign = pl.when(expr < 0).then(pl.lit("-")).otherwise(pl.lit(""))

        def scaled(div: float, suffix: str) -> pl.Expr:
            return (size / div).round(1).cast(pl.String).str.strip_suffix(".0") + pl.lit(suffix)

        body = (
            pl.when(size >= 1e9)
            .then(scaled(1e9, "B"))
            .when(size >= 1e6)
            .then(scaled(1e6, "M"))
            .when(size >= 1e3)
            .then(scaled(1e3, "K"))
            .otherwise(size.round(0).cast(pl.Int64, strict=False).cast(pl.String))
        )
        return sign + pl.lit("$") + body
    return expr.cast(pl.String)


def _template(text: str, fills: dict[str, pl.Expr]) -> pl.Expr:
    """Fill `{name}` placeholders vectorized (no per-row Python); validated names only."""
    pieces = re.split(r"\{(\w*)\}", text)
    parts: list[pl.Expr] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            parts.append(fills[piece].fill_null("?"))
        elif piece:
            parts.append(pl.lit(piece))
    return pl.concat_str(parts) if parts else pl.lit("")


def _in_range(col: pl.Expr, low: float | None, high: float | None) -> pl.Expr:
    cond = col.is_not_null()
    if low is not None:
        cond = cond & (col >= low)
    if high is not None:
        cond = cond & (col < high)
    return cond


def _json_patterns(names: Sequence[str]) -> dict[str, str]:
    """Each name as a quoted JSON string (UTF-8 and ASCII-escaped spellings) -> the name."""
    return {json.dumps(n, ensure_ascii=ascii): n for n in names for ascii in (False, True)}


_ELEMENT_START = r"[\[,]\s*"


def _element_regex(names: Sequence[str]) -> str:
    """A regex for any of the names as a whole element of a JSON array of strings: the quoted
    name right after `[` or `,`. Inside an encoded string a quote is always escaped, so the
    match can neither start nor end inside another element (`Quote"Tech` never matches `Tech`)."""
    return _ELEMENT_START + "(?:" + "|".join(re.escape(p) for p in _json_patterns(names)) + ")"


def _stack_has_any(names: Sequence[str]) -> pl.Expr:
    """Whether the stack (`technologies`, a JSON array of strings) lists any of the names; null
    when the stack is unknown. One regex pass over the JSON text, no decoding of millions of arrays."""
    return pl.col("technologies").str.contains(_element_regex(names))


def _stack_matches(names: Sequence[str]) -> pl.Expr:
    """The listed names the stack contains, in stack order, joined with ", "."""
    patterns = _json_patterns(names)
    name = pl.element().str.replace(_ELEMENT_START, "").replace_strict(patterns, return_dtype=pl.String)
    return (
        pl.col("technologies")
        .str.extract_all(_element_regex(names))
        .list.eval(name)
        .list.unique(maintain_order=True)
        .list.join(", ")
    )


def _membership(column: str, values: Sequence[str]) -> pl.Expr:
    return pl.col(column).is_in(list(values)).fill_null(False)


def _band_index(c: Criterion) -> pl.Expr:
    """Which band the value falls in (null: none, or unknown)."""
    assert c.bands is not None and c.field is not None
    col = _number(c.field)
    index: pl.Expr = pl.lit(None, dtype=pl.Int32)
    for i in reversed(range(len(c.bands))):
        band = c.bands[i]
        index = pl.when(_in_range(col, band.min, band.max)).then(pl.lit(i, dtype=pl.Int32)).otherwise(index)
    return index


def _hit(item: Criterion | Disqualifier) -> pl.Expr:
    """Stage 1: per criterion the band index (bands) or whether it applies; per disqualifier
    whether it applies. Computed once, then read by the points and the reasons."""
    if isinstance(item, Criterion) and item.bands is not None:
        return _band_index(item)
    if isinstance(item, Disqualifier) and item.field is not None:
        return _in_range(_number(item.field), item.min, item.max)
    if item.industries is not None:
        return _membership("industry_naics", item.industries)
    if item.countries is not None:
        return _membership("country", item.countries)
    assert isinstance(item, Criterion)
    if item.technologies_any is not None:
        return _stack_has_any(item.technologies_any).fill_null(False)
    # Only a known stack can show an absence: an unknown stack earns nothing.
    assert item.technologies_none is not None
    return (~_stack_has_any(item.technologies_none)).fill_null(False)


def _fills(item: Criterion | Disqualifier) -> dict[str, pl.Expr]:
    """The placeholder values a reason of this criterion or disqualifier can use."""
    if item.field is not None:
        return {"value": _formatted(_number(item.field), item.format)}
    if item.industries is not None:
        return {"value": pl.coalesce("industry_label", "industry_naics"), "code": pl.col("industry_naics")}
    if item.countries is not None:
        return {"value": pl.col("country")}
    wants_matched = "{matched}" in (getattr(item, "reason", None) or "")
    if isinstance(item, Criterion) and item.technologies_any is not None and wants_matched:
        return {"matched": _stack_matches(item.technologies_any)}
    return {}


def _criterion(c: Criterion, hit: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Stage 2: (points, reason-or-null) of one criterion from its stage-1 column."""
    fills = _fills(c)
    if c.bands is not None:
        points: pl.Expr = pl.lit(0.0)
        template: pl.Expr = _NULL_TEXT
        for i in reversed(range(len(c.bands))):
            band = c.bands[i]
            points = pl.when(hit == i).then(pl.lit(float(band.points))).otherwise(points)
            template = pl.when(hit == i).then(pl.lit(band.reason)).otherwise(template)
        # Bands know one placeholder, {value}: one replacing pass over the chosen template.
        if any("{value}" in b.reason for b in c.bands):
            template = template.str.replace_all("{value}", fills["value"].fill_null("?"), literal=True)
        return points, template
    return (
        pl.when(hit).then(pl.lit(float(c.points or 0))).otherwise(pl.lit(0.0)),
        pl.when(hit).then(_template(c.reason or "", fills)).otherwise(_NULL_TEXT),
    )


def _disqualifier(d: Disqualifier, hit: pl.Expr) -> pl.Expr:
    """Stage 2: the reason (null when the company is not disqualified by `d`)."""
    return pl.when(hit).then(_template(d.reason, _fills(d))).otherwise(_NULL_TEXT)


def _json_string(text: pl.Expr, *, plain: bool = False) -> pl.Expr:
    """A string as a JSON string literal, null stays null. `plain`: the text is known to need no
    escaping (our own template text with numbers or model-listed names filled in): just quote it."""
    if plain:
        return pl.lit('"') + text + pl.lit('"')
    encoded = pl.struct(text.alias("v")).struct.json_encode().str.slice(5).str.head(-1)
    return pl.when(text.is_not_null()).then(encoded)


def _plain(text: str) -> bool:
    return json.dumps(text, ensure_ascii=False)[1:-1] == text


def _plain_reason(item: Criterion | Disqualifier) -> bool:
    """Whether every reason this item can produce is JSON-safe as it is: template text without
    quotes, backslashes or control characters, filled with formatted numbers or names from the
    model. Provider text (industry labels, countries) is always escaped."""
    if item.industries is not None or item.countries is not None:
        return False
    bands = item.bands if isinstance(item, Criterion) else None
    texts = [b.reason for b in bands] if bands else [item.reason or ""]
    if isinstance(item, Criterion) and item.technologies_any is not None:
        texts += item.technologies_any
    return all(_plain(t) for t in texts)


def _total(exprs: Sequence[pl.Expr]) -> pl.Expr:
    return reduce(lambda a, b: a + b, exprs)


def score_profiles(profiles: pl.DataFrame, model: IcpModel, scored_at: datetime) -> pl.DataFrame:
    """One row per profile (SCORE_SCHEMA): score, tier, breakdown, reasons, signals. No per-row Python.

    `recent_tech_changes` is read when the frame has it (`with_recent_tech_changes`); otherwise
    it is unknown and criteria on it earn nothing."""
    frame = profiles.lazy()
    if RECENT_TECH_CHANGES not in profiles.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(RECENT_TECH_CHANGES))
    frame = frame.with_columns(
        *(_hit(c).alias(f"_h_{c.id}") for c in model.criteria),
        *(_hit(d).alias(f"_hd_{d.id}") for d in model.disqualifiers),
    )
    columns = []
    for c in model.criteria:
        points, reason = _criterion(c, pl.col(f"_h_{c.id}"))
        columns += [points.alias(f"_p_{c.id}"), reason.alias(f"_r_{c.id}")]
    columns += [_disqualifier(d, pl.col(f"_hd_{d.id}")).alias(f"_dq_{d.id}") for d in model.disqualifiers]
    frame = frame.with_columns(columns)

    dq_reasons = [pl.col(f"_dq_{d.id}") for d in model.disqualifiers]
    disqualified = pl.any_horizontal(*(r.is_not_null() for r in dq_reasons)) if dq_reasons else pl.lit(False)
    earned = _total([pl.col(f"_p_{c.id}") for c in model.criteria])
    raw_score = (earned / model.max_points * 100).clip(0, 100).round(1)
    frame = frame.with_columns(disqualified.alias("disqualified")).with_columns(
        pl.when(pl.col("disqualified")).then(pl.lit(0.0)).otherwise(raw_score).alias("icp_score")
    )
    disqualified, score = pl.col("disqualified"), pl.col("icp_score")
    tier = (
        pl.when(score >= model.tiers.hot)
        .then(pl.lit("hot"))
        .when(score >= model.tiers.warm)
        .then(pl.lit("warm"))
        .when(score >= model.tiers.cool)
        .then(pl.lit("cool"))
        .otherwise(pl.lit("cold"))
    )

    def signal(family: str) -> pl.Expr:
        members = [c for c in model.criteria if c.family == family]
        possible = sum(c.max_points for c in members)
        if possible <= 0:
            return pl.lit(None, dtype=pl.Float64)
        got = _total([pl.col(f"_p_{c.id}") for c in members])
        return (got / possible * 100).clip(0, 100).round(1)

    breakdown = pl.struct(*(pl.col(f"_p_{c.id}").alias(c.id) for c in model.criteria)).struct.json_encode()
    # A JSON array of the non-null reasons: each one JSON-encoded by polars, joined as text
    # (2-3x faster than concat_list + drop_nulls + encoding the list).
    reasons = pl.concat_str(
        pl.lit("["),
        pl.concat_str(
            [
                *(_json_string(pl.col(f"_dq_{d.id}"), plain=_plain_reason(d)) for d in model.disqualifiers),
                *(_json_string(pl.col(f"_r_{c.id}"), plain=_plain_reason(c)) for c in model.criteria),
            ],
            separator=",",
            ignore_nulls=True,
        ),
        pl.lit("]"),
    )
    dq_text = (
        pl.when(disqualified).then(pl.concat_str(dq_reasons, separator="; ", ignore_nulls=True))
        if dq_reasons
        else _NULL_TEXT
    )
    return (
        frame.select(
            pl.col("domain").cast(pl.String),
            score,
            tier.alias("icp_tier"),
            breakdown.alias("score_breakdown"),
            reasons.alias("score_reasons"),
            disqualified,
            dq_text.alias("disqualification_reason"),
            *(signal(f).alias(f"{f}_signal") for f in SIGNAL_FAMILIES),
            pl.lit(model.version).alias("model_version"),
            pl.lit(model.file_hash).alias("model_hash"),
            pl.lit(scored_at, dtype=pl.Datetime("us", "UTC")).alias("scored_at"),
        )
        .cast(SCORE_SCHEMA)  # type: ignore[arg-type]
        .collect()
    )


# --------------------------------------------------------------------------- recent technology changes


def recent_tech_change_counts(changes: pl.DataFrame, model: IcpModel, scored_at: datetime) -> pl.DataFrame:
    """Per domain, the technology changes (marts.tech_changes) of the kinds the model counts seen in
    the model's window before `scored_at` (domain, recent_tech_changes)."""
    window = model.recent_tech_changes
    since = scored_at - timedelta(days=window.window_days)
    return (
        changes.lazy()
        .filter(pl.col("change").is_in(list(window.changes)) & (pl.col("seen_at") > since))
        .group_by("domain")
        .agg(pl.len().cast(pl.Int64).alias(RECENT_TECH_CHANGES))
        .collect()
    )


def with_recent_tech_changes(
    profiles: pl.DataFrame, changes: pl.DataFrame | None, model: IcpModel, scored_at: datetime
) -> pl.DataFrame:
    """The profiles with `recent_tech_changes`: the count in the window; 0 when the stack is known
    and nothing changed; unknown (null) when neither the stack nor any change is known, or when
    there is no changes table at all."""
    if changes is None:
        return profiles.with_columns(pl.lit(None, dtype=pl.Int64).alias(RECENT_TECH_CHANGES))
    counts = recent_tech_change_counts(changes, model, scored_at)
    return (
        profiles.drop(RECENT_TECH_CHANGES, strict=False)
        .join(counts, on="domain", how="left")
        .with_columns(
            pl.coalesce(
                pl.col(RECENT_TECH_CHANGES),
                pl.when(pl.col("technologies").is_not_null()).then(pl.lit(0, dtype=pl.Int64)),
            ).alias(RECENT_TECH_CHANGES)
        )
    )
