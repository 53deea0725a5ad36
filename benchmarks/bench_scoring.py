"""Benchmark ICP scoring: 1,000,000 synthetic profiles through the real scoring path.

What the `marts/icp_scores` asset does after reading its tables, timed in two steps:
`with_recent_tech_changes` (count each domain's technology changes in the model's
window and join the count onto the profiles) and `score_profiles` (every criterion,
disqualifier, tier, signal, breakdown and reason, vectorized in polars), with the
bundled model (or `--model`).

The profiles are generated vectorized (numpy + polars, seeded): log-normal traffic,
revenue and head counts (head count correlated with revenue), beta-distributed
bounce rate and search share, NAICS sectors and countries by realistic weights
(a few sanctioned countries and public-sector companies, so disqualifiers fire),
unknown (null) values at provider-like rates, and technology stacks of 5-30
distinct entries drawn by popularity from a 40-name vocabulary (the ~20 the model
looks at: hosted and self-managed search, commerce platforms; plus ~20 common
others). About 30% of domains get 1-8 technology changes over the last 180 days.

Peak RSS is measured for the timed steps only (Linux: VmHWM reset through
/proc/self/clear_refs after generating the data), and for the whole process.

    .venv/bin/python benchmarks/bench_scoring.py                 # 1,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/bench_scoring.py -n 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.scoring.engine import score_profiles, with_recent_tech_changes
from enrichment_pipeline.lib.scoring.loader import load_model
from enrichment_pipeline.lib.tech_history import CHANGES_SCHEMA
from enrichment_pipeline.lib.units import NAICS_SECTORS

SCORED_AT = datetime(2026, 12, 1, tzinfo=UTC)

# name -> relative popularity (share of stacks that run it, roughly)
VOCABULARY: dict[str, float] = {
    # named by the bundled model
    "Algolia": 0.06, "Coveo": 0.01, "Bloomreach": 0.015, "Constructor.io": 0.01, "Klevu": 0.02,
    "Searchspring": 0.02, "Yext": 0.01, "Doofinder": 0.01, "Elasticsearch": 0.05, "Solr": 0.02,
    "Shopify Plus": 0.05, "Salesforce Commerce Cloud": 0.02, "Adobe Commerce": 0.02, "Magento": 0.05,
    "BigCommerce": 0.03, "commercetools": 0.01, "SAP Commerce Cloud": 0.01, "Shopify": 0.15,
    "WooCommerce": 0.12, "WordPress": 0.3,
    # common others
    "Google Analytics 4": 0.8, "Google Tag Manager": 0.7, "Cloudflare": 0.4, "Facebook Pixel": 0.45,
    "Hotjar": 0.2, "HubSpot": 0.15, "Klaviyo": 0.12, "Stripe": 0.25, "PayPal": 0.3, "React": 0.4,
    "Next.js": 0.15, "jQuery": 0.6, "Akamai": 0.05, "Fastly": 0.06, "Segment": 0.05,
    "Optimizely": 0.03, "Contentful": 0.04, "Adobe Experience Manager": 0.03, "Sitecore": 0.02,
    "Drupal": 0.06,
}  # fmt: skip
SECTOR_WEIGHTS: dict[str, float] = {
    "44-45": 0.16, "51": 0.18, "52": 0.08, "54": 0.12, "31-33": 0.1, "62": 0.06, "61": 0.04,
    "72": 0.05, "42": 0.04, "48-49": 0.03, "53": 0.03, "56": 0.03, "71": 0.02, "81": 0.02,
    "23": 0.015, "22": 0.01, "21": 0.005, "11": 0.005, "55": 0.005, "92": 0.02,
}  # fmt: skip
COUNTRY_WEIGHTS: dict[str, float] = {
    "US": 0.42, "GB": 0.08, "DE": 0.07, "FR": 0.05, "CA": 0.04, "NL": 0.03, "AU": 0.03,
    "SE": 0.02, "ES": 0.03, "IT": 0.03, "IN": 0.05, "BR": 0.04, "JP": 0.03, "SG": 0.01,
    "IE": 0.01, "NO": 0.01, "DK": 0.01, "FI": 0.01, "CH": 0.015, "PL": 0.015, "RU": 0.01,
    "IR": 0.002, "BY": 0.002, "CU": 0.001,
}  # fmt: skip


def _weights(values: dict[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(values)
    w = np.array([values[n] for n in names], dtype=np.float64)
    return names, w / w.sum()


def _nulls(rng: np.random.Generator, values: np.ndarray, rate: float) -> pl.Series:
    series = pl.Series(values)
    return series.scatter(np.flatnonzero(rng.random(len(values)) < rate), None) if rate else series


def _stacks(rng: np.random.Generator, n: int, lo: int = 5, hi: int = 30) -> pl.Series:
    """JSON arrays of lo..hi distinct technologies per row, drawn by popularity
    (weighted sampling without replacement: the top k of Gumbel-perturbed log weights)."""
    names = np.array(list(VOCABULARY))
    logw = np.log(np.array(list(VOCABULARY.values()), dtype=np.float32))
    keys = logw[None, :] + rng.gumbel(size=(n, len(names))).astype(np.float32)
    order = np.argsort(-keys, axis=1).astype(np.int16)  # most likely first
    del keys
    size = rng.integers(lo, hi + 1, size=n)
    keep = np.arange(len(names))[None, :] < size[:, None]
    rows = np.broadcast_to(np.arange(n)[:, None], order.shape)[keep]
    techs = names[order[keep]]
    del order, keep
    return (
        pl.DataFrame({"row": rows, "tech": techs})
        .group_by("row", maintain_order=True)
        .agg(pl.col("tech"))
        .select(pl.struct(pl.col("tech").alias("v")).struct.json_encode().str.slice(5).str.head(-1))
        .to_series()
    )


def synthetic_profiles(n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.lognormal(np.log(150_000), 2.2, n)
    revenue = rng.lognormal(np.log(25e6), 2.0, n)
    employees = np.maximum(1, revenue / rng.lognormal(np.log(200_000), 0.5, n)).round().astype(np.int64)
    sectors, sector_p = _weights(SECTOR_WEIGHTS)
    sector = rng.choice(sectors, size=n, p=sector_p)
    countries, country_p = _weights(COUNTRY_WEIGHTS)
    stacks = _stacks(rng, n)
    frame = pl.DataFrame(
        {
            "monthly_visits": _nulls(rng, visits, 0.08),
            "visits_growth": _nulls(rng, rng.normal(0.03, 0.2, n), 0.1),
            "bounce_rate": _nulls(rng, rng.beta(5, 5, n), 0.1),
            "pages_per_visit": _nulls(rng, rng.lognormal(np.log(3.0), 0.45, n), 0.1),
            "search_share": _nulls(rng, rng.beta(4, 6, n), 0.1),
            "revenue_usd": _nulls(rng, revenue, 0.45),
            "revenue_growth": _nulls(rng, rng.normal(0.08, 0.15, n), 0.6),
            "operating_margin": _nulls(rng, rng.normal(0.07, 0.12, n), 0.6),
            "employees": _nulls(rng, employees, 0.2),
            "industry_naics": _nulls(rng, sector, 0.12),
            "country": _nulls(rng, rng.choice(countries, size=n, p=country_p), 0.05),
            "technologies": stacks.scatter(np.flatnonzero(rng.random(n) < 0.05), None),
        }
    )
    frame = frame.with_columns(
        pl.concat_str(pl.lit("company"), pl.int_range(n).cast(pl.String).str.zfill(7), pl.lit(".com")).alias(
            "domain"
        ),
        pl.col("industry_naics").replace_strict(NAICS_SECTORS, default=None).alias("industry_label"),
        (pl.col("technologies").str.count_matches('","') + 1).alias("technology_count"),
    )
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in PROFILE_SCHEMA.items()
    )


def synthetic_changes(profiles: pl.DataFrame, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = profiles.height
    changed = np.flatnonzero(rng.random(n) < 0.3)
    rows = np.repeat(changed, rng.integers(1, 9, size=len(changed)))
    names = np.array(list(VOCABULARY))
    age_us = (rng.uniform(0, 180, size=len(rows)) * 86_400e6).astype(np.int64)
    names = np.array(list(VOCABULARY))
    return (
        pl.DataFrame(
            {
                "domain": profiles["domain"].gather(rows),
                "technology": names[rng.integers(0, len(names), size=len(rows))],
                "change": np.where(rng.random(len(rows)) < 0.55, "added", "removed"),
                "age": pl.Series(age_us).cast(pl.Duration("us")),
                "provider": "builtwith",
            }
        )
        .with_columns((pl.lit(SCORED_AT, dtype=pl.Datetime("us", "UTC")) - pl.col("age")).alias("seen_at"))
        .select(list(CHANGES_SCHEMA))
        .cast(CHANGES_SCHEMA)
    )


# --------------------------------------------------------------------------- memory


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm / 1024
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1024**2


def rss_mb() -> float:
    rss = _status_kb("VmRSS")
    return (rss or 0) / 1024


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="ICP model file (default: the bundled one)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    model = load_model(args.model)
    t0 = time.perf_counter()
    profiles = synthetic_profiles(args.rows, args.seed)
    changes = synthetic_changes(profiles, args.seed + 1)
    gen_s = time.perf_counter() - t0
    gc.collect()
    base_rss = rss_mb()
    isolated = reset_peak_rss()

    joins, scores_t, totals, cpu = [], [], [], []
    scores = pl.DataFrame()
    for _ in range(args.repeat):
        del scores
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        joined = with_recent_tech_changes(profiles, changes, model, SCORED_AT)
        t1 = time.perf_counter()
        scores = score_profiles(joined, model, SCORED_AT)
        t2, c2 = time.perf_counter(), time.process_time()
        del joined
        cpu.append(c2 - c0)
        joins.append(t1 - t0)
        scores_t.append(t2 - t1)
        totals.append(t2 - t0)
    peak = peak_rss_mb()

    n = args.rows
    best, median = min(totals), statistics.median(totals)
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiers = dict(scores["icp_tier"].value_counts().sort("icp_tier").iter_rows())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# ICP scoring benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs (1-min load average before: {load:.2f}), "
        f"polars {pl.__version__} ({pl.thread_pool_size()} threads), Python {platform.python_version()}",
        f"- model: {model.name} {model.version} ({len(model.criteria)} criteria, "
        f"{len(model.disqualifiers)} disqualifiers), hash {model.file_hash}",
        f"- data: {n:,} profiles, {changes.height:,} technology changes, mean stack "
        f"{profiles['technology_count'].mean():.1f} technologies; generated in {gen_s:.1f} s",
        f"- repeats: {args.repeat}",
        "",
        "| step | best s | median s | rows/s (best) |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {min(times):.2f} | {statistics.median(times):.2f} | {n / min(times):,.0f} |"
            for name, times in (
                ("join recent_tech_changes", joins),
                ("score_profiles", scores_t),
                ("total", totals),
            )
        ),
        "",
        f"**{n / best:,.0f} rows/s**, wall time {best:.2f} s for {n:,} rows (best of {args.repeat}; "
        f"median {median:.2f} s = {n / median:,.0f} rows/s); CPU time {min(cpu):.2f} s",
        f"peak RSS {'during the timed steps' if isolated else '(whole process)'}: {peak:,.0f} MB "
        f"(RSS before: {base_rss:,.0f} MB; whole process incl. data generation: {process_peak:,.0f} MB)",
        f"tiers: {tiers}; disqualified: {int(scores['disqualified'].sum()):,}; mean score "
        f"{scores['icp_score'].mean():.1f}; timing signal > 0: {int((scores['timing_signal'] > 0).sum()):,}",
    ]
    print("\n".join(lines))
    assert scores.height == n and scores["icp_score"].is_between(0, 100).all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
