"""A small, realistic warehouse for the dbt and serving tests.

The source tables of `dbt_models/` filled with a handful of companies: profiles and
scores in the pipeline's own schemas (`profile_row` and the two frame builders serve
the API tests too), raw responses written through `write_responses`, the BuiltWith
stack, its technology history and the changes derived from it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from enrichment_pipeline.lib import staging, tech_history
from enrichment_pipeline.lib.domains import display_domain
from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.scoring.engine import SCORE_SCHEMA
from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse

UTC_TS = pl.Datetime("us", "UTC")
T0 = datetime(2025, 3, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=30)

# domain -> (name, NAICS sector, label, employees, country, public ticker, status)
COMPANIES = {
    "shopify.com": ("Shopify", "51", "Information", 8300, "CA", "SHOP", "enriched"),
    "stripe.com": ("Stripe", "52", "Finance and Insurance", 7000, "US", None, "enriched"),
    "allbirds.com": ("Allbirds", "44-45", "Retail Trade", 700, "US", "BIRD", "partial"),
    "glossier.com": ("Glossier", "44-45", "Retail Trade", 250, "US", None, "enriched"),
    "warbyparker.com": ("Warby Parker", "44-45", "Retail Trade", 3000, "US", "WRBY", "enriched"),
    "unknown-shop.example": (None, None, None, None, None, None, "not_found"),
    "down.example": (None, None, None, None, None, None, "failed"),
}

# The latest BuiltWith stack per domain (observed at T1).
STACKS = {
    "shopify.com": ["Shopify", "Google Analytics", "Cloudflare"],
    "stripe.com": ["Google Analytics", "Cloudflare", "Algolia"],
    "allbirds.com": ["Shopify Plus", "Klaviyo", "Google Analytics"],
    "glossier.com": ["Shopify Plus", "Algolia", "Klaviyo"],
    "warbyparker.com": ["Salesforce Commerce Cloud", "Google Analytics"],
}
# Technologies present at the first snapshot (T0) that were gone at T1.
REMOVED = {"allbirds.com": ["Yotpo"], "glossier.com": ["Searchspring"]}
# Technologies absent at T0 and present at T1 (added between the snapshots).
ADDED = {"glossier.com": ["Algolia"], "stripe.com": ["Algolia"]}
# A domain that is in the history but not in the profiles (another mode's run): never in the marts.
ORPHAN = "orphan.example"

PROVIDERS = ("builtwith", "similarweb")


def profile_row(domain: str, **values: Any) -> dict[str, Any]:
    """A `marts.company_profiles` row as the pipeline writes it (`profiles.PROFILE_SCHEMA`); a column
    not given is null."""
    return {"domain": domain, "domain_unicode": display_domain(domain), **values}


def profiles_frame(rows: list[dict[str, Any]] | None = None) -> pl.DataFrame:
    """`rows` (`profile_row`) as the pipeline's frame; by default the companies above."""
    return pl.DataFrame(_profile_rows() if rows is None else rows, schema=PROFILE_SCHEMA)


def scores_frame(rows: list[dict[str, Any]] | None = None) -> pl.DataFrame:
    """`rows` (a column not given is null) as the pipeline's frame; by default the companies above."""
    return pl.DataFrame(_score_rows() if rows is None else rows, schema=SCORE_SCHEMA)


