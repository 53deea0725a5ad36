"""The standard profile fields every provider maps its answers onto.

Each field belongs to one field group; the waterfall decides per group which
provider's values a profile takes. Units are fixed here once: money in USD,
ratios as 0-1 fractions, countries as ISO 3166-1 alpha-2, industries as a
NAICS sector code (2 digits) with its label, timestamps in UTC.
"""

from __future__ import annotations

import polars as pl

GROUPS: dict[str, dict[str, pl.DataType]] = {
    "firmographics": {
        "company_name": pl.String(),
        "industry_naics": pl.String(),
        "industry_label": pl.String(),
        "employees": pl.Int64(),
        "employees_range": pl.String(),
        "country": pl.String(),
        "founded_year": pl.Int64(),
    },
    "financials": {
        "revenue_usd": pl.Float64(),
        "revenue_low_usd": pl.Float64(),
        "revenue_high_usd": pl.Float64(),
        "revenue_growth": pl.Float64(),
        "gross_margin": pl.Float64(),
        "operating_margin": pl.Float64(),
        "market_cap_usd": pl.Float64(),
        "ticker": pl.String(),
        "is_public": pl.Boolean(),
        "total_funding_usd": pl.Float64(),
        # BuiltWith's estimate of the site's monthly technology spend (USD).
        "tech_spend_usd": pl.Float64(),
    },
    "technologies": {
        "technologies": pl.List(pl.String()),
    },
    "traffic": {
        "monthly_visits": pl.Float64(),
        "visits_growth": pl.Float64(),
        "bounce_rate": pl.Float64(),
        "pages_per_visit": pl.Float64(),
        "avg_visit_duration_s": pl.Float64(),
        "global_rank": pl.Int64(),
        "search_share": pl.Float64(),
        "direct_share": pl.Float64(),
    },
}

FIELD_GROUP: dict[str, str] = {f: g for g, fields in GROUPS.items() for f in fields}
FIELD_TYPES: dict[str, pl.DataType] = {f: t for fields in GROUPS.values() for f, t in fields.items()}


# Fields a provider states for nearly every company whatever else it knows: alone they do not
# fill their group. Apollo's record of a private company says `is_public: false` and nothing
# about revenue; counting that as "financials filled" would skip a lower provider's revenue
# estimate. The flag is still kept when no provider has more (see `profiles.pick_groups`).
CONTEXT_ONLY: frozenset[str] = frozenset({"is_public"})


def filled_groups(values: dict[str, object]) -> set[str]:
    """Field groups in which a provider's extracted values fill at least one field."""
    filled = set()
    for field, value in values.items():
        group = FIELD_GROUP.get(field)
        if group and field not in CONTEXT_ONLY and value is not None and value != []:
            filled.add(group)
    return filled
