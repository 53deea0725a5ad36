"""Small vectorized polars helpers shared by the table builders."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def json_list(expr: pl.Expr) -> pl.Expr:
    """A list column as a JSON array string, without per-row Python."""
    return pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.head(-1)


def first_present(names: pl.Expr, candidates: Sequence[str]) -> pl.Expr:
    """The first candidate (in the candidates' order of preference) found in a list column."""
    return pl.coalesce(
        *(pl.when(names.list.contains(pl.lit(c))).then(pl.lit(c)) for c in candidates),
        pl.lit(None, dtype=pl.String),
    )