def _profile_rows() -> list[dict[str, Any]]:
    rows = []
    for domain, (name, naics, label, employees, country, ticker, status) in COMPANIES.items():
        techs = STACKS.get(domain, [])
        has_firmo = name is not None
        rows.append(
            profile_row(
                domain,
                company_name=name,
                industry_naics=naics,
                industry_label=label,
                employees=employees,
                employees_range="1001-5000"
                if employees and employees > 1000
                else ("201-1000" if employees else None),
                country=country,
                founded_year=2006 if has_firmo else None,
                revenue_usd=employees * 250_000.0 if employees else None,
                revenue_low_usd=employees * 200_000.0 if employees else None,
                revenue_high_usd=employees * 300_000.0 if employees else None,
                revenue_growth=0.21 if has_firmo else None,
                gross_margin=0.5 if ticker else None,
                operating_margin=0.08 if ticker else None,
                market_cap_usd=9.0e10 if ticker else None,
                ticker=ticker,
                is_public=(ticker is not None) if has_firmo else None,
                total_funding_usd=None if ticker else (2.2e9 if has_firmo else None),
                technologies=json.dumps(techs),
                technology_count=len(techs),
                search_vendor=next((t for t in techs if t in ("Algolia", "Searchspring")), None),
                ecommerce_platform=next((t for t in techs if "Shopify" in t or "Commerce" in t), None),
                cms=None,
                monthly_visits=5.0e7 if techs else None,
                visits_growth=0.04 if techs else None,
                bounce_rate=0.41 if techs else None,
                pages_per_visit=3.2 if techs else None,
                avg_visit_duration_s=212.0 if techs else None,
                global_rank=900 if techs else None,
                search_share=0.38 if techs else None,
                direct_share=0.44 if techs else None,
                firmographics_source="clearbit" if has_firmo else None,
                financials_source="yahoo" if ticker else None,
                technologies_source="builtwith" if techs else None,
                traffic_source="similarweb" if techs else None,
                field_sources=json.dumps(
                    {"employees": {"provider": "clearbit", "observed_at": "2025-03-31T00:00:00Z"}}
                ),
                employees_confidence=0.9 if has_firmo else None,
                revenue_usd_confidence=0.7 if has_firmo else None,
                industry_naics_confidence=1.0 if has_firmo else None,
                technologies_confidence=1.0 if techs else None,
                profile_confidence=0.85 if has_firmo else 0.0,
                disagreements=json.dumps([]),
                provider_statuses=json.dumps({p: "ok" for p in PROVIDERS}),
                status=status,
                mode="sandbox",
                enriched_at=T1,
            )
        )
    return rows


def _score_rows() -> list[dict[str, Any]]:
    rows = []
    for i, domain in enumerate(COMPANIES):
        score = max(0.0, 90.0 - 13.5 * i)
        tier = "hot" if score >= 75 else "warm" if score >= 50 else "cool" if score >= 25 else "cold"
        rows.append(
            {
                "domain": domain,
                "icp_score": score,
                "icp_tier": tier,
                "score_breakdown": json.dumps({"traffic": score / 2, "stack": score / 2}),
                "score_reasons": json.dumps([f"reason for {domain}"]),
                "disqualified": score == 0.0,
                "disqualification_reason": "no website data" if score == 0.0 else None,
                "budget_signal": score,
                "pain_signal": score / 2,
                "timing_signal": 10.0,
                "model_version": "2025.1",
                "model_hash": "abc123",
                "scored_at": T1,
            }
        )
    return rows


def technologies_frame() -> pl.DataFrame:
    rows = [
        {
            "domain": domain,
            "technology": tech,
            "tag": "ecommerce" if "Shop" in tech or "Commerce" in tech else "analytics",
            "categories": ["Category A", "Category B"],
            "first_detected": T0 - timedelta(days=400),
            "last_detected": T1 - timedelta(days=1),
            "is_premium": "Shopify Plus" in tech,
            "path": domain,
            "provider": "builtwith",
            "observed_at": T1,
        }
        for domain, techs in STACKS.items()
        for tech in techs
    ]
    return pl.DataFrame(rows, schema=staging.TECH_SCHEMA)


