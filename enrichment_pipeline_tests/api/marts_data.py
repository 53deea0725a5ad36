"""Deterministic marts for the API tests and benchmark: `n` companies with scores and stacks.

The profiles and scores in the pipeline's own schemas (built as `warehouse_data` builds them);
of the dbt marts only the tables and columns the API reads.
`company_domain(i)` names company i, so tests know what is there.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from enrichment_pipeline.lib import serving
from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.scoring.engine import SCORE_SCHEMA
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.dbt.warehouse_data import profile_row, profiles_frame, scores_frame

TS = pl.Datetime("us", "UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIERS = ("hot", "warm", "cool", "cold")
TECHS = (
    "Shopify",
    "Magento",
    "Algolia",
    "Elasticsearch",
    "Klevu",
    "React",
    "Google Analytics 4",
    "HubSpot",
    "Cloudflare",
    "Salesforce Commerce Cloud",
    "WordPress",
    "Stripe",
)
COUNTRIES = ("US", "GB", "DE", "FR", "NL")
SECTORS = (
    ("44-45", "Retail Trade"),
    ("51", "Information"),
    ("52", "Finance and Insurance"),
    ("31-33", "Manufacturing"),
)
PROVIDERS = ("builtwith", "similarweb", "clearbit", "yahoo", "apollo")

TECH_SCHEMA = {
    "company_technology_id": pl.String(),
    "domain": pl.String(),
    "technology": pl.String(),
    "technology_tag": pl.String(),
    "is_premium": pl.Boolean(),
    "first_detected": TS,
    "last_detected": TS,
    "first_seen_at": TS,
    "removed_at": TS,
    "is_current": pl.Boolean(),
    "times_adopted": pl.Int64(),
}
CHANGE_SCHEMA = {
    "tech_change_id": pl.String(),
    "domain": pl.String(),
    "technology": pl.String(),
    "change_type": pl.String(),
    "seen_at": TS,
    "provider": pl.String(),
}
COVERAGE_SCHEMA = {
    "provider": pl.String(),
    "mode": pl.String(),
    "domains_requested": pl.Int64(),
    "domains_with_data": pl.Int64(),
    "data_share": pl.Float64(),
    "answered_share": pl.Float64(),
    "calls": pl.Int64(),
    "cost_usd": pl.Float64(),
    "cost_per_domain_with_data_usd": pl.Float64(),
    "avg_latency_ms": pl.Float64(),
    "last_fetched_at": TS,
}


def company_domain(i: int) -> str:
    return f"company{i:06d}.com"


def _technology_row(
    domain: str,
    technology: str,
    *,
    last_detected: datetime,
    first_seen_at: datetime,
    removed_at: datetime | None = None,
) -> dict:
    """A `marts.fct_company_technology` row: current unless it has a removal time."""
    return {
        "company_technology_id": f"{domain}:{technology}",
        "domain": domain,
        "technology": technology,
        "technology_tag": "misc",
        "is_premium": False,
        "first_detected": T0 - timedelta(days=400),
        "last_detected": last_detected,
        "first_seen_at": first_seen_at,
        "removed_at": removed_at,
        "is_current": removed_at is None,
        "times_adopted": 1,
    }


def marts(n: int, seed: int = 7, tag: str = "") -> dict[str, pl.DataFrame]:
    """`tag` goes into every company name, so two generations can be told apart."""
    rnd = random.Random(seed)
    profiles, scores, techs, changes = [], [], [], []
    for i in range(n):
        domain = company_domain(i)
        naics, label = SECTORS[i % len(SECTORS)]
        stack = sorted(rnd.sample(TECHS, 3 + i % 4))
        removed = [t for t in TECHS if t not in stack][: i % 2]
        score = float((i * 37) % 101)
        tier = "hot" if score >= 70 else "warm" if score >= 45 else "cool" if score >= 25 else "cold"
        at = T0 + timedelta(hours=i % 500)
        search = next((t for t in stack if t in ("Algolia", "Klevu", "Elasticsearch")), None)
        commerce = next((t for t in stack if t in ("Shopify", "Magento", "Salesforce Commerce Cloud")), None)
        sources = {
            "employees": {"provider": "clearbit", "observed_at": at.isoformat()},
            "technologies": {"provider": "builtwith", "observed_at": at.isoformat()},
        }
        profiles.append(
            profile_row(
                domain,
                company_name=f"Company {i}{tag}",
                industry_naics=naics,
                industry_label=label,
                employees=10 + (i * 13) % 5000,
                employees_range="51-200",
                country=COUNTRIES[i % 5],
                founded_year=1950 + i % 70,
                revenue_usd=None if i % 9 == 0 else float(1e6 * (1 + i % 400)),
                revenue_growth=0.05,
                gross_margin=0.4,
                operating_margin=0.1,
                is_public=False,
                technologies=json.dumps(stack),
                monthly_visits=None if i % 11 == 0 else float(1000 + (i * 7919) % 10_000_000),
                visits_growth=0.1,
                bounce_rate=0.4,
                pages_per_visit=3.0,
                avg_visit_duration_s=120.0,
                global_rank=1000 + i,
                search_share=0.3,
                direct_share=0.4,
                technology_count=len(stack),
                search_vendor=search,
                ecommerce_platform=commerce,
                firmographics_source="clearbit",
                financials_source="clearbit",
                technologies_source="builtwith",
                traffic_source="similarweb",
                field_sources=json.dumps(sources),
                employees_confidence=0.9,
                revenue_usd_confidence=0.7,
                industry_naics_confidence=0.8,
                technologies_confidence=1.0,
                profile_confidence=0.85,
                disagreements="{}",
                provider_statuses=json.dumps([{"provider": "builtwith", "status": "ok"}]),
                status="partial" if i % 10 == 3 else "enriched",
                mode="sandbox",
                enriched_at=at,
            )
        )
        scores.append(
            {
                "domain": domain,
                "icp_score": score,
                "icp_tier": tier,
                "score_breakdown": json.dumps({"fit": score}),
                "score_reasons": json.dumps([f"reason for {domain}"]),
                "disqualified": False,
                "disqualification_reason": None,
                "budget_signal": 0.5,
                "pain_signal": 0.5,
                "timing_signal": 0.1,
                "model_version": "test-1",
                "model_hash": "x",
                "scored_at": at,
            }
        )
        techs.extend(_technology_row(domain, t, last_detected=at, first_seen_at=T0) for t in stack)
        for t in removed:
            techs.append(
                _technology_row(
                    domain,
                    t,
                    last_detected=T0 - timedelta(days=30),
                    first_seen_at=T0 - timedelta(days=60),
                    removed_at=T0 - timedelta(days=10),
                )
            )
            changes.append(
                {
                    "tech_change_id": f"{domain}:{t}:removed",
                    "domain": domain,
                    "technology": t,
                    "change_type": "removed",
                    "seen_at": T0 - timedelta(days=10),
                    "provider": "builtwith",
                }
            )
    coverage = [
        {
            "provider": p,
            "mode": "sandbox",
            "domains_requested": n,
            "domains_with_data": n - k,
            "data_share": (n - k) / max(n, 1),
            "answered_share": 1.0,
            "calls": n,
            "cost_usd": 0.01 * n,
            "cost_per_domain_with_data_usd": 0.01,
            "avg_latency_ms": 10.0,
            "last_fetched_at": T0,
        }
        for k, p in enumerate(PROVIDERS)
    ]
    return {
        "marts.company_profiles": profiles_frame(profiles),
        "marts.icp_scores": scores_frame(scores),
        "marts.fct_company_technology": pl.DataFrame(techs, schema=TECH_SCHEMA),
        "marts.fct_tech_changes": pl.DataFrame(changes, schema=CHANGE_SCHEMA),
        "marts.provider_coverage_and_cost": pl.DataFrame(coverage, schema=COVERAGE_SCHEMA),
    }


SCHEMAS = {
    "marts.company_profiles": (PROFILE_SCHEMA, ("domain",)),
    "marts.icp_scores": (SCORE_SCHEMA, ("domain",)),
    "marts.fct_company_technology": (TECH_SCHEMA, ()),
    "marts.fct_tech_changes": (CHANGE_SCHEMA, ()),
    "marts.provider_coverage_and_cost": (COVERAGE_SCHEMA, ()),
}


def write_marts(url: str, frames: dict[str, pl.DataFrame]) -> None:
    """Into a warehouse (DuckDB file or PostgreSQL), as the pipeline would; indexes for the API's lookups."""
    with Warehouse.open(url) as wh:
        for table, frame in frames.items():
            schema, key = SCHEMAS[table]
            wh.replace_table(table, frame, schema, key)
        wh.query(
            "CREATE INDEX IF NOT EXISTS fct_company_technology_domain "
            "ON marts.fct_company_technology (domain)"
        )


def write_snapshot(path: Path, frames: dict[str, pl.DataFrame], work_dir: Path) -> Path:
    """A serving snapshot at `path`, published (atomically) like the pipeline does."""
    work_dir.mkdir(parents=True, exist_ok=True)
    url = f"duckdb:///{work_dir / 'warehouse.duckdb'}"
    write_marts(url, frames)
    with Warehouse.open(url, read_only=True) as wh:
        serving.publish(wh, path)
    return path
