"""Freshness of the marts, as the Dagster UI shows it.

Two different questions, two tools:

* *Were the marts rebuilt lately?* A `FreshnessPolicy` (Dagster 1.13's current
  API; the `build_last_update_freshness_checks` factory and its sensor are
  superseded by it): `marts/company_profiles` and `marts/icp_scores` warn 25 h
  and fail 26 h after their last materialization. The freshness daemon
  evaluates it (on by default, no sensor needed) and the UI shows the state on
  the asset and the lineage graph. A FAIL means no enrichment ran for a day: no
  domain arrived and nothing went stale. If quiet days are normal for you,
  widen `MARTS_FAIL_WINDOW`.
* *Are the marts built from answers still within their TTL?* The asset check
  `answers_within_ttl` on `marts/company_profiles` counts the domains with a
  provider answer (`ok`/`not_found`; failures are retried anyway) past its TTL
  (`lib/staleness.py`), WARN when any; the `stale_reenrich_schedule` clears it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from enrichment_pipeline.defs.profiles.assets import PROFILES_KEY
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.defs.scoring.assets import SCORES_KEY
from enrichment_pipeline.lib import staleness

MART_KEYS = (PROFILES_KEY, SCORES_KEY)

MARTS_WARN_WINDOW = timedelta(hours=25)
MARTS_FAIL_WINDOW = timedelta(hours=26)
MARTS_FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=MARTS_FAIL_WINDOW, warn_window=MARTS_WARN_WINDOW
)


def with_marts_freshness(assets: Iterable[Any]) -> list[Any]:
    """The same assets, with `MARTS_FRESHNESS_POLICY` on the two marts (for `Definitions(assets=...)`)."""

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        return dg.apply_freshness_policy(spec, MARTS_FRESHNESS_POLICY) if spec.key in MART_KEYS else spec

    return [
        dg.map_asset_specs(attach, [a])[0] if isinstance(a, dg.AssetsDefinition | dg.AssetSpec) else a
        for a in assets
    ]


@dg.asset_check(
    asset=PROFILES_KEY,
    blocking=False,
    description=(
        "Every profile is built from provider answers still within their TTL; WARN lists how many "
        "domains the stale_reenrich_schedule has to refresh."
    ),
)
def answers_within_ttl(warehouse: WarehouseResource, providers: ProvidersResource) -> dg.AssetCheckResult:
    setup = providers.setup()
    now = datetime.now(UTC)
    with warehouse.open(read_only=True) as wh:
        state = staleness.staleness(
            wh, now, mode=setup.mode, providers=[p.name for p, _ in setup.active], answered_only=True
        )
    overdue_days = (now - state.oldest_expiry).total_seconds() / 86400 if state.oldest_expiry else 0.0
    return dg.AssetCheckResult(
        passed=state.stale == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "domains": state.domains,
            "stale_domains": state.stale,
            "oldest_expiry": str(state.oldest_expiry) if state.oldest_expiry else "-",
            "most_overdue_days": round(overdue_days, 1),
        },
    )
