"""ICP scores computed from the profiles table alone: re-scoring never calls a provider."""

from datetime import UTC, datetime

import dagster as dg

from enrichment_pipeline.defs.profiles.assets import PROFILES_TABLE, company_profiles
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib.scoring import SCORE_SCHEMA, load_model, score_profiles

SCORES_TABLE = "marts.icp_scores"


class ScoringConfig(dg.Config):
    model_path: str | None = None  # default: ICP_MODEL, else the bundled model


@dg.asset(
    key=dg.AssetKey(["marts", "icp_scores"]),
    deps=[company_profiles],
    group_name="scoring",
    kinds={"polars", "duckdb"},
)
def icp_scores(config: ScoringConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Score 0-100, tier, per-criterion breakdown, reasons and budget/pain/timing signals."""
    model = load_model(config.model_path)
    with warehouse.open() as wh:
        scores = score_profiles(wh.table(PROFILES_TABLE), model, datetime.now(UTC))
        rows = wh.replace_table(SCORES_TABLE, scores, SCORE_SCHEMA, ("domain",))
    tiers = {t: int(n) for t, n in scores["icp_tier"].value_counts().iter_rows()}
    top = scores.sort("icp_score", descending=True).head(10).select("domain", "icp_score", "icp_tier")
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "model_version": model.version,
            "model_hash": model.file_hash,
            "tiers": dg.MetadataValue.json(tiers),
            "mean_score": float(scores["icp_score"].mean() or 0.0),
            "top_10": dg.MetadataValue.md(_markdown(top)),
        }
    )


@dg.asset_check(asset=icp_scores, description="Scores lie in 0-100 and every tier matches the thresholds.")
def scores_in_range(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.open() as wh:
        bad = wh.query(f"SELECT domain FROM {SCORES_TABLE} WHERE icp_score < 0 OR icp_score > 100")
    return dg.AssetCheckResult(passed=bad.is_empty(), metadata={"out_of_range": bad.height})


def _markdown(frame) -> str:
    if frame.is_empty():
        return "no scores"
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)
