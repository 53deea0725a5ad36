"""Technology history per domain and the changes BI tools chart over time."""

import dagster as dg
import polars as pl

from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.defs.staging.assets import builtwith_technologies
from enrichment_pipeline.lib import tech_history

HISTORY_TABLE = "staging.technology_history"
SNAPSHOTS_TABLE = "staging.technology_snapshots"
CHANGES_TABLE = "marts.tech_changes"


def _table_or_empty(wh, table: str, schema: dict) -> pl.DataFrame:
    return wh.table(table) if wh.has_table(table) else pl.DataFrame(schema=schema)


@dg.asset(
    key=dg.AssetKey(["staging", "technology_history"]),
    deps=[builtwith_technologies],
    group_name="history",
    kinds={"polars", "duckdb"},
)
def technology_history(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Valid-from / valid-to per domain x technology, folded in from each new snapshot.

    Technologies BuiltWith still lists but no longer detects (dead ones) enter
    the history as closed rows ending at their last detection, never the stack.
    """
    with warehouse.open() as wh:
        history = _table_or_empty(wh, HISTORY_TABLE, tech_history.HISTORY_SCHEMA)
        snapshots = _table_or_empty(wh, SNAPSHOTS_TABLE, tech_history.SNAPSHOTS_SCHEMA)
        stack = wh.table("staging.builtwith_technologies")
        live = pl.col("is_live").fill_null(True) if "is_live" in stack.columns else pl.lit(True)
        new_history, new_snapshots = tech_history.advance(history, snapshots, stack.filter(live))
        new_history = tech_history.record_ended(new_history, stack.filter(~live))
        with wh.transaction():
            wh.replace_table(HISTORY_TABLE, new_history, tech_history.HISTORY_SCHEMA)
            wh.replace_table(SNAPSHOTS_TABLE, new_snapshots, tech_history.SNAPSHOTS_SCHEMA)
    return dg.MaterializeResult(
        metadata={
            "rows": new_history.height,
            "open_rows": int(new_history["valid_to"].is_null().sum()),
            "new_snapshots": new_snapshots.join(
                snapshots, on=["domain", "provider", "observed_at"], how="anti"
            ).height,
        }
    )


@dg.asset(
    key=dg.AssetKey(["marts", "tech_changes"]),
    deps=[technology_history],
    group_name="history",
    kinds={"polars", "duckdb"},
)
def tech_changes(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Technologies added and removed per domain, with the date each change was seen."""
    with warehouse.open() as wh:
        history = _table_or_empty(wh, HISTORY_TABLE, tech_history.HISTORY_SCHEMA)
        frame = tech_history.changes(history)
        rows = wh.replace_table(CHANGES_TABLE, frame, tech_history.CHANGES_SCHEMA)
    counts = {c: int(n) for c, n in frame["change"].value_counts().iter_rows()} if rows else {}
    return dg.MaterializeResult(metadata={"rows": rows, "by_change": dg.MetadataValue.json(counts)})
