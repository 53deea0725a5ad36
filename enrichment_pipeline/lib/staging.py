"""Raw provider payloads -> typed staging frames (pure functions)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import polars as pl

from enrichment_pipeline.lib.fields import FIELD_TYPES
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.builtwith import groups_from_free_api, technologies_from_domain_api
from enrichment_pipeline.lib.providers.similarweb import traffic_from_payloads

TECH_SCHEMA = {
    "domain": pl.String,
    "technology": pl.String,
    "tag": pl.String,
    "categories": pl.List(pl.String),
    "first_detected": pl.Datetime("us", "UTC"),
    "last_detected": pl.Datetime("us", "UTC"),
    "is_premium": pl.Boolean,
    "path": pl.String,
    "parent": pl.String,
    # False: BuiltWith still lists it but has not detected it for a long time before
    # its last crawl; history only, never the current stack (see providers/builtwith.py).
    "is_live": pl.Boolean,
    "provider": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
}
GROUP_SCHEMA = {
    "domain": pl.String,
    "tech_group": pl.String,
    "live": pl.Int64,
    "dead": pl.Int64,
    "latest": pl.Datetime("us", "UTC"),
    "oldest": pl.Datetime("us", "UTC"),
    "observed_at": pl.Datetime("us", "UTC"),
}
TRAFFIC_SCHEMA = {
    "domain": pl.String,
    "monthly_visits": pl.Float64,
    "visits_growth": pl.Float64,
    "bounce_rate": pl.Float64,
    "pages_per_visit": pl.Float64,
    "avg_visit_duration_s": pl.Float64,
    "global_rank": pl.Int64,
    "search_share": pl.Float64,
    "direct_share": pl.Float64,
    "referral_share": pl.Float64,
    "social_share": pl.Float64,
    "period_start": pl.Date,
    "period_end": pl.Date,
    "provider": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
}


def _ok(responses: pl.DataFrame, provider: str, endpoint: str | None = None) -> pl.DataFrame:
    frame = responses.filter((pl.col("provider") == provider) & (pl.col("status") == "ok"))
    if endpoint:
        frame = frame.filter(pl.col("endpoint") == endpoint)
    return frame


def builtwith_technologies(responses: pl.DataFrame) -> pl.DataFrame:
    records = []
    for row in _ok(responses, "builtwith", "domain_api").iter_rows(named=True):
        for tech in technologies_from_domain_api(row["domain"], json.loads(row["payload"])):
            records.append({**tech, "provider": "builtwith", "observed_at": row["fetched_at"]})
    return pl.DataFrame(records, schema=TECH_SCHEMA) if records else pl.DataFrame(schema=TECH_SCHEMA)


def builtwith_groups(responses: pl.DataFrame) -> pl.DataFrame:
    records = []
    for row in _ok(responses, "builtwith", "free_api").iter_rows(named=True):
        for group in groups_from_free_api(row["domain"], json.loads(row["payload"])):
            group["tech_group"] = group.pop("group")
            records.append({**group, "observed_at": row["fetched_at"]})
    return pl.DataFrame(records, schema=GROUP_SCHEMA) if records else pl.DataFrame(schema=GROUP_SCHEMA)


def similarweb_traffic(responses: pl.DataFrame) -> pl.DataFrame:
    payloads: dict[str, dict[str, dict]] = defaultdict(dict)
    observed: dict[str, object] = {}
    for row in _ok(responses, "similarweb").iter_rows(named=True):
        payloads[row["domain"]][row["endpoint"]] = json.loads(row["payload"])
        observed[row["domain"]] = max(observed.get(row["domain"], row["fetched_at"]), row["fetched_at"])
    records = [
        {
            **traffic_from_payloads(domain, by_endpoint),
            "provider": "similarweb",
            "observed_at": observed[domain],
        }
        for domain, by_endpoint in payloads.items()
    ]
    if not records:
        return pl.DataFrame(schema=TRAFFIC_SCHEMA)
    return pl.DataFrame(records).select(
        *(
            pl.col(c).cast(t) if c in records[0] else pl.lit(None, dtype=t).alias(c)
            for c, t in TRAFFIC_SCHEMA.items()
        )
    )


def provider_fields_schema() -> dict[str, pl.DataType]:
    return {
        "provider": pl.String(),
        "domain": pl.String(),
        "observed_at": pl.Datetime("us", "UTC"),
        **FIELD_TYPES,
    }


def provider_fields(responses: pl.DataFrame, providers: Mapping[str, Provider]) -> pl.DataFrame:
    """One row per (provider, domain): each provider's answers mapped onto the standard fields."""
    schema = provider_fields_schema()
    ok = responses.filter((pl.col("status") == "ok") & pl.col("provider").is_in(list(providers)))
    payloads: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    observed: dict[tuple[str, str], Any] = {}
    for provider, domain, endpoint, payload, fetched_at in ok.select(
        "provider", "domain", "endpoint", "payload", "fetched_at"
    ).iter_rows():
        key = (provider, domain)
        payloads[key][endpoint] = json.loads(payload) if payload else None
        observed[key] = max(observed.get(key, fetched_at), fetched_at)
    records = []
    for (provider, domain), by_endpoint in payloads.items():
        values = providers[provider].extract(domain, by_endpoint)
        if values:
            records.append(
                {
                    "provider": provider,
                    "domain": domain,
                    "observed_at": observed[(provider, domain)],
                    **{f: values.get(f) for f in FIELD_TYPES},
                }
            )
    return pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
