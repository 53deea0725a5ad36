"""The whole `enrich_domains` graph, end to end, in sandbox mode on an ephemeral instance."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import polars as pl

from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS as SIMILARWEB_ENDPOINTS
from enrichment_pipeline.lib.sandbox.transport import sandbox_handler
from enrichment_pipeline.lib.scoring.engine import TIERS
from enrichment_pipeline.lib.scoring.loader import load_model
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.defs.helpers import (
    Recorder,
    raw_metadata,
    read_table,
    run_pipeline,
    sandbox_domains,
)

RAW = "raw.provider_responses"
PROFILES = "marts.company_profiles"
SCORES = "marts.icp_scores"
ANSWERED = ("ok", "not_found")
ENDPOINTS = {("builtwith", "domain_api")} | {("similarweb", e) for e in SIMILARWEB_ENDPOINTS}
CALLS_PER_DOMAIN = len(ENDPOINTS)

# Known to both simulators, unknown to one of them, unknown to both.
BOTH = sandbox_domains(4)
NO_BUILTWITH = sandbox_domains(1, builtwith=False)
NO_SIMILARWEB = sandbox_domains(1, similarweb=False)
NEITHER = sandbox_domains(1, builtwith=False, similarweb=False)
MIXED = BOTH + NO_BUILTWITH + NO_SIMILARWEB + NEITHER


def _profiles_content(profiles: pl.DataFrame) -> pl.DataFrame:
    return (
        profiles.sort("domain")
        .with_columns(
            pl.col("provider_statuses")
            .str.json_decode(pl.List(pl.Struct({"provider": pl.String, "status": pl.String})))
            .list.sort()
        )
        .drop("enriched_at")
    )


def _assert_checks_passed(result) -> None:
    evaluations = result.get_asset_check_evaluations()
    assert evaluations, "no asset check ran"
    failed = [e.check_name for e in evaluations if not e.passed]
    assert not failed, f"asset checks failed: {failed}"


def test_whole_graph_one_run(instance, warehouse_url):
    result = run_pipeline(instance, warehouse_url, MIXED)
    assert result.success

    raw = read_table(warehouse_url, RAW)
    assert raw.height == CALLS_PER_DOMAIN * len(MIXED)
    assert raw.select("provider", "endpoint", "domain").is_unique().all()
    assert set(raw.select("provider", "endpoint").unique().iter_rows()) == ENDPOINTS
    assert set(raw["domain"]) == set(MIXED)
    assert set(raw["status"]) <= set(ANSWERED)
    assert set(raw["mode"]) == {"sandbox"}
    assert raw["run_id"].unique().to_list() == [result.run_id]

    profiles = read_table(warehouse_url, PROFILES)
    assert sorted(profiles["domain"]) == sorted(MIXED)
    by_domain = {r["domain"]: r for r in profiles.iter_rows(named=True)}
    for d in MIXED:
        row = by_domain[d]
        has_techs = d not in NO_BUILTWITH + NEITHER
        has_traffic = d not in NO_SIMILARWEB + NEITHER
        assert row["technologies_source"] == ("builtwith" if has_techs else None), d
        assert row["traffic_source"] == ("similarweb" if has_traffic else None), d
        assert (row["technology_count"] or 0) > 0 if has_techs else row["technologies"] is None
        assert (row["monthly_visits"] is not None) == has_traffic
        # "Not found" is an answer: no provider failed, so nothing is partial or failed;
        # a domain no provider knows is "not_found".
        assert row["status"] == ("not_found" if d in NEITHER else "enriched"), d
        assert row["mode"] == "sandbox"

    model = load_model()
    scores = read_table(warehouse_url, SCORES)
    assert sorted(scores["domain"]) == sorted(MIXED)
    assert scores["icp_score"].is_between(0, 100).all()
    assert set(scores["icp_tier"]) <= set(TIERS)
    for row in scores.iter_rows(named=True):
        s, t = row["icp_score"], model.tiers
        expected = "hot" if s >= t.hot else "warm" if s >= t.warm else "cool" if s >= t.cool else "cold"
        assert row["icp_tier"] == expected, row
        assert row["model_version"] == model.version

    meta = raw_metadata(result)
    assert meta["calls"] == CALLS_PER_DOMAIN * len(MIXED)
    assert meta["cache_hits"] == 0
    assert meta["cost_usd"] > 0
    assert meta["domains"] == len(MIXED)
    assert meta["invalid_domains"] == 0
    assert meta["provider/builtwith"]["calls"] == len(MIXED)
    assert meta["provider/similarweb"]["calls"] == 6 * len(MIXED)
    # One materialization per domain partition, all from the same single run.
    partitions = {e.partition for e in result.asset_materializations_for_node("raw__provider_responses")}
    assert partitions == set(MIXED)
    _assert_checks_passed(result)


def test_rerun_is_served_from_cache_and_force_calls_again(instance, warehouse_url):
    domains = BOTH[:3]
    recorder = Recorder()
    first = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
    assert first.success
    calls_first = len(recorder.requests)
    assert calls_first == CALLS_PER_DOMAIN * len(domains)
    raw_before = read_table(warehouse_url, RAW)
    profiles_before = read_table(warehouse_url, PROFILES)
    scores_before = read_table(warehouse_url, SCORES)

    second = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
    assert second.success
    assert len(recorder.requests) == calls_first, "a re-run within the TTL called a provider"
    meta = raw_metadata(second)
    assert meta["calls"] == 0
    assert meta["cache_hits"] == CALLS_PER_DOMAIN * len(domains)
    assert meta["cost_usd"] == 0
    # Raw answers untouched (same fetched_at, run_id); derived tables rebuilt identically.
    assert (
        read_table(warehouse_url, RAW)
        .sort("provider", "endpoint", "domain")
        .equals(raw_before.sort("provider", "endpoint", "domain"))
    )
    profiles_after = read_table(warehouse_url, PROFILES)
    scores_after = read_table(warehouse_url, SCORES)
    assert profiles_after["domain"].is_unique().all()
    assert scores_after["domain"].is_unique().all()
    # provider_statuses is compared as a set: its order is not stable (see test_profiles).
    assert _profiles_content(profiles_after).equals(_profiles_content(profiles_before))
    assert (
        scores_after.drop("scored_at").sort("domain").equals(scores_before.drop("scored_at").sort("domain"))
    )
    _assert_checks_passed(second)

    forced = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport(), force=True)
    assert forced.success
    assert len(recorder.requests) == 2 * calls_first
    meta = raw_metadata(forced)
    assert meta["calls"] == CALLS_PER_DOMAIN * len(domains)
    assert meta["cache_hits"] == 0
    raw_after = read_table(warehouse_url, RAW)
    assert raw_after.height == raw_before.height
    assert raw_after.select("provider", "endpoint", "domain").is_unique().all()
    assert raw_after["run_id"].unique().to_list() == [forced.run_id]


def test_a_run_over_budget_fails_with_its_estimate_and_calls_nobody(instance, warehouse_url, monkeypatch):
    monkeypatch.setenv("ENRICHMENT_MAX_COST_USD", "0.001")
    recorder = Recorder()
    result = run_pipeline(instance, warehouse_url, BOTH, transport=recorder.transport(), raise_on_error=False)
    assert not result.success
    assert recorder.requests == []
    [failure] = [
        e for e in result.all_events if e.is_step_failure and e.step_key == "raw__provider_responses"
    ]
    data = failure.step_failure_data
    assert "ENRICHMENT_MAX_COST_USD" in data.error.message
    estimate = data.user_failure_data.metadata["estimate"].value
    assert estimate["domains"] == len(BOTH) and estimate["cost_usd"][1] > 0.001


def test_new_domains_only_call_for_the_new_ones(instance, warehouse_url):
    recorder = Recorder()
    assert run_pipeline(instance, warehouse_url, BOTH[:2], transport=recorder.transport()).success
    before = len(recorder.requests)
    result = run_pipeline(instance, warehouse_url, BOTH[:3], transport=recorder.transport())
    assert result.success
    new_calls = recorder.requests[before:]
    assert len(new_calls) == CALLS_PER_DOMAIN
    assert all(BOTH[2] in str(r.url) for r in new_calls)
    assert sorted(read_table(warehouse_url, PROFILES)["domain"]) == sorted(BOTH[:3])


def test_failing_provider_makes_profiles_partial(instance, warehouse_url, monkeypatch):
    monkeypatch.setenv("SIMILARWEB_MAX_ATTEMPTS", "1")
    recorder = Recorder(
        lambda r: (
            httpx.Response(503, json={"error": "down"}) if r.url.path.startswith("/v1/website/") else None
        )
    )
    domains = BOTH
    result = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
    assert result.success

    raw = read_table(warehouse_url, RAW)
    similarweb = raw.filter(pl.col("provider") == "similarweb")
    assert similarweb.height == 6 * len(domains)
    assert not similarweb["status"].is_in(ANSWERED).any()
    assert similarweb["payload"].is_null().all()
    assert set(raw.filter(pl.col("provider") == "builtwith")["status"]) == {"ok"}
    # One attempt per call, and the circuit breaker stops calling before every call went out.
    assert similarweb["attempts"].max() <= 1
    assert len(recorder.paths("/v1/website/")) < 6 * len(domains)

    profiles = read_table(warehouse_url, PROFILES)
    assert sorted(profiles["domain"]) == sorted(domains)
    assert set(profiles["status"]) == {"partial"}
    assert profiles["traffic_source"].is_null().all()
    assert (profiles["technologies_source"] == "builtwith").all()
    scores = read_table(warehouse_url, SCORES)
    assert sorted(scores["domain"]) == sorted(domains)
    assert scores["icp_score"].is_between(0, 100).all()
    _assert_checks_passed(result)


def _builtwith_401(request: httpx.Request) -> httpx.Response | None:
    if request.url.path == "/v22/api.json":
        error = {"Lookup": None, "Message": "API key is missing or invalid", "Code": -4}
        return httpx.Response(401, json={"Results": [], "Errors": [error]})
    return None


def test_builtwith_401_disables_builtwith_after_one_call(instance, warehouse_url):
    recorder = Recorder(_builtwith_401)
    domains = BOTH
    result = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
    assert result.success
    assert len(recorder.paths("/v22/")) == 1
    assert len(recorder.paths("/v1/website/")) == 6 * len(domains)

    raw = read_table(warehouse_url, RAW)
    builtwith = raw.filter(pl.col("provider") == "builtwith")
    assert builtwith.height == len(domains)
    assert set(builtwith["status"]) == {"auth_failed"}
    assert set(raw.filter(pl.col("provider") == "similarweb")["status"]) == {"ok"}
    meta = raw_metadata(result)
    assert "builtwith" in meta["disabled_providers"]
    assert meta["provider/builtwith"]["calls"] == 1

    profiles = read_table(warehouse_url, PROFILES)
    assert set(profiles["status"]) == {"partial"}
    assert profiles["technologies_source"].is_null().all()
    assert (profiles["traffic_source"] == "similarweb").all()
    assert read_table(warehouse_url, SCORES).height == len(domains)


def test_builtwith_401_with_network_latency_still_one_call(instance, warehouse_url):
    calls: list[str] = []

    async def slow_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v22/api.json":
            calls.append(str(request.url))
            await asyncio.sleep(0.05)  # a real API answers in tens of milliseconds
            return _builtwith_401(request)
        return Recorder()(request)

    result = run_pipeline(instance, warehouse_url, BOTH, transport=httpx.MockTransport(slow_401))
    assert result.success
    assert len(calls) == 1


def test_junk_partition_is_never_sent_to_a_provider(instance, warehouse_url):
    recorder = Recorder()
    domains = [BOTH[0], "localhost", BOTH[1]]
    result = run_pipeline(instance, warehouse_url, domains, transport=recorder.transport())
    assert result.success
    assert recorder.requests
    assert not [u for u in recorder.urls() if "localhost" in u]
    assert len(recorder.requests) == CALLS_PER_DOMAIN * 2
    meta = raw_metadata(result)
    assert meta["invalid_domains"] == 1
    assert meta["domains"] == 2
    assert "localhost" not in set(read_table(warehouse_url, RAW)["domain"])
    assert sorted(read_table(warehouse_url, PROFILES)["domain"]) == sorted([BOTH[0], BOTH[1]])
    # The operator is told, in the run's log, why that partition was not fetched.
    messages = [e.user_message for e in instance.all_logs(result.run_id) if e.level >= logging.WARNING]
    assert any("localhost" in m and "not fetching" in m for m in messages)


def _statuses(profile_row: dict) -> dict[str, dict]:
    return {s["provider"]: s for s in json.loads(profile_row["provider_statuses"])}


def test_out_of_contract_answer_is_a_parse_error_row_not_fatal(instance, warehouse_url):
    bad = BOTH[1]

    def corrupt(request: httpx.Request) -> httpx.Response | None:
        # A real-shaped SimilarWeb answer whose bounce rates are percentages, not fractions.
        if request.url.path != f"/v1/website/{bad}/total-traffic-and-engagement/bounce-rate":
            return None
        body = sandbox_handler(request).json()
        for point in body["bounce_rate"]:
            point["bounce_rate"] = 61.7
        return httpx.Response(200, json=body)

    result = run_pipeline(instance, warehouse_url, BOTH, transport=Recorder(corrupt).transport())
    assert result.success

    raw = read_table(warehouse_url, RAW)
    [row] = raw.filter((pl.col("domain") == bad) & (pl.col("endpoint") == "bounce_rate")).to_dicts()
    assert row["status"] == "parse_error" and "bounce_rate" in row["detail"]
    others = raw.filter((pl.col("domain") != bad) | (pl.col("endpoint") != "bounce_rate"))
    assert set(others["status"]) == {"ok"}
    assert read_table(warehouse_url, "staging.quarantine").is_empty()
    profiles = read_table(warehouse_url, PROFILES)
    assert sorted(profiles["domain"]) == sorted(BOTH)
    bad_profile = profiles.filter(pl.col("domain") == bad).to_dicts()[0]
    assert bad_profile["status"] == "partial" and bad_profile["bounce_rate"] is None
    assert _statuses(bad_profile)["similarweb"]["status"] == "parse_error"
    assert set(profiles.filter(pl.col("domain") != bad)["status"]) == {"enriched"}
    _assert_checks_passed(result)


def test_a_stored_answer_refused_by_a_contract_makes_the_profile_partial(instance, warehouse_url):
    bad = BOTH[1]
    assert run_pipeline(instance, warehouse_url, BOTH).success
    # An answer stored before today's checks existed (or by another version), which the
    # staging contracts refuse: it must not vanish silently from the profile.
    with Warehouse.open(warehouse_url) as wh:
        stored = wh.query(
            "SELECT payload FROM raw.provider_responses WHERE domain = ? AND endpoint = 'bounce_rate'", [bad]
        )["payload"][0]
        body = json.loads(stored)
        for point in body["bounce_rate"]:
            point["bounce_rate"] = 1.7
        with wh.transaction():
            wh._execute(  # test-only surgery on a stored row
                "UPDATE raw.provider_responses SET payload = ? WHERE domain = ? AND endpoint = 'bounce_rate'",
                [json.dumps(body), bad],
            )
    result = run_pipeline(instance, warehouse_url, BOTH)  # served from the cache: no new call
    assert result.success

    quarantine = read_table(warehouse_url, "staging.quarantine").sort("source")
    assert quarantine["source"].to_list() == ["staging.provider_fields", "staging.similarweb_traffic"]
    assert set(quarantine["domain"]) == {bad} and all("bounce_rate" in r for r in quarantine["reason"])
    traffic = read_table(warehouse_url, "staging.similarweb_traffic")
    assert sorted(traffic["domain"]) == sorted(d for d in BOTH if d != bad)
    profiles = read_table(warehouse_url, PROFILES)
    bad_profile = profiles.filter(pl.col("domain") == bad).to_dicts()[0]
    assert bad_profile["traffic_source"] is None
    assert bad_profile["status"] == "partial"
    similarweb_status = _statuses(bad_profile)["similarweb"]
    assert similarweb_status["status"] == "refused" and "bounce_rate" in similarweb_status["detail"]
    _assert_checks_passed(result)


def test_bodies_that_used_to_crash_the_run_cost_one_row_each(instance, warehouse_url):
    """Deep nesting, a 5,000-digit integer, wrong types and absurd epochs: one row each, the run goes on."""
    deep, huge, odd, epochs = BOTH
    sw = "/v1/website/{}/total-traffic-and-engagement/visits"
    bodies = {
        ("/v22/api.json", deep): b"[" * 100_000 + b"]" * 100_000,
        (
            sw.format(huge),
            None,
        ): b'{"meta": {"status": "Success"}, "visits": [{"date": "2026-08-01", "visits": '
        + b"9" * 5000
        + b"}]}",
        ("/v22/api.json", odd): json.dumps(
            {"Results": [{"Result": {"Paths": [{"Technologies": [{"Name": ["x"], "FirstDetected": {}}]}]}}]}
        ).encode(),
        ("/v22/api.json", epochs): json.dumps(
            {
                "Results": [
                    {
                        "Result": {
                            "Paths": [{"Technologies": [{"Name": "Shopify", "FirstDetected": 1e300}]}]
                        },
                        "LastIndexed": -(10**30),
                    }
                ]
            }
        ).encode(),
    }

    def hostile(request: httpx.Request) -> httpx.Response | None:
        lookup = request.url.params.get("LOOKUP")
        body = bodies.get((request.url.path, lookup)) or bodies.get((request.url.path, None))
        if body is None:
            return None
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    result = run_pipeline(instance, warehouse_url, BOTH, transport=Recorder(hostile).transport())
    assert result.success

    raw = read_table(warehouse_url, RAW)
    status = {(r["provider"], r["endpoint"], r["domain"]): r for r in raw.iter_rows(named=True)}
    assert status[("builtwith", "domain_api", deep)]["status"] == "parse_error"
    assert status[("similarweb", "visits", huge)]["status"] == "parse_error"
    assert status[("builtwith", "domain_api", odd)]["status"] == "not_found"  # no readable technology
    assert status[("builtwith", "domain_api", epochs)]["status"] == "ok"  # unknown dates, not a crash
    for row in status.values():
        if row["status"] == "parse_error":
            assert row["detail"] and len(row["detail"]) < 200 and row["payload"] is None
    assert sum(r["status"] == "parse_error" for r in status.values()) == 2
    profiles = read_table(warehouse_url, PROFILES)
    assert sorted(profiles["domain"]) == sorted(BOTH)
    assert profiles.filter(pl.col("domain") == deep)["status"].to_list() == ["partial"]
