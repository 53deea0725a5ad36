"""`lib/staleness.py`: which domains are past their TTL, and how one tick cuts them into range runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enrichment_pipeline.lib import staleness
from enrichment_pipeline.lib.cost import Need
from enrichment_pipeline.lib.providers.registry import configured_providers
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.conftest import response_row

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def row(domain: str, expires_in_days: float, *, provider: str = "builtwith", mode: str = "sandbox", **kw):
    return response_row(
        domain,
        provider=provider,
        endpoint=kw.pop("endpoint", "domain_api"),
        expires_at=NOW + timedelta(days=expires_in_days),
        mode=mode,
        **kw,
    )


@pytest.fixture
def filled(warehouse: Warehouse) -> Warehouse:
    warehouse.write_responses(
        [
            row("fresh.com", 10),
            row("old.com", -30),
            row("older.com", -60),
            row("mixed.com", 10),
            row("mixed.com", -1, provider="similarweb", endpoint="visits"),  # one provider expired
            row("failed.com", 0, status="error"),  # errors expire at once: asked again next time
            row("edge.com", 0),  # expires exactly now: no longer served from cache
            row("live.com", -5, mode="live"),
        ]
    )
    return warehouse


def test_stale_domains_oldest_first(filled: Warehouse) -> None:
    stale = staleness.stale_domains(filled, NOW, mode="sandbox")
    assert stale == ["older.com", "old.com", "mixed.com", "edge.com", "failed.com"]
    assert staleness.stale_domains(filled, NOW, limit=2, mode="sandbox") == ["older.com", "old.com"]
    assert "fresh.com" not in staleness.stale_domains(filled, NOW)


def test_stale_domains_only_count_the_run_s_providers_and_mode(filled: Warehouse) -> None:
    assert "mixed.com" not in staleness.stale_domains(filled, NOW, mode="sandbox", providers=["builtwith"])
    assert staleness.stale_domains(filled, NOW, mode="live") == ["live.com"]
    assert staleness.stale_domains(filled, NOW, providers=[]) == []


def test_unfetched_and_counts(filled: Warehouse) -> None:
    assert staleness.unfetched_domains(filled, ["fresh.com", "new.com", "live.com"], mode="sandbox") == [
        "new.com",
        "live.com",
    ]
    state = staleness.staleness(filled, NOW, mode="sandbox")
    assert (state.domains, state.stale) == (6, 5)
    assert state.oldest_expiry == NOW - timedelta(days=60)
    assert staleness.staleness(filled, NOW, mode="sandbox", providers=["nobody"]).domains == 0


# --------------------------------------------------------------------------- plan_refresh

BUILTWITH = configured_providers("sandbox", environ={"ENRICHMENT_PROVIDERS": "builtwith,apollo"})[0]
CALL = {"builtwith": Need(True, 1, 1)}
FREE: dict = {}


def test_one_range_spans_free_keys() -> None:
    keys = ["a", "b", "c", "d", "e", "f"]
    needs = {"b": CALL, "c": FREE, "d": CALL, "e": FREE, "a": FREE, "f": FREE}
    plan = staleness.plan_refresh(keys, {"b", "d"}, needs, BUILTWITH, quota_left={"builtwith": None})
    assert [(r.start, r.end, r.targets) for r in plan.ranges] == [("b", "d", ("b", "d"))]
    assert plan.calls == {"builtwith": 2} and not plan.deferred


def test_a_paid_key_that_is_not_stale_splits_the_range() -> None:
    keys = ["a", "b", "c"]
    needs = {"a": CALL, "b": CALL, "c": CALL}  # b would be fetched, but it is not a target
    plan = staleness.plan_refresh(keys, {"a", "c"}, needs, BUILTWITH, quota_left={})
    assert [(r.start, r.end) for r in plan.ranges] == [("a", "a"), ("c", "c")]


def test_quota_cut_and_what_waits() -> None:
    keys = ["a", "b", "c", "d"]
    needs = dict.fromkeys(keys, CALL)
    plan = staleness.plan_refresh(keys, set(keys), needs, BUILTWITH, quota_left={"builtwith": 2})
    assert [(r.start, r.end) for r in plan.ranges] == [("a", "b")]
    assert plan.deferred == {"c": "over today's quota", "d": "over today's quota"}
    assert plan.calls == {"builtwith": 2}


def test_batch_quota_counts_bulk_calls() -> None:
    keys = [f"k{i:02d}" for i in range(25)]
    needs = {k: {"apollo": Need(True, 1, 1)} for k in keys}
    plan = staleness.plan_refresh(keys, set(keys), needs, BUILTWITH, quota_left={"apollo": 2})
    assert len(plan.ranges[0].targets) == 20  # two bulk calls of ten
    assert plan.calls == {"apollo": 2}


def test_budget_starts_another_run_and_runs_are_capped() -> None:
    keys = ["a", "b", "c", "d", "e"]
    needs = dict.fromkeys(keys, CALL)  # $0.01 each
    plan = staleness.plan_refresh(keys, set(keys), needs, BUILTWITH, quota_left={}, budget=0.02, max_ranges=2)
    assert [(r.start, r.end) for r in plan.ranges] == [("a", "b"), ("c", "d")]
    assert plan.deferred == {"e": "this tick already launches 2 runs"}


def test_busy_keys_and_max_domains() -> None:
    keys = ["a", "b", "c", "d"]
    needs = dict.fromkeys(keys, CALL)
    plan = staleness.plan_refresh(keys, set(keys), needs, BUILTWITH, quota_left={}, busy={"b"}, max_domains=2)
    assert [(r.start, r.end) for r in plan.ranges] == [("a", "a"), ("c", "c")]
    assert plan.deferred == {"b": "a running enrichment covers it"}
