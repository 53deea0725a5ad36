"""Technology history per domain: what was on a site, from when to when.

The raw table keeps only each domain's current answer, so history is built
incrementally: every new snapshot of a domain's stack is compared with the
technologies currently open for it. New ones open a row (valid_from), missing
ones close theirs (valid_to). A domain's first snapshot is the baseline: it
opens rows but reports no "added" change. A domain the provider no longer
knows is left as it was — missing data is not a removal.
"""

from __future__ import annotations

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "technology": pl.String(),
    "provider": pl.String(),
    "valid_from": UTC_TS,
    "valid_to": UTC_TS,
    "first_detected": UTC_TS,
    "last_detected": UTC_TS,
    "baseline": pl.Boolean(),
}
SNAPSHOTS_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "provider": pl.String(),
    "observed_at": UTC_TS,
}
CHANGES_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "technology": pl.String(),
    "change": pl.String(),
    "seen_at": UTC_TS,
    "provider": pl.String(),
}


def advance(
    history: pl.DataFrame, snapshots: pl.DataFrame, current: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold the current stacks into the history.

    `current` has one row per (domain, technology) with `provider`,
    `observed_at`, `first_detected`, `last_detected`. Returns the new history
    and the new list of processed snapshots. Re-running with the same
    `current` changes nothing.
    """
    history = history.select(list(HISTORY_SCHEMA)).cast(HISTORY_SCHEMA)
    snapshots = snapshots.select(list(SNAPSHOTS_SCHEMA)).cast(SNAPSHOTS_SCHEMA)
    if current.is_empty():
        return history, snapshots
    current = current.select(
        "domain", "technology", "provider", "observed_at", "first_detected", "last_detected"
    ).cast({"observed_at": UTC_TS, "first_detected": UTC_TS, "last_detected": UTC_TS})

    latest = current.group_by("domain", "provider").agg(pl.col("observed_at").max())
    fresh = (
        latest.join(snapshots.rename({"observed_at": "seen"}), on=["domain", "provider"], how="left")
        .filter(pl.col("seen").is_null() | (pl.col("observed_at") > pl.col("seen")))
        .with_columns(pl.col("seen").is_null().alias("first_time"))
        .drop("seen")
    )
    if fresh.is_empty():
        return history, snapshots

    snap = current.join(fresh.select("domain", "provider"), on=["domain", "provider"], how="semi")
    touched = history.join(fresh.select("domain", "provider"), on=["domain", "provider"], how="semi")
    untouched = history.join(fresh.select("domain", "provider"), on=["domain", "provider"], how="anti")
    open_rows = touched.filter(pl.col("valid_to").is_null())
    closed_rows = touched.filter(pl.col("valid_to").is_not_null())
    key = ["domain", "provider", "technology"]
    when = fresh.select("domain", "provider", pl.col("observed_at").alias("_at"), "first_time")

    kept = (
        open_rows.join(snap.select(*key, "last_detected"), on=key, how="inner", suffix="_new")
        .with_columns(pl.coalesce("last_detected_new", "last_detected").alias("last_detected"))
        .drop("last_detected_new")
    )
    removed = (
        open_rows.join(snap.select(key), on=key, how="anti")
        .join(when, on=["domain", "provider"])
        .with_columns(pl.col("_at").alias("valid_to"))
        .drop("_at", "first_time")
    )
    added = (
        snap.join(open_rows.select(key), on=key, how="anti")
        .join(when, on=["domain", "provider"])
        .select(
            "domain",
            "technology",
            "provider",
            pl.col("_at").alias("valid_from"),
            pl.lit(None, dtype=UTC_TS).alias("valid_to"),
            "first_detected",
            "last_detected",
            pl.col("first_time").alias("baseline"),
        )
    )
    new_history = pl.concat(
        [
            frame.select(list(HISTORY_SCHEMA)).cast(HISTORY_SCHEMA)
            for frame in (untouched, closed_rows, kept, removed, added)
        ]
    ).sort("domain", "technology", "valid_from")
    new_snapshots = pl.concat(
        [
            snapshots.join(fresh.select("domain", "provider"), on=["domain", "provider"], how="anti"),
            fresh.select(list(SNAPSHOTS_SCHEMA)).cast(SNAPSHOTS_SCHEMA),
        ]
    )
    return new_history, new_snapshots


def record_ended(history: pl.DataFrame, ended: pl.DataFrame) -> pl.DataFrame:
    """Add technologies a provider reports as gone (BuiltWith's dead entries) as closed rows.

    `ended` has `domain`, `technology`, `provider`, `observed_at`,
    `first_detected`, `last_detected`. A technology the history has never
    held gets one row from its first to its last detection (`baseline`: it
    ended before we looked, so it is no "added" change of ours). Technologies
    the history already knows are left to `advance` (which closes an open row
    when the technology leaves the current stack).
    """
    history = history.select(list(HISTORY_SCHEMA)).cast(HISTORY_SCHEMA)
    if ended.is_empty():
        return history
    key = ["domain", "provider", "technology"]
    rows = (
        ended.cast({"observed_at": UTC_TS, "first_detected": UTC_TS, "last_detected": UTC_TS})
        .join(history.select(key), on=key, how="anti")
        .unique(key, keep="first")
        .select(
            "domain",
            "technology",
            "provider",
            pl.coalesce("first_detected", "last_detected", "observed_at").alias("valid_from"),
            pl.coalesce("last_detected", "observed_at").alias("valid_to"),
            "first_detected",
            "last_detected",
            pl.lit(True).alias("baseline"),
        )
    )
    if rows.is_empty():
        return history
    return pl.concat([history, rows.cast(HISTORY_SCHEMA)]).sort("domain", "technology", "valid_from")


def changes(history: pl.DataFrame) -> pl.DataFrame:
    """Technologies added and removed per domain, with the date the change was seen."""
    added = history.filter(~pl.col("baseline")).select(
        "domain",
        "technology",
        pl.lit("added").alias("change"),
        pl.col("valid_from").alias("seen_at"),
        "provider",
    )
    removed = history.filter(pl.col("valid_to").is_not_null()).select(
        "domain",
        "technology",
        pl.lit("removed").alias("change"),
        pl.col("valid_to").alias("seen_at"),
        "provider",
    )
    return pl.concat([added, removed]).cast(CHANGES_SCHEMA).sort("domain", "seen_at", "change", "technology")
