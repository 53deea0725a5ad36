"""Publish the marts to the serving DuckDB file after each successful run.

Runs inside the run that owns the warehouse (DuckDB lets no other process open
the file meanwhile) and swaps a fresh copy of every `marts` table in atomically,
so BI tools reading the serving file never wait for, nor block, the pipeline.
"""

import time

import dagster as dg

from enrichment_pipeline.defs.history.assets import tech_changes
from enrichment_pipeline.defs.profiles.assets import PROFILES_KEY
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.defs.scoring.assets import icp_scores
from enrichment_pipeline.lib import serving

SERVING_KEY = dg.AssetKey(["serving", "marts_snapshot"])
# The dbt marts (models of dbt_models/models/marts/); a test checks this list against the manifest.
DBT_MART_KEYS = [
    dg.AssetKey(["marts", name])
    for name in (
        "dim_company",
        "fct_company_technology",
        "fct_tech_changes",
        "icp_leaderboard",
        "provider_coverage_and_cost",
        "tech_adoption_by_industry",
    )
]


@dg.asset(
    key=SERVING_KEY,
    deps=[PROFILES_KEY, icp_scores, tech_changes, *DBT_MART_KEYS],
    group_name="serving",
    kinds={"duckdb"},
)
def marts_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every `marts` table (Python and dbt) copied to the serving DuckDB file, swapped in atomically.

    The file is where the operator says (`SERVING_DUCKDB`, else next to the warehouse file), never
    where a run's config says: whoever can launch a run must not be able to replace any file the
    worker can write."""
    url = warehouse.resolved_url()
    path = serving.serving_path(url)
    started = time.perf_counter()
    with warehouse.open() as wh:
        counts = serving.publish(wh, path)
    seconds = time.perf_counter() - started
    context.log.info(f"published {len(counts)} tables to {path} in {seconds:.2f} s")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path.absolute())),
            "tables": len(counts),
            "rows": sum(counts.values()),
            "rows_per_table": dg.MetadataValue.json(counts),
            "seconds": round(seconds, 3),
        }
    )
