"""BuiltWith provider: request building, in-body error semantics, pure parsing.

Payloads are hand-written in the real Domain API v22 / Free API shapes so the
parser is pinned to BuiltWith's format, not to the sandbox's rendition of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enrichment_pipeline.lib.providers.base import Auth, Provider, ProviderRequest
from enrichment_pipeline.lib.providers.builtwith import (
    BuiltWith,
    groups_from_free_api,
    technologies_from_domain_api,
)

DOMAIN_REQ = BuiltWith().requests_for("acme.com")[0]
FREE_REQ = BuiltWith("free").requests_for("acme.com")[0]

# 2013-09-05T23:00:00Z and 2024-03-01T00:00:00Z in epoch milliseconds, as BuiltWith's JSON uses.
MS_2013 = 1378422000000
MS_2024 = 1709251200000


def _tech(name: str, first: int, last: int, premium: str = "no", **extra: Any) -> dict[str, Any]:
    tech = {
        "Categories": extra.pop("Categories", ["Site Search"]),
        "IsPremium": premium,
        "Name": name,
        "Description": f"{name} description",
        "Link": "https://example.invalid",
        "Tag": extra.pop("Tag", "widgets"),
        "FirstDetected": first,
        "LastDetected": last,
    }
    tech.update(extra)
    return tech


def domain_payload(*paths: dict[str, Any]) -> dict[str, Any]:
    """A v22 answer for acme.com with the given Paths."""
    return {
        "Results": [
            {
                "Result": {"IsDB": "True", "Spend": 1200, "Paths": list(paths)},
                "Meta": {"CompanyName": "Acme Inc.", "Vertical": "Retail", "Social": None, "ARank": -1},
                "Attributes": {"Employees": 250, "MJRank": 12345},
                "FirstIndexed": MS_2013,
                "LastIndexed": MS_2024,
                "Lookup": "acme.com",
                "SalesRevenue": 0,
            }
        ],
        "Errors": [],
        "Trust": None,
        "NextOffset": None,
    }


def path(technologies: list[dict[str, Any]], sub: str = "", url: str = "") -> dict[str, Any]:
    return {
        "FirstIndexed": MS_2013,
        "LastIndexed": MS_2024,
        "Domain": "acme.com",
        "Url": url,
        "SubDomain": sub,
        "Technologies": technologies,
    }


def errors_payload(message: str, code: int) -> dict[str, Any]:
    return {
        "Results": [],
        "Errors": [{"Lookup": "acme.com", "Message": message, "Code": code}],
        "Trust": None,
        "NextOffset": None,
    }


FREE_PAYLOAD: dict[str, Any] = {
    "domain": "acme.com",
    "first": 1295823600,
    "last": 1709251200,
    "groups": [
        {
            "name": "analytics",
            "live": 12,
            "dead": 5,
            "latest": 1709251200,
            "oldest": 1295823600,
            "categories": [
                {"live": 2, "dead": 1, "latest": 1709251200, "oldest": 1378422000, "name": "Tag Management"},
                {"live": 4, "dead": 0, "latest": 1709164800, "oldest": 1400000000, "name": "Analytics"},
            ],
        },
        {"name": "cdn", "live": 1, "dead": 0, "latest": 1709251200, "oldest": 1600000000, "categories": []},
    ],
}


# ----------------------------------------------------------------- provider contract


def test_class_settings() -> None:
    assert issubclass(BuiltWith, Provider)
    assert BuiltWith.name == "builtwith"
    assert BuiltWith.default_base_url == "https://api.builtwith.com"
    assert BuiltWith.default_rps == 8
    assert BuiltWith.default_cost_per_call > 0
    assert BuiltWith.ttl == timedelta(days=30)
    assert BuiltWith.not_found_ttl == timedelta(days=7)


def test_domain_api_request() -> None:
    assert BuiltWith().requests_for("acme.com") == [
        ProviderRequest("domain_api", "GET", "/v22/api.json", {"LOOKUP": "acme.com"})
    ]


def test_free_api_request() -> None:
    assert BuiltWith("free").requests_for("acme.com") == [
        ProviderRequest("free_api", "GET", "/free1/api.json", {"LOOKUP": "acme.com"})
    ]


def test_unknown_api_is_rejected() -> None:
    with pytest.raises(ValueError, match="domain"):
        BuiltWith("pro")  # type: ignore[arg-type]


def test_key_goes_in_the_KEY_param() -> None:
    assert BuiltWith().auth("secret") == Auth(params={"KEY": "secret"})


# ----------------------------------------------------------------- interpret


def test_ok_answer_keeps_body_as_payload() -> None:
    body = domain_payload(path([_tech("Algolia", MS_2013, MS_2024)]))
    result = BuiltWith().interpret(DOMAIN_REQ, 200, body)
    assert result is not None
    assert result.status == "ok"
    assert result.payload == body
    assert result.fallback is None


def test_code_minus_10_is_not_found() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, errors_payload("Something odd", -10))
    assert result is not None
    assert result.status == "not_found"
    assert "Something odd" in (result.detail or "")


def test_no_data_message_is_not_found_whatever_the_code() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, errors_payload("No data available for this lookup", -7))
    assert result is not None and result.status == "not_found"


def test_other_error_code_is_error_with_message() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, errors_payload("Lookup is malformed", -3))
    assert result is not None
    assert result.status == "error"
    assert result.detail is not None and "Lookup is malformed" in result.detail and "-3" in result.detail


def test_key_error_in_body_is_auth_failed_not_not_found() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, errors_payload("API key not found", -4))
    assert result is not None and result.status == "auth_failed"


def test_credit_error_in_body_is_quota_exhausted() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, errors_payload("Out of API credits", -5))
    assert result is not None and result.status == "quota_exhausted"


def test_empty_results_is_not_found() -> None:
    body = {"Results": [], "Errors": [], "Trust": None, "NextOffset": None}
    result = BuiltWith().interpret(DOMAIN_REQ, 200, body)
    assert result is not None and result.status == "not_found"


def test_results_without_technologies_is_not_found() -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, domain_payload(path([])))
    assert result is not None and result.status == "not_found"


def test_free_api_with_groups_is_ok() -> None:
    result = BuiltWith("free").interpret(FREE_REQ, 200, FREE_PAYLOAD)
    assert result is not None and result.status == "ok" and result.payload == FREE_PAYLOAD


@pytest.mark.parametrize("groups", [None, []])
def test_free_api_without_groups_is_not_found(groups: list[Any] | None) -> None:
    body = {"domain": "acme.com", "first": 0, "last": 0, "groups": groups}
    result = BuiltWith("free").interpret(FREE_REQ, 200, body)
    assert result is not None and result.status == "not_found"


def test_endpoint_not_constructor_decides_shape() -> None:
    """A free_api answer read by a domain-API-configured instance is still read as Free API."""
    result = BuiltWith("domain").interpret(FREE_REQ, 200, FREE_PAYLOAD)
    assert result is not None and result.status == "ok"


@pytest.mark.parametrize("status", [401, 403, 404, 422, 429, 500, 503])
def test_non_2xx_left_to_policy(status: int) -> None:
    assert BuiltWith().interpret(DOMAIN_REQ, status, errors_payload("whatever", -1)) is None
    assert BuiltWith().interpret(DOMAIN_REQ, status, None) is None


@pytest.mark.parametrize("body", [None, [], "oops"])
def test_2xx_non_object_is_parse_error(body: Any) -> None:
    result = BuiltWith().interpret(DOMAIN_REQ, 200, body)
    assert result is not None and result.status == "parse_error"


# ----------------------------------------------------------------- technologies_from_domain_api


def test_parse_one_technology_fields() -> None:
    body = domain_payload(
        path(
            [_tech("Algolia", MS_2013, MS_2024, premium="yes", Categories=["Site Search", "Personalization"])]
        )
    )
    [row] = technologies_from_domain_api("acme.com", body)
    assert row == {
        "domain": "acme.com",
        "technology": "Algolia",
        "tag": "widgets",
        "categories": ["Site Search", "Personalization"],
        "first_detected": datetime(2013, 9, 5, 23, 0, tzinfo=UTC),
        "last_detected": datetime(2024, 3, 1, tzinfo=UTC),
        "is_premium": True,
        "path": "acme.com",
        "parent": None,
        "is_live": True,
    }


def test_epoch_milliseconds_not_seconds() -> None:
    [row] = technologies_from_domain_api("acme.com", domain_payload(path([_tech("X", MS_2013, MS_2024)])))
    assert row["first_detected"].year == 2013  # read as seconds it would be year ~45650
    assert row["first_detected"].tzinfo is UTC


@pytest.mark.parametrize(("raw", "expected"), [("yes", True), ("no", False), ("maybe", False), ("YES", True)])
def test_is_premium_strings(raw: str, expected: bool) -> None:
    [row] = technologies_from_domain_api(
        "acme.com", domain_payload(path([_tech("X", MS_2013, MS_2024, raw)]))
    )
    assert row["is_premium"] is expected


def test_duplicates_merge_earliest_first_latest_last() -> None:
    early, mid, late = MS_2013, MS_2013 + 86_400_000 * 100, MS_2024
    body = domain_payload(
        path([_tech("Google Analytics 4", mid, late, Tag="analytics", Categories=["Analytics"])]),
        path(
            [
                _tech("Google Analytics 4", early, mid, premium="yes", Tag="analytics", Categories=["Tag"]),
                _tech("Shopify", mid, late, Tag="shop", Categories=["Hosted Solution"]),
            ],
            sub="shop",
        ),
    )
    rows = technologies_from_domain_api("acme.com", body)
    assert [r["technology"] for r in rows] == ["Google Analytics 4", "Shopify"]
    ga = rows[0]
    assert ga["first_detected"] == datetime.fromtimestamp(early / 1000, tz=UTC)
    assert ga["last_detected"] == datetime.fromtimestamp(late / 1000, tz=UTC)
    assert ga["is_premium"] is True
    assert ga["categories"] == ["Analytics", "Tag"]
    assert ga["path"] == "shop.acme.com"  # where it was first seen
    assert rows[1]["path"] == "shop.acme.com"


def test_internal_url_shows_in_path() -> None:
    [row] = technologies_from_domain_api(
        "acme.com", domain_payload(path([_tech("X", 1, 2)], url="/checkout"))
    )
    assert row["path"] == "acme.com/checkout"


def test_missing_and_zero_dates_are_none() -> None:
    tech = _tech("X", 0, MS_2024)
    del tech["LastDetected"]
    [row] = technologies_from_domain_api("acme.com", domain_payload(path([tech])))
    assert row["first_detected"] is None and row["last_detected"] is None


def test_nameless_and_junk_entries_are_skipped() -> None:
    body = domain_payload(path([{"Tag": "cdn"}, "junk", _tech("Cloudflare", MS_2013, MS_2024)]))  # type: ignore[list-item]
    assert [r["technology"] for r in technologies_from_domain_api("acme.com", body)] == ["Cloudflare"]


def test_category_objects_from_older_answers() -> None:
    tech = _tech("X", MS_2013, MS_2024, Categories=[{"Name": "CDN"}, "Edge"])
    [row] = technologies_from_domain_api("acme.com", domain_payload(path([tech])))
    assert row["categories"] == ["CDN", "Edge"]


@pytest.mark.parametrize(
    "body", [{}, {"Results": []}, errors_payload("No data", -10), {"Results": [{"Result": None}]}]
)
def test_empty_answers_parse_to_no_rows(body: dict[str, Any]) -> None:
    assert technologies_from_domain_api("acme.com", body) == []


# ----------------------------------------------------------------- groups_from_free_api


def test_free_api_groups_and_categories() -> None:
    rows = groups_from_free_api("acme.com", FREE_PAYLOAD)
    assert [r["group"] for r in rows] == [
        "analytics",
        "analytics/Tag Management",
        "analytics/Analytics",
        "cdn",
    ]
    analytics = rows[0]
    assert analytics == {
        "domain": "acme.com",
        "group": "analytics",
        "live": 12,
        "dead": 5,
        "latest": datetime(2024, 3, 1, tzinfo=UTC),
        "oldest": datetime.fromtimestamp(1295823600, tz=UTC),
    }
    assert rows[1]["oldest"] == datetime(2013, 9, 5, 23, 0, tzinfo=UTC)  # seconds, not ms


def test_free_api_without_groups_parses_to_no_rows() -> None:
    assert groups_from_free_api("acme.com", {"domain": "acme.com", "groups": []}) == []
    assert groups_from_free_api("acme.com", {}) == []
