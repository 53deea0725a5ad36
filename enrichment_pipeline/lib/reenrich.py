"""Which domains a scattered re-enrichment covers: the failed ones, an ICP tier, a given list."""

from __future__ import annotations

from collections.abc import Sequence

from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline.lib.warehouse.schema import answered_sql

TIERS = ("hot", "warm", "cool", "cold")

# Domains whose current answers from every provider that was called are failures
# (no `ok`, no `not_found`): the ones a data engineer wants to try again.
FAILED_SQL = f"""
SELECT domain FROM raw.provider_responses
WHERE status <> 'skipped' AND mode = ?
GROUP BY domain
HAVING sum(CASE WHEN {answered_sql()} THEN 1 ELSE 0 END) = 0
ORDER BY domain
"""
TIER_SQL = "SELECT domain FROM marts.icp_scores WHERE icp_tier = ? ORDER BY domain"


class SelectionError(ValueError):
    """A re-enrichment selection that names nothing sensible."""


def failed_domains(wh: Warehouse, mode: str) -> list[str]:
    if not wh.has_table("raw.provider_responses"):
        return []
    return [d for (d,) in wh.query(FAILED_SQL, [mode]).iter_rows()]


def tier_domains(wh: Warehouse, tier: str) -> list[str]:
    if tier not in TIERS:
        raise SelectionError(f"unknown ICP tier {tier!r}: expected one of {', '.join(TIERS)}")
    if not wh.has_table("marts.icp_scores"):
        return []
    return [d for (d,) in wh.query(TIER_SQL, [tier]).iter_rows()]


def select(wh: Warehouse, *, mode: str, failed: bool, tier: str | None, listed: Sequence[str]) -> list[str]:
    """The union of the selections, in a stable order (listed first, then failed, then tier)."""
    chosen: dict[str, None] = dict.fromkeys(listed)
    if failed:
        chosen.update(dict.fromkeys(failed_domains(wh, mode)))
    if tier:
        chosen.update(dict.fromkeys(tier_domains(wh, tier)))
    return list(chosen)
