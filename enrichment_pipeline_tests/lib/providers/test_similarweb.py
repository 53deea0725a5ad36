"""SimilarWeb provider: six requests, country fallback, not-found shape, pure parsing.

Payloads are hand-written in SimilarWeb API v1 shapes (meta.request echo,
meta.status, one list per metric, overview-share keyed by domain with desktop
visit counts per source); the recorded answers are in test_recorded_shapes.py.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from enrichment_pipeline.lib.providers.base import Auth, Provider, ProviderRequest
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS, SimilarWeb, traffic_from_payloads

TODAY = date(2026, 11, 22)
MONTHS = ("2026-08-01", "2026-09-01", "2026-10-01")


def _meta(endpoint_country: str = "world") -> dict[str, Any]:
    return {
        "request": {
            "granularity": "Monthly",
            "main_domain_only": False,
            "format": "json",
            "domain": "acme.com",
            "start_date": "2026-08-01",
            "end_date": "2026-10-31",
            "country": endpoint_country,
        },
        "status": "Success",
        "last_updated": "2026-10-31",
    }


def _series(key: str, values: list[float]) -> dict[str, Any]:
    return {"meta": _meta(), key: [{"date": d, key: v} for d, v in zip(MONTHS, values, strict=True)]}


# Desktop visits per month behind the shares `_sources` is given (overview-share
# counts desktop visits only: well below the all-device visits of FULL).
DESKTOP_VISITS = (310.0, 402.5, 377.25)


def _sources(shares: dict[str, list[float]], domain: str = "acme.com") -> dict[str, Any]:
    """overview-share in its real shape: per source and month, organic/paid visit counts."""
    return {
        "meta": _meta(),
        "visits": {
            domain: [
                {
                    "source_type": source,
                    "visits": [
                        {"date": d, "organic": v * total, "paid": 0.0}
                        for d, v, total in zip(MONTHS, values, DESKTOP_VISITS, strict=True)
                    ],
                }
                for source, values in shares.items()
            ]
        },
    }


NOT_FOUND_BODY = {
    "meta": {
        "request": _meta()["request"],
        "status": "Error",
        "error_code": 401,
        "error_message": "Data not found",
    }
}

FULL = {
    "visits": _series("visits", [1000.0, 1500.0, 2000.0]),
    "bounce_rate": _series("bounce_rate", [0.4, 0.5, 0.6]),
    "pages_per_visit": _series("pages_per_visit", [3.0, 4.0, 5.0]),
    "average_visit_duration": _series("average_visit_duration", [100.0, 200.0, 300.0]),
    # out of order on purpose: the latest month wins, not the last item
    "global_rank": {
        "meta": _meta(),
        "global_rank": [
            {"date": "2026-10-01", "global_rank": 900},
            {"date": "2026-08-01", "global_rank": 1100},
            {"date": "2026-09-01", "global_rank": 1000},
        ],
    },
    "traffic_sources": _sources(
        {
            "Search": [0.4, 0.5, 0.6],
            "Social": [0.1, 0.1, 0.1],
            "Mail": [0.0, 0.0, 0.0],
            "Display Ads": [0.05, 0.05, 0.05],
            "Direct": [0.3, 0.25, 0.2],
            "Referrals": [0.15, 0.1, 0.05],
        }
    ),
}


# ----------------------------------------------------------------- provider contract


def test_class_settings() -> None:
    assert issubclass(SimilarWeb, Provider)
    assert SimilarWeb.name == "similarweb"
    assert SimilarWeb.default_base_url == "https://api.similarweb.com"
    assert SimilarWeb.default_rps == 10
    assert SimilarWeb.default_cost_per_call > 0
    assert SimilarWeb.ttl == timedelta(days=30)


def test_six_requests_paths_and_endpoints() -> None:
    requests = SimilarWeb(today=TODAY).requests_for("acme.com")
    assert [(r.endpoint, r.method, r.path) for r in requests] == [
        ("visits", "GET", "/v1/website/acme.com/total-traffic-and-engagement/visits"),
        ("bounce_rate", "GET", "/v1/website/acme.com/total-traffic-and-engagement/bounce-rate"),
        ("pages_per_visit", "GET", "/v1/website/acme.com/total-traffic-and-engagement/pages-per-visit"),
        (
            "average_visit_duration",
            "GET",
            "/v1/website/acme.com/total-traffic-and-engagement/average-visit-duration",
        ),
        ("global_rank", "GET", "/v1/website/acme.com/global-rank/global-rank"),
        ("traffic_sources", "GET", "/v1/website/acme.com/traffic-sources/overview-share"),
    ]
    assert tuple(r.endpoint for r in requests) == ENDPOINTS


def test_params_last_full_months_before_today() -> None:
    for request in SimilarWeb(today=TODAY).requests_for("acme.com"):
        assert dict(request.params) == {
            "start_date": "2026-08",
            "end_date": "2026-10",
            "granularity": "monthly",
            "country": "world",
            "main_domain_only": "false",
            "format": "json",
        }


@pytest.mark.parametrize(
    ("today", "months", "window"),
    [
        (date(2026, 1, 1), 3, ("2025-10", "2025-12")),
        (date(2026, 1, 31), 1, ("2025-12", "2025-12")),
        (date(2026, 3, 15), 12, ("2025-03", "2026-02")),
        (date(2026, 12, 31), 2, ("2026-10", "2026-11")),
    ],
)
def test_window_crosses_years(today: date, months: int, window: tuple[str, str]) -> None:
    assert SimilarWeb(months=months, today=today).window() == window
    params = SimilarWeb(months=months, today=today).requests_for("x.com")[0].params
    assert (params["start_date"], params["end_date"]) == window


def test_country_is_normalised_and_validated() -> None:
    assert SimilarWeb(country=" US ", today=TODAY).requests_for("a.com")[0].params["country"] == "us"
    with pytest.raises(ValueError):
        SimilarWeb(country="")
    with pytest.raises(ValueError):
        SimilarWeb(months=0)


def test_key_goes_in_api_key_param() -> None:
    assert SimilarWeb().auth("secret") == Auth(params={"api_key": "secret"})


# ----------------------------------------------------------------- interpret


def test_403_with_country_falls_back_to_world() -> None:
    request = SimilarWeb(country="de", today=TODAY).requests_for("acme.com")[0]
    result = SimilarWeb(country="de").interpret(request, 403, {"meta": {"status": "Error"}})
    assert result is not None
    assert result.status == "error"
    assert result.detail == "plan lacks country de; retrying with country=world"
    assert result.fallback == ProviderRequest(
        request.endpoint, "GET", request.path, {**request.params, "country": "world"}
    )
    assert request.params["country"] == "de"  # the original request is untouched


def test_403_with_world_is_left_to_policy() -> None:
    request = SimilarWeb(today=TODAY).requests_for("acme.com")[0]
    assert SimilarWeb().interpret(request, 403, None) is None


def test_fallback_request_403_does_not_loop() -> None:
    request = SimilarWeb(country="fr", today=TODAY).requests_for("acme.com")[0]
    first = SimilarWeb(country="fr").interpret(request, 403, None)
    assert first is not None and first.fallback is not None
    assert SimilarWeb(country="fr").interpret(first.fallback, 403, None) is None


def test_data_not_found_shape_is_not_found() -> None:
    request = SimilarWeb(today=TODAY).requests_for("acme.com")[0]
    result = SimilarWeb().interpret(request, 404, NOT_FOUND_BODY)
    assert result is not None and result.status == "not_found" and result.detail == "Data not found"
    # the same body with another status still means "no data"
    result = SimilarWeb().interpret(request, 200, NOT_FOUND_BODY)
    assert result is not None and result.status == "not_found"


def test_bare_404_is_not_found() -> None:
    request = SimilarWeb(today=TODAY).requests_for("acme.com")[0]
    result = SimilarWeb().interpret(request, 404, None)
    assert result is not None and result.status == "not_found"


def test_success_is_ok_with_body() -> None:
    request = SimilarWeb(today=TODAY).requests_for("acme.com")[0]
    result = SimilarWeb().interpret(request, 200, FULL["visits"])
    assert result is not None and result.status == "ok" and result.payload == FULL["visits"]


def test_2xx_meta_error_is_error() -> None:
    request = SimilarWeb(today=TODAY).requests_for("acme.com")[0]
    body = {"meta": {"status": "Error", "error_code": 3, "error_message": "Invalid granularity"}}
    result = SimilarWeb().interpret(request, 200, body)
    assert result is not None and result.status == "error" and result.detail == "Invalid granularity"


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_other_statuses_left_to_policy(status: int) -> None:
    request = SimilarWeb(today=TODAY).requests_for("acme.com")[0]
    body = {"meta": {"status": "Error", "error_code": status, "error_message": "Invalid API key"}}
    assert SimilarWeb().interpret(request, status, body) is None


# ----------------------------------------------------------------- traffic_from_payloads


def test_full_profile() -> None:
    profile = traffic_from_payloads("acme.com", FULL)
    assert profile == {
        "domain": "acme.com",
        "monthly_visits": pytest.approx(1500.0),
        "visits_growth": pytest.approx(1.0),  # 2000 vs 1000
        "bounce_rate": pytest.approx(0.5),
        "pages_per_visit": pytest.approx(4.0),
        "avg_visit_duration_s": pytest.approx(200.0),
        "global_rank": 900,
        "search_share": pytest.approx(0.5),
        "direct_share": pytest.approx(0.25),
        "referral_share": pytest.approx(0.1),
        "social_share": pytest.approx(0.1),
        "period_start": date(2026, 8, 1),
        "period_end": date(2026, 10, 31),
        "last_updated": date(2026, 10, 31),
        "gap_months": 0,
    }
    assert isinstance(profile["global_rank"], int)


def test_missing_endpoints_give_none() -> None:
    profile = traffic_from_payloads("acme.com", {"visits": FULL["visits"]})
    assert profile["monthly_visits"] == pytest.approx(1500.0)
    for key in ("bounce_rate", "pages_per_visit", "avg_visit_duration_s", "global_rank", "search_share"):
        assert profile[key] is None
    empty = traffic_from_payloads("acme.com", {})
    assert all(v is None for k, v in empty.items() if k not in ("domain", "gap_months"))


def test_error_bodies_are_ignored() -> None:
    profile = traffic_from_payloads(
        "acme.com", {"visits": NOT_FOUND_BODY, "bounce_rate": FULL["bounce_rate"]}
    )
    assert profile["monthly_visits"] is None
    assert profile["bounce_rate"] == pytest.approx(0.5)
    # the window still comes from what was answered
    assert profile["period_start"] == date(2026, 8, 1)


def test_growth_needs_two_points_and_a_nonzero_start() -> None:
    one = {"meta": _meta(), "visits": [{"date": "2026-10-01", "visits": 10.0}]}
    assert traffic_from_payloads("a.com", {"visits": one})["visits_growth"] is None
    zero = _series("visits", [0.0, 5.0, 10.0])  # the 0-visit month is a gap, not a start at 0
    assert traffic_from_payloads("a.com", {"visits": zero})["visits_growth"] == pytest.approx(1.0)
    gaps = _series("visits", [0.0, 0.0, 10.0])
    assert traffic_from_payloads("a.com", {"visits": gaps})["visits_growth"] is None
    down = _series("visits", [200.0, 150.0, 100.0])
    assert traffic_from_payloads("a.com", {"visits": down})["visits_growth"] == pytest.approx(-0.5)


def test_null_points_are_skipped() -> None:
    body = _series("visits", [1000.0, 3000.0, 2000.0])
    body["visits"][1]["visits"] = None
    assert traffic_from_payloads("a.com", {"visits": body})["monthly_visits"] == pytest.approx(1500.0)


def test_search_share_sums_organic_and_paid_source_types() -> None:
    split = _sources(
        {"Organic Search": [0.3, 0.3, 0.3], "Paid Search": [0.1, 0.2, 0.3], "Direct": [0.6, 0.5, 0.4]}
    )
    profile = traffic_from_payloads("acme.com", {"traffic_sources": split})
    assert profile["search_share"] == pytest.approx(0.5)
    assert profile["direct_share"] == pytest.approx(0.5)
    assert profile["referral_share"] is None


def test_source_visit_counts_become_shares_of_the_months_total() -> None:
    # The real answer: per source and month, visit counts split into organic and paid.
    body = {
        "meta": _meta(),
        "visits": {
            "acme.com": [
                {
                    "source_type": "Search",
                    "visits": [{"date": "2026-08-01", "organic": 15000.0, "paid": 3090.6}],
                },
                {"source_type": "Direct", "visits": [{"date": "2026-08-01", "organic": 20000.0, "paid": 0}]},
                {
                    "source_type": "Display Ads",
                    "visits": [{"date": "2026-08-01", "organic": 0, "paid": 1909.4}],
                },
            ]
        },
    }
    profile = traffic_from_payloads("acme.com", {"traffic_sources": body})
    assert profile["search_share"] == pytest.approx(18090.6 / 40000)
    assert profile["direct_share"] == pytest.approx(0.5)
    assert 0 <= profile["search_share"] <= 1


def test_sources_keyed_by_www_variant() -> None:
    body = _sources({"Search": [0.2, 0.2, 0.2], "Direct": [0.8, 0.8, 0.8]}, domain="www.Acme.com")
    assert traffic_from_payloads("acme.com", {"traffic_sources": body})["search_share"] == pytest.approx(0.2)
