"""The sandbox transport: deterministic, faithful shapes, realistic ranges, epochs.

Requests are built from the real providers (`requests_for` + `auth`) exactly as
the shared HTTP policy would, so these tests also prove providers, simulator
and parsers agree with each other.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from datetime import date
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.providers.base import Provider, ProviderRequest
from enrichment_pipeline.lib.providers.builtwith import (
    BuiltWith,
    groups_from_free_api,
    technologies_from_domain_api,
)
from enrichment_pipeline.lib.providers.similarweb import SimilarWeb, traffic_from_payloads
from enrichment_pipeline.lib.sandbox import builtwith as sandbox_builtwith
from enrichment_pipeline.lib.sandbox.transport import sandbox_handler, sandbox_transport

TODAY = date(2026, 11, 22)
KEY = "sandbox-key"
DOMAINS_200 = [f"company-{i}.example" for i in range(200)]
DOMAINS_500 = [f"shop{i}.test" for i in range(500)]


def as_httpx(provider: Provider, request: ProviderRequest, key: str | None = KEY) -> httpx.Request:
    """The request the policy would send: base URL + path, request params + auth params."""
    params = dict(request.params)
    if key is not None:
        params.update(provider.auth(key).params)
    return httpx.Request(request.method, provider.default_base_url + request.path, params=params)


def answer(provider: Provider, request: ProviderRequest, epoch: int = 1) -> tuple[int, Any]:
    response = sandbox_handler(as_httpx(provider, request), epoch=epoch)
    return response.status_code, response.json()


def builtwith_body(domain: str, epoch: int = 1) -> tuple[int, Any]:
    provider = BuiltWith()
    return answer(provider, provider.requests_for(domain)[0], epoch)


def similarweb_bodies(domain: str, provider: SimilarWeb | None = None) -> dict[str, tuple[int, Any]]:
    provider = provider or SimilarWeb(today=TODAY)
    return {r.endpoint: answer(provider, r) for r in provider.requests_for(domain)}


# ----------------------------------------------------------------- determinism


def test_same_request_twice_gives_identical_bytes() -> None:
    with httpx.Client(transport=sandbox_transport()) as client:
        for provider in (BuiltWith(), BuiltWith("free"), SimilarWeb(today=TODAY)):
            for request in provider.requests_for("acme.com"):
                first = client.send(as_httpx(provider, request))
                second = client.send(as_httpx(provider, request))
                assert first.status_code == second.status_code
                assert first.content == second.content
                assert first.headers["content-type"] == "application/json"


def test_different_domains_differ() -> None:
    assert builtwith_body("alpha-shop.com")[1] != builtwith_body("beta-shop.com")[1]
    alpha, beta = similarweb_bodies("alpha-shop.com"), similarweb_bodies("beta-shop.com")
    assert alpha["visits"][1]["visits"] != beta["visits"][1]["visits"]


def test_domain_case_does_not_matter() -> None:
    assert builtwith_body("ACME.com")[1] == builtwith_body("acme.com")[1]


def test_overlapping_windows_agree_month_by_month() -> None:
    three = similarweb_bodies("acme.com", SimilarWeb(months=3, today=TODAY))["visits"][1]["visits"]
    six = similarweb_bodies("acme.com", SimilarWeb(months=6, today=TODAY))["visits"][1]["visits"]
    assert six[-3:] == three


def test_default_epoch_is_one() -> None:
    request = as_httpx(BuiltWith(), BuiltWith().requests_for("acme.com")[0])
    assert sandbox_handler(request).content == sandbox_handler(request, epoch=1).content


# ----------------------------------------------------------------- shapes parse, ranges hold


def test_builtwith_answers_parse_for_200_domains() -> None:
    provider, free = BuiltWith(), BuiltWith("free")
    known = 0
    for domain in DOMAINS_200:
        request = provider.requests_for(domain)[0]
        status, body = answer(provider, request)
        result = provider.interpret(request, status, body)
        assert status == 200 and result is not None
        free_request = free.requests_for(domain)[0]
        free_status, free_body = answer(free, free_request)
        free_result = free.interpret(free_request, free_status, free_body)
        assert free_result is not None and free_result.status == result.status
        if result.status == "not_found":
            assert body["Errors"][0]["Code"] == -10
            assert technologies_from_domain_api(domain, body) == []
            continue
        assert result.status == "ok"
        known += 1
        rows = technologies_from_domain_api(domain, body)
        assert 6 <= len(rows) <= 30
        assert len({r["technology"] for r in rows}) == len(rows)
        for row in rows:
            assert row["first_detected"] <= row["last_detected"]
            assert row["last_detected"] <= sandbox_builtwith.index_time(1)
            assert row["categories"] and row["tag"]
            assert isinstance(row["is_premium"], bool)
            assert row["path"].endswith(domain)
        groups = groups_from_free_api(domain, free_body)
        top = [g for g in groups if "/" not in g["group"]]
        # both APIs describe the same stack
        assert sum(g["live"] + g["dead"] for g in top) == len(rows)
    assert known > 150


def test_similarweb_answers_parse_for_200_domains() -> None:
    provider = SimilarWeb(today=TODAY)
    profiles = []
    for domain in DOMAINS_200:
        bodies = similarweb_bodies(domain, provider)
        statuses = set()
        for request in provider.requests_for(domain):
            status, body = bodies[request.endpoint]
            result = provider.interpret(request, status, body)
            assert result is not None
            statuses.add(result.status)
        assert statuses in ({"ok"}, {"not_found"})
        if statuses == {"not_found"}:
            assert all(status == 404 for status, _ in bodies.values())
            assert bodies["visits"][1]["meta"]["error_message"] == "Data not found"
            continue
        profile = traffic_from_payloads(domain, {k: body for k, (_, body) in bodies.items()})
        assert profile["period_start"] == date(2026, 8, 1) and profile["period_end"] == date(2026, 10, 31)
        profiles.append(profile)

    assert len(profiles) > 150
    # Small sites have months with 0 visits (gaps) and an unranked (0) global rank:
    # gaps never count as traffic and an unranked site has no rank at all.
    assert any(p["gap_months"] for p in profiles)
    assert any(p["global_rank"] is None for p in profiles)
    profiles = [p for p in profiles if p["monthly_visits"] is not None and p["global_rank"] is not None]
    for p in profiles:
        assert 1e4 <= p["monthly_visits"] <= 5e8
        assert 0.25 <= p["bounce_rate"] <= 0.75
        assert 1.5 <= p["pages_per_visit"] <= 9
        assert 30 <= p["avg_visit_duration_s"] <= 600
        assert 0.1 <= p["search_share"] <= 0.7
        assert p["global_rank"] >= 1
        total = p["search_share"] + p["direct_share"] + p["referral_share"] + p["social_share"]
        assert total <= 1.0 + 1e-6
    # size is skewed: most domains are small, a few are huge
    visits = sorted(p["monthly_visits"] for p in profiles)
    assert statistics.median(visits) < 2e6 < visits[-1]
    # rank is consistent with traffic: more visits, better (lower) rank
    log_v = [math.log10(p["monthly_visits"]) for p in profiles]
    log_r = [math.log10(p["global_rank"]) for p in profiles]
    assert statistics.correlation(log_v, log_r) < -0.95


def test_similarweb_dates_follow_requested_window() -> None:
    provider = SimilarWeb(months=5, today=date(2026, 2, 10))
    bodies = similarweb_bodies("acme.com", provider)
    expected = ["2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01", "2026-01-01"]
    for endpoint in ("visits", "bounce_rate", "pages_per_visit", "average_visit_duration", "global_rank"):
        status, body = bodies[endpoint]
        assert status == 200 and body["meta"]["status"] == "Success"
        # global-rank points are dated by month, as in the recorded answer
        dates = [day[:7] for day in expected] if endpoint == "global_rank" else expected
        assert [point["date"] for point in body[endpoint]] == dates
        assert body["meta"]["request"]["start_date"] == "2025-09-01"
        assert body["meta"]["request"]["end_date"] == "2026-01-31"
    sources = bodies["traffic_sources"][1]["visits"]["acme.com"]
    assert {s["source_type"] for s in sources} == {
        "Search",
        "Social",
        "Mail",
        "Display Ads",
        "Direct",
        "Referrals",
    }
    for source in sources:
        assert [point["date"] for point in source["visits"]] == expected


def test_similarweb_sources_are_desktop_visits_below_all_devices() -> None:
    """As in the recorded answer: source counts are desktop only, well below the month's visits,
    so the stored shares are the desktop channel mix (fractions of the sources' own sum)."""
    checked = 0
    for domain in DOMAINS_200[:60]:
        bodies = similarweb_bodies(domain)
        if bodies["visits"][0] != 200:
            assert "request" not in bodies["visits"][1]["meta"]  # the recorded not-found body
            continue
        assert bodies["traffic_sources"][1]["meta"]["device"] == "Desktop"
        sources = bodies["traffic_sources"][1]["visits"][domain]
        for i, point in enumerate(bodies["visits"][1]["visits"]):
            desktop = sum(s["visits"][i]["organic"] + s["visits"][i]["paid"] for s in sources)
            if point["visits"] == 0:
                assert desktop == 0  # a gap month has no sources either
                continue
            assert 0.1 < desktop / point["visits"] < 0.5
            checked += 1
        profile = traffic_from_payloads(domain, {k: body for k, (_, body) in bodies.items()})
        search = next(s for s in sources if s["source_type"] == "Search")["visits"]
        months = [
            (p["organic"] + p["paid"])
            / sum(s["visits"][i]["organic"] + s["visits"][i]["paid"] for s in sources)
            for i, p in enumerate(search)
            if p["organic"] + p["paid"] > 0
        ]
        assert profile["search_share"] == pytest.approx(statistics.fmean(months))
    assert checked > 100


def test_unknown_rates_are_about_one_in_25_and_independent() -> None:
    unknown_bw = {d for d in DOMAINS_500 if builtwith_body(d)[1]["Errors"]}
    provider = SimilarWeb(today=TODAY)
    unknown_sw = {d for d in DOMAINS_500 if answer(provider, provider.requests_for(d)[0])[0] == 404}
    for unknown in (unknown_bw, unknown_sw):
        assert 0.01 <= len(unknown) / len(DOMAINS_500) <= 0.10
    assert unknown_bw != unknown_sw


# ----------------------------------------------------------------- epochs


def _stack(domain: str, epoch: int) -> set[str]:
    _status, body = builtwith_body(domain, epoch)
    return {row["technology"] for row in technologies_from_domain_api(domain, body)}


def test_epoch_two_changes_some_stacks_but_not_all() -> None:
    known = [d for d in DOMAINS_200 if sandbox_builtwith.is_known(d)]
    changed = 0
    for domain in known:
        before, after = _stack(domain, 1), _stack(domain, 2)
        if before != after:
            changed += 1
            assert len(after - before) == 1 and len(before - after) == 1  # one added, one removed
    assert 0.15 <= changed / len(known) <= 0.45


def test_epoch_moves_last_detected_forward_and_added_tech_is_new() -> None:
    domain = next(d for d in DOMAINS_200 if sandbox_builtwith.is_known(d) and _stack(d, 1) != _stack(d, 2))
    rows1 = {r["technology"]: r for r in technologies_from_domain_api(domain, builtwith_body(domain, 1)[1])}
    rows2 = {r["technology"]: r for r in technologies_from_domain_api(domain, builtwith_body(domain, 2)[1])}
    [added] = set(rows2) - set(rows1)
    assert rows2[added]["first_detected"] > sandbox_builtwith.index_time(1)
    assert rows2[added]["last_detected"] <= sandbox_builtwith.index_time(2)
    for name in set(rows1) & set(rows2):
        assert rows2[name]["first_detected"] == rows1[name]["first_detected"]
        assert rows2[name]["last_detected"] >= rows1[name]["last_detected"]


def test_bad_epoch_is_rejected() -> None:
    with pytest.raises(ValueError):
        sandbox_transport(epoch=0)


# ----------------------------------------------------------------- auth, routing, clients


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key_is_401(key: str | None) -> None:
    for provider in (BuiltWith(), BuiltWith("free"), SimilarWeb(today=TODAY)):
        request = provider.requests_for("acme.com")[0]
        response = sandbox_handler(as_httpx(provider, request, key=key))
        assert response.status_code == 401
        assert provider.interpret(request, 401, response.json()) is None  # policy says auth_failed


def test_unknown_path_is_json_404() -> None:
    for url in (
        "https://api.builtwith.com/v99/api.json",
        "https://x/v1/website/acme.com/nope/nope",
        "https://x/",
    ):
        response = sandbox_handler(httpx.Request("GET", url, params={"KEY": KEY, "api_key": KEY}))
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        response.json()


def test_routing_ignores_host() -> None:
    provider = BuiltWith()
    request = provider.requests_for("acme.com")[0]
    elsewhere = httpx.Request(
        "GET", "http://localhost:9999" + request.path, params={**request.params, "KEY": KEY}
    )
    assert sandbox_handler(elsewhere).content == sandbox_handler(as_httpx(provider, request)).content


def test_out_of_plan_country_403_then_world_fallback_succeeds() -> None:
    provider = SimilarWeb(country="de", today=TODAY)
    domain = next(d for d in DOMAINS_200 if similarweb_bodies(d)["visits"][0] == 200)
    request = provider.requests_for(domain)[0]
    status, body = answer(provider, request)
    assert status == 403
    result = provider.interpret(request, status, body)
    assert result is not None and result.fallback is not None
    status, body = answer(provider, result.fallback)
    assert status == 200
    final = provider.interpret(result.fallback, status, body)
    assert final is not None and final.status == "ok"


def test_in_plan_country_has_fewer_visits_than_world() -> None:
    domain = next(d for d in DOMAINS_200 if similarweb_bodies(d)["visits"][0] == 200)
    world = traffic_from_payloads(domain, {"visits": similarweb_bodies(domain)["visits"][1]})
    us_bodies = similarweb_bodies(domain, SimilarWeb(country="us", today=TODAY))
    us = traffic_from_payloads(domain, {"visits": us_bodies["visits"][1]})
    assert 0 < us["monthly_visits"] < world["monthly_visits"]


def test_sync_client_end_to_end() -> None:
    provider = SimilarWeb(today=TODAY)
    domain = next(d for d in DOMAINS_200 if similarweb_bodies(d)["visits"][0] == 200)
    payloads: dict[str, Mapping[str, Any]] = {}
    with httpx.Client(transport=sandbox_transport(), base_url=provider.default_base_url) as client:
        for request in provider.requests_for(domain):
            response = client.get(request.path, params={**request.params, **provider.auth(KEY).params})
            assert response.status_code == 200
            payloads[request.endpoint] = response.json()
    profile = traffic_from_payloads(domain, payloads)
    assert all(value is not None for value in profile.values())


async def test_async_client_end_to_end() -> None:
    provider = BuiltWith()
    request = provider.requests_for("acme.com")[0]
    async with httpx.AsyncClient(
        transport=sandbox_transport(epoch=2), base_url=provider.default_base_url
    ) as client:
        response = await client.get(request.path, params={**request.params, **provider.auth(KEY).params})
    assert response.status_code == 200
    assert response.content == sandbox_handler(as_httpx(provider, request), epoch=2).content


def test_builtwith_sandbox_dead_and_version_entries_agree_with_the_provider() -> None:
    from enrichment_pipeline.lib.providers.builtwith import technologies_from_domain_api

    parents = 0
    for domain in (f"company{i}.com" for i in range(120)):
        status, body = sandbox_builtwith.domain_api_response(domain)
        if status != 200 or not body["Results"]:
            continue
        rows = {r["technology"]: r for r in technologies_from_domain_api(domain, body)}
        stack = sandbox_builtwith.technology_stack(domain)
        assert {n for n, r in rows.items() if r["is_live"]} == {e.tech.name for e in stack if e.live}
        assert {n for n, r in rows.items() if not r["is_live"]} == {e.tech.name for e in stack if not e.live}
        techs = [t for p in body["Results"][0]["Result"]["Paths"] for t in p["Technologies"]]
        parents += sum(1 for t in techs if t.get("Parent"))
    assert parents > 10  # version entries exist, and roll up (no name above is a version)


def test_sample_domains_get_their_public_facts_and_others_stay_deterministic() -> None:
    from enrichment_pipeline.lib.providers.apollo import organization_fields
    from enrichment_pipeline.lib.providers.clearbit import company_fields
    from enrichment_pipeline.lib.sandbox import apollo as sb_apollo
    from enrichment_pipeline.lib.sandbox import clearbit as sb_clearbit

    facts = sb_clearbit.company_facts("3m.com")
    assert (facts.vertical, facts.country, facts.ticker) == ("Business And Industrial", "US", "MMM")
    assert company_fields(sb_clearbit.company_record("3m.com"))["industry_naics"] == "31-33"
    apollo = sb_apollo.organization("www.3M.com")
    if apollo is not None:
        assert organization_fields(apollo)["industry_naics"] == "31-33"
    assert sb_clearbit.company_facts("ups.com").vertical == "Transportation"
    assert sb_clearbit.company_facts("atlassian.com").country == "AU"
    # Not a sample: the same deterministic draw every time.
    assert sb_clearbit.company_facts("company7.com") == sb_clearbit._company_facts.__wrapped__("company7.com")
