"""ICP scores computed from the warehouse alone (profiles + technology changes).

Re-scoring with another model never calls a provider: this asset needs no
provider or HTTP resource at all.
"""

from datetime import UTC, datetime

import dagster as dg

from enrichment_pipeline.defs.history.assets import CHANGES_TABLE, tech_changes
from enrichment_pipeline.defs.profiles.assets import PROFILES_TABLE, company_profiles
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib.scoring.engine import (
    SCORE_SCHEMA,
    SIGNAL_FAMILIES,
    score_profiles,
    with_recent_tech_changes,
)
from enrichment_pipeline.lib.scoring.loader import ModelError, load_model, model_in_dir

SCORES_TABLE = "marts.icp_scores"
SCORES_KEY = dg.AssetKey(["marts", "icp_scores"])


class ScoringConfig(dg.Config):
    """Re-score with another model from the launchpad: `model` is a file NAME in the models
    directory (`ICP_MODELS_DIR`, default the bundled config folder), never a path, so whoever can
    launch a run reads no other file the worker can. Unset: `ICP_MODEL`, else the bundled model."""

    model: str | None = None


@dg.asset(
    key=SCORES_KEY,
    deps=[company_profiles, tech_changes],
    group_name="scoring",
    kinds={"polars", "duckdb"},
)
def icp_scores(config: ScoringConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Score 0-100, tier, per-criterion breakdown, reasons and budget/pain/timing signals."""
    # No asset check re-tests the range: the engine clips every score to 0-100 and a
    # disqualified company scores 0 (below every tier's threshold), property-tested in lib.
    try:
        model = load_model(model_in_dir(config.model) if config.model else None)
    except ModelError as exc:
        raise dg.Failure(description=f"invalid ICP model:\n{exc}") from None
    scored_at = datetime.now(UTC)
    with warehouse.open() as wh:
        changes = wh.table(CHANGES_TABLE) if wh.has_table(CHANGES_TABLE) else None
        profiles = with_recent_tech_changes(wh.table(PROFILES_TABLE), changes, model, scored_at)
        scores = score_profiles(profiles, model, scored_at)
        # A scores table from before a column was added is recreated by `replace_table`.
        rows = wh.replace_table(SCORES_TABLE, scores, SCORE_SCHEMA, ("domain",))
    tiers = {t: int(n) for t, n in scores["icp_tier"].value_counts().iter_rows()}
    top = scores.sort("icp_score", descending=True).head(10).select("domain", "icp_score", "icp_tier")
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "model_version": model.version,
            "model_hash": model.file_hash,
            "tiers": dg.MetadataValue.json(tiers),
            "disqualified": int(scores["disqualified"].sum()),
            "mean_score": float(scores["icp_score"].mean() or 0.0),
            **{f"mean_{f}_signal": float(scores[f"{f}_signal"].mean() or 0.0) for f in SIGNAL_FAMILIES},
            "recent_tech_changes_window_days": model.recent_tech_changes.window_days,
            "top_10": dg.MetadataValue.md(_markdown(top)),
        }
    )


def _markdown(frame) -> str:
    if frame.is_empty():
        return "no scores"
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)