def history_frame() -> pl.DataFrame:
    """Two snapshots folded into spans: baseline at T0, additions and removals at T1."""
    rows = []
    for domain, techs in {**STACKS, ORPHAN: ["Wix"]}.items():
        for tech in techs:
            added = tech in ADDED.get(domain, [])
            rows.append((domain, tech, T1 if added else T0, None, not added))
        for tech in REMOVED.get(domain, []):
            rows.append((domain, tech, T0, T1, True))
    return pl.DataFrame(
        [
            {
                "domain": d,
                "technology": t,
                "provider": "builtwith",
                "valid_from": start,
                "valid_to": end,
                "first_detected": T0 - timedelta(days=400),
                "last_detected": (end or T1) - timedelta(days=1),
                "baseline": baseline,
            }
            for d, t, start, end, baseline in rows
        ],
        schema=tech_history.HISTORY_SCHEMA,
    )


def response_rows() -> list[ResponseRow]:
    """builtwith: one endpoint; similarweb: two endpoints. A mix of statuses, costs and retries."""
    rows = []
    for domain, (*_, status) in COMPANIES.items():
        for provider, endpoints, cost in (
            ("builtwith", ("domain_api",), 0.01),
            ("similarweb", ("visits", "sources"), 0.02),
        ):
            for endpoint in endpoints:
                if status == "not_found":
                    answer = "not_found"
                elif status == "failed" or (status == "partial" and provider == "similarweb"):
                    answer = "rate_limited" if endpoint == "sources" else "error"
                else:
                    answer = "ok"
                rows.append(
                    ResponseRow(
                        provider=provider,
                        endpoint=endpoint,
                        domain=domain,
                        status=answer,
                        http_status={"ok": 200, "not_found": 404, "error": 500, "rate_limited": 429}[answer],
                        payload={"domain": domain} if answer == "ok" else None,
                        detail=None if answer == "ok" else f"{answer} detail",
                        fetched_at=T1,
                        expires_at=T1 + timedelta(days=30),
                        attempts=4 if answer in ("error", "rate_limited") else 1,
                        latency_ms=120.0,
                        cost_usd=cost,
                        mode="sandbox",
                        run_id="run-1",
                    )
                )
    # A provider skipped for one domain (no key in live mode, say).
    rows.append(
        ResponseRow(
            "clearbit", "*", "shopify.com", "skipped", None, None, "no key", T1, T1, 0, None, 0.0, "sandbox"
        )
    )
    return rows


def fill(url: str) -> dict[str, int]:
    """Create (migrate) the warehouse at `url` and write every source table; returns rows per table."""
    history = history_frame()
    with Warehouse.open(url) as wh:
        written = {"raw.provider_responses": wh.write_responses(response_rows())}
        for table, frame, schema in (
            ("staging.builtwith_technologies", technologies_frame(), staging.TECH_SCHEMA),
            ("staging.technology_history", history, tech_history.HISTORY_SCHEMA),
            ("marts.tech_changes", tech_history.changes(history), tech_history.CHANGES_SCHEMA),
            ("marts.company_profiles", profiles_frame(), PROFILE_SCHEMA),
            ("marts.icp_scores", scores_frame(), SCORE_SCHEMA),
        ):
            written[table] = wh.replace_table(table, frame, schema)
    return written


def expected_counts() -> dict[str, int]:
    """Rows each dbt mart must have for the data above, computed without SQL."""
    pairs = {(d, t) for d, techs in STACKS.items() for t in techs}
    pairs |= {(d, t) for d, techs in REMOVED.items() for t in techs}
    changes = tech_history.changes(history_frame()).filter(pl.col("domain").is_in(list(COMPANIES)))
    sectors = {d: c[1] or "unknown" for d, c in COMPANIES.items()}
    tech_sector = {(t, sectors[d]) for d, techs in STACKS.items() for t in techs}
    return {
        "marts.dim_company": len(COMPANIES),
        "marts.icp_leaderboard": len(COMPANIES),
        "marts.fct_company_technology": len(pairs),
        "marts.fct_tech_changes": changes.height,
        "marts.tech_adoption_by_industry": len(tech_sector),
        "marts.provider_coverage_and_cost": 3,  # builtwith, similarweb, clearbit (one mode)
    }
