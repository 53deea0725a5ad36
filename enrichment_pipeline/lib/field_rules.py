"""What a standard field's value may be: its range, a NAICS sector, an ISO country code.

One place for these rules: the staging contracts (lib/validation.py) are generated
from them, and `field_problem` applies them to one answer at fetch time, so a value
the contract would refuse is caught as the answer is stored.
"""

from __future__ import annotations

import re
from typing import Any

from enrichment_pipeline.lib.units import NAICS_SECTORS

INF = float("inf")
# Every bounded field, whichever staging table holds it (the provider fields or SimilarWeb's
# traffic table); a table's contract checks each of these columns it has.
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
NAICS: list[str] = list(NAICS_SECTORS)
COUNTRY = r"^[A-Z]{2}$"


def field_problem(values: dict[str, Any]) -> str | None:
    """The first standard field whose value the staging contracts would refuse, as a reason."""
    for name, (low, high) in FIELD_BOUNDS.items():
        value = values.get(name)
        if value is not None and not (isinstance(value, int | float) and low <= value <= high):
            return f"{name} out of range ({str(value)[:40]})"
    naics = values.get("industry_naics")
    if naics is not None and naics not in NAICS:
        return f"industry_naics not a NAICS sector ({str(naics)[:40]})"
    country = values.get("country")
    if country is not None and not (isinstance(country, str) and re.match(COUNTRY, country)):
        return f"country not ISO alpha-2 ({str(country)[:40]})"
    return None
