"""Clearbit and Apollo simulators: determinism, real shapes, error paths, rates, cross-provider consistency.

Requests are built from the real providers (`requests_for` / `bulk_request` +
`auth`) the way the shared HTTP policy sends them, so these tests also prove
providers and simulators agree with each other.
"""

from __future__ import annotations

import base64
import json
import math
import statistics
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fields import FIELD_TYPES
from enrichment_pipeline.lib.providers.apollo import TECH_ALIASES, Apollo, organization_fields
from enrichment_pipeline.lib.providers.base import Provider, ProviderRequest
from enrichment_pipeline.lib.providers.clearbit import Clearbit, technology_name
from enrichment_pipeline.lib.sandbox import apollo as sandbox_apollo
from enrichment_pipeline.lib.sandbox import builtwith as sandbox_builtwith
from enrichment_pipeline.lib.sandbox import clearbit as sandbox_clearbit
from enrichment_pipeline.lib.sandbox.similarweb import base_monthly_visits
from enrichment_pipeline.lib.units import industry_from_naics, industry_from_text

KEY = "sandbox-key"
DOMAINS = [f"company-{i}.example" for i in range(400)]


def as_httpx(provider: Provider, request: ProviderRequest, key: str | None = KEY) -> httpx.Request:
    """The request the policy would send: base URL + path + params, JSON body, auth."""
    headers: dict[str, str] = {}
    if key is not None:
        auth = provider.auth(key)
        headers.update(auth.headers)
        if auth.basic_user:
            headers["authorization"] = "Basic " + base64.b64encode(f"{auth.basic_user}:".encode()).decode()
    return httpx.Request(
        request.method,
        provider.default_base_url + request.path,
        params=dict(request.params),
        json=request.json,
        headers=headers,
    )


def clearbit(domain: str, epoch: int = 1, key: str | None = KEY) -> httpx.Response:
    provider = Clearbit()
    response = sandbox_clearbit.route(as_httpx(provider, provider.requests_for(domain)[0], key), epoch=epoch)
    assert response is not None
    return response


def apollo(domain: str, key: str | None = KEY) -> httpx.Response:
    provider = Apollo()
    response = sandbox_apollo.route(as_httpx(provider, provider.requests_for(domain)[0], key))
    assert response is not None
    return response


def apollo_bulk(domains: list[str]) -> httpx.Response:
    provider = Apollo()
    response = sandbox_apollo.route(as_httpx(provider, provider.bulk_request(domains)))
    assert response is not None
    return response


def clearbit_fields(domain: str) -> dict[str, Any]:
    response = clearbit(domain, epoch=2)
    return Clearbit().extract(domain, {"company": response.json()}) if response.status_code == 200 else {}


def apollo_fields(domain: str) -> dict[str, Any]:
    org = sandbox_apollo.organization(domain)
    return Apollo().extract(domain, {"organization": {"organization": org}}) if org else {}


# ----------------------------------------------------------------- routing and determinism


def test_routes_answer_only_their_own_paths() -> None:
    other = httpx.Request("GET", "https://api.example.com/v22/api.json")
    assert sandbox_clearbit.route(other) is None
    assert sandbox_apollo.route(other) is None


def test_answers_are_deterministic() -> None:
    for domain in DOMAINS[:20]:
        assert clearbit(domain).content == clearbit(domain).content
        assert apollo(domain).content == apollo(domain).content
    batch = DOMAINS[:10]
    assert apollo_bulk(batch).content == apollo_bulk(batch).content


def test_company_facts_do_not_change_between_epochs() -> None:
    for domain in DOMAINS[:40]:
        if clearbit(domain).status_code != 200:
            continue
        first, later = clearbit(domain, 1).json(), clearbit(domain, 3).json()
        assert first["metrics"] == later["metrics"] and first["category"] == later["category"]
        assert first["indexedAt"] < later["indexedAt"]


# ----------------------------------------------------------------- Clearbit


def test_clearbit_needs_a_basic_auth_user_or_bearer_token() -> None:
    response = clearbit(DOMAINS[0], key=None)
    assert response.status_code == 401 and response.json()["error"]["type"] == "auth_required"
    url = Clearbit.default_base_url + "/v2/companies/find?domain=acme.com"
    empty_user = httpx.Request(
        "GET", url, headers={"authorization": "Basic " + base64.b64encode(b":").decode()}
    )
    assert sandbox_clearbit.route(empty_user).status_code == 401  # type: ignore[union-attr]
    bearer = httpx.Request("GET", url, headers={"authorization": f"Bearer {KEY}"})
    assert sandbox_clearbit.route(bearer).status_code in (200, 202, 404)  # type: ignore[union-attr]


def test_clearbit_invalid_domain_is_422() -> None:
    response = clearbit("localhost")
    assert response.status_code == 422 and response.json()["error"]["type"] == "params_invalid"


def test_clearbit_rates_of_unknown_and_queued_domains() -> None:
    statuses = [clearbit(d).status_code for d in DOMAINS]
    unknown, queued = statuses.count(404) / len(DOMAINS), statuses.count(202) / len(DOMAINS)
    assert 0.01 <= unknown <= 0.08, unknown
    assert 0.005 <= queued <= 0.07, queued
    assert clearbit(DOMAINS[0]).headers["content-type"].startswith("application/json")


def test_a_queued_domain_answers_from_the_second_epoch_on() -> None:
    queued = [d for d in DOMAINS if sandbox_clearbit.is_queued(d)]
    assert queued
    for domain in queued:
        first = clearbit(domain, epoch=1)
        assert first.status_code == 202 and first.content == b""  # a 202 carries no body
        assert clearbit(domain, epoch=2).status_code == 200


def test_clearbit_record_has_the_real_shape() -> None:
    domain = next(d for d in DOMAINS if clearbit(d).status_code == 200)
    body = clearbit(domain).json()
    for key in (
        "id", "name", "legalName", "domain", "domainAliases", "site", "category", "tags", "description",
        "foundedYear", "location", "timeZone", "geo", "logo", "facebook", "linkedin", "twitter",
        "crunchbase", "emailProvider", "type", "ticker", "identifiers", "phone", "metrics", "indexedAt",
        "tech", "techCategories", "parent", "ultimateParent",
    ):  # fmt: skip
        assert key in body, key
    for key in ("sector", "industryGroup", "industry", "subIndustry", "sicCode", "naicsCode"):
        assert key in body["category"]
    for key in ("countryCode", "country", "city", "state", "stateCode", "postalCode", "lat", "lng"):
        assert key in body["geo"]
    for key in ("employees", "employeesRange", "annualRevenue", "estimatedAnnualRevenue", "raised"):
        assert key in body["metrics"]
    assert body["domain"] == domain and body["type"] in ("public", "private")
    assert all(isinstance(slug, str) and slug == slug.lower() for slug in body["tech"])


# ----------------------------------------------------------------- Apollo


def test_apollo_needs_the_key_header() -> None:
    response = apollo(DOMAINS[0], key=None)
    assert response.status_code == 401
    assert "x-minute-requests-left" not in response.headers


def test_apollo_single_enrich_shapes_and_unknown_domains() -> None:
    answers = [apollo(d) for d in DOMAINS]
    assert all(a.status_code == 200 for a in answers)
    empty = sum(a.json() == {} for a in answers) / len(DOMAINS)
    assert 0.02 <= empty <= 0.1, empty
    org = next(a.json()["organization"] for a in answers if a.json())
    for key in (
        "id", "name", "website_url", "primary_domain", "industry", "industries", "secondary_industries",
        "keywords", "estimated_num_employees", "total_funding", "total_funding_printed",
        "latest_funding_stage", "founded_year", "publicly_traded_symbol",
        "publicly_traded_exchange", "country", "city", "state", "technology_names", "current_technologies",
        "short_description", "linkedin_url",
    ):  # fmt: skip
        assert key in org, key
    # Older records name revenue annual_revenue* and carry no codes; newer ones
    # organization_revenue* with naics_codes / sic_codes, some with an unknown revenue.
    orgs = [a.json()["organization"] for a in answers if a.json()]
    assert any("annual_revenue" in o for o in orgs) and any("organization_revenue" in o for o in orgs)
    assert all(("annual_revenue" in o) != ("organization_revenue" in o) for o in orgs)
    assert any(o.get("naics_codes") for o in orgs) and any(not o.get("naics_codes") for o in orgs)
    assert all(("naics_codes" in o) == ("sic_codes" in o) == ("organization_revenue" in o) for o in orgs)
    unknown = [o for o in orgs if o.get("organization_revenue") == 0.0]
    assert unknown and all(o["organization_revenue_printed"] is None for o in unknown)
    assert 0.03 <= len(unknown) / len(orgs) <= 0.2, len(unknown) / len(orgs)
    assert all(o.get("annual_revenue", 1) > 0 for o in orgs)
    assert org["technology_names"] == [t["name"] for t in org["current_technologies"]]


def test_apollo_get_and_post_enrich_agree() -> None:
    domain = DOMAINS[1]
    url = Apollo.default_base_url + "/api/v1/organizations/enrich"
    post = httpx.Request("POST", url, json={"domain": f"www.{domain}"}, headers={"x-api-key": KEY})
    assert sandbox_apollo.route(post).json() == apollo(domain).json()  # type: ignore[union-attr]


def test_apollo_bulk_shape_order_and_missing_domains() -> None:
    batch = DOMAINS[:10]
    body = apollo_bulk(batch).json()
    known = [d for d in batch if sandbox_apollo.is_known(d)]
    assert body["status"] == "success" and body["error_code"] is None and body["error_message"] is None
    assert (body["total_requested_domains"], body["unique_domains"]) == (10, 10)
    assert body["unique_enriched_records"] == len(known) == len(body["organizations"])
    assert body["missing_records"] == 10 - len(known)
    assert sorted(o["primary_domain"] for o in body["organizations"]) == sorted(known)
    # Same organizations as the single endpoint, in an order of Apollo's own
    # minus what a real bulk answer lacks: technologies, funding, an older record's revenue.
    singles = {d: sandbox_apollo.bulk_organization(apollo(d).json()["organization"]) for d in known}
    assert {o["primary_domain"]: o for o in body["organizations"]} == singles
    for organization in body["organizations"]:
        assert not sandbox_apollo.BULK_OMITS & set(organization)
        assert not {"technology_names", "current_technologies", "total_funding"} & set(organization)
        assert "annual_revenue" not in organization


def test_apollo_bulk_keeps_a_newer_records_revenue_and_codes() -> None:
    """Newer bulk records carry organization_revenue* and codes: bulk fills revenue where known."""
    provider = Apollo()
    with_revenue = without_revenue = 0
    for start in range(0, 100, 10):
        for organization in apollo_bulk(DOMAINS[start : start + 10]).json()["organizations"]:
            fields = organization_fields(organization)
            assert "technologies" not in fields and "total_funding_usd" not in fields
            if "organization_revenue" in organization:
                assert organization["naics_codes"] and organization["sic_codes"]
                if organization["organization_revenue_printed"] is None:
                    assert "revenue_usd" not in fields  # 0.0 + null printed: unknown, not 0
                    without_revenue += 1
                else:
                    assert fields["revenue_usd"] == organization["organization_revenue"] > 0
                    with_revenue += 1
            else:
                assert "revenue_usd" not in fields and "naics_codes" not in organization
                without_revenue += 1
    assert with_revenue > 30 and without_revenue > 20
    assert provider.fillable_groups() == {"firmographics", "financials"}


def test_apollo_bulk_accepts_query_parameters_too() -> None:
    url = Apollo.default_base_url + "/api/v1/organizations/bulk_enrich"
    request = httpx.Request(
        "POST", url, params=[("domains[]", DOMAINS[0]), ("domains[]", DOMAINS[1])], headers={"x-api-key": KEY}
    )
    assert sandbox_apollo.route(request).json()["unique_domains"] == 2  # type: ignore[union-attr]


def test_apollo_bulk_over_ten_domains_is_422() -> None:
    url = Apollo.default_base_url + "/api/v1/organizations/bulk_enrich"
    request = httpx.Request("POST", url, json={"domains": DOMAINS[:11]}, headers={"x-api-key": KEY})
    response = sandbox_apollo.route(request)
    assert response is not None and response.status_code == 422
    assert "10" in response.json()["error"] and response.json()["error_code"]


def test_apollo_sends_its_rate_limit_headers_with_plenty_left() -> None:
    for response in (apollo(DOMAINS[0]), apollo_bulk(DOMAINS[:3])):
        headers = response.headers
        for window in ("minute", "hourly", "daily"):
            limit = int(headers[f"x-rate-limit-{window}"])
            assert int(headers[f"x-{window}-requests-left"]) + int(headers[f"x-{window}-usage"]) == limit
        assert Apollo().pause_after(headers) is None
    assert int(apollo_bulk(DOMAINS[:3]).headers["x-rate-limit-minute"]) < int(
        apollo(DOMAINS[0]).headers["x-rate-limit-minute"]
    )


# ----------------------------------------------------------------- providers agree with the simulators


def test_extracted_fields_are_standard_and_typed() -> None:
    kinds = {"employees": int, "founded_year": int, "revenue_usd": float, "technologies": list}
    for domain in DOMAINS[:100]:
        for fields in (clearbit_fields(domain), apollo_fields(domain)):
            assert set(fields) <= set(FIELD_TYPES)
            for name, kind in kinds.items():
                if name in fields:
                    assert isinstance(fields[name], (int, float) if kind is float else kind), (name, fields)


def test_every_builtwith_technology_keeps_its_name_through_clearbit_and_apollo() -> None:
    for tech in sandbox_builtwith.CATALOG:
        assert technology_name(sandbox_clearbit.clearbit_slug(tech.name)) == tech.name
        spelled = sandbox_apollo.APOLLO_SPELLING.get(tech.name, tech.name)
        assert TECH_ALIASES.get(spelled, spelled) == tech.name


def test_technologies_mostly_overlap_builtwith_but_not_fully() -> None:
    overlaps: list[float] = []
    identical = 0
    for domain in DOMAINS[:150]:
        if not sandbox_builtwith.is_known(domain):
            continue
        live = {e.tech.name for e in sandbox_builtwith.technology_stack(domain, 2) if e.live}
        for fields in (clearbit_fields(domain), apollo_fields(domain)):
            names = set(fields.get("technologies", []))
            if not names:
                continue
            overlaps.append(len(names & live) / len(live))
            identical += names == live
    assert statistics.fmean(overlaps) >= 0.7
    assert identical < len(overlaps) / 4


def test_industries_agree_across_codes_words_and_providers() -> None:
    for vertical, category in sandbox_clearbit.CATEGORIES.items():
        sector, group, industry, sub, _, naics, naics6 = category
        by_code = industry_from_naics(naics)
        assert by_code is not None
        assert industry_from_naics(naics6) == by_code, vertical
        assert industry_from_text(industry, sub, group, sector) == by_code, vertical
        apollo_industry, secondary, _ = sandbox_apollo.INDUSTRIES[vertical]
        assert industry_from_text(apollo_industry, *secondary) == by_code, vertical


def test_shops_on_builtwith_are_retailers_in_clearbit_and_apollo() -> None:
    shops = [
        d
        for d in DOMAINS[:200]
        if sandbox_builtwith.is_known(d)
        and any(e.tech.slot == "ecommerce" for e in sandbox_builtwith.technology_stack(d, 1))
    ]
    assert len(shops) > 20
    for domain in shops:
        for fields in (clearbit_fields(domain), apollo_fields(domain)):
            if fields:
                assert fields["industry_naics"] == "44-45", domain


def test_employees_track_traffic_size_with_some_real_disagreement() -> None:
    ratios: list[float] = []
    pairs: list[tuple[float, float]] = []
    for domain in DOMAINS:
        response = clearbit(domain, epoch=2)
        org = sandbox_apollo.organization(domain)
        exact = response.json()["metrics"]["employees"] if response.status_code == 200 else None
        if exact is None or org is None:
            continue
        ratio = exact / org["estimated_num_employees"]
        ratios.append(max(ratio, 1 / ratio))
        pairs.append((base_monthly_visits(domain), exact))
    close = sum(r <= 1.36 for r in ratios) / len(ratios)  # both within ±15% of the truth
    far = sum(r >= 2.0 for r in ratios) / len(ratios)  # a wrong-entity match on one side
    assert close >= 0.8, close
    assert 0.04 <= far <= 0.2, far
    # Bigger sites are bigger companies: rank correlation of traffic and head count
    visits_rank = {v: i for i, (v, _) in enumerate(sorted(pairs))}
    staff_rank = {e: i for i, (_, e) in enumerate(sorted(pairs, key=lambda p: p[1]))}
    n = len(pairs)
    d2 = sum((visits_rank[v] - staff_rank[e]) ** 2 for v, e in pairs)
    spearman = 1 - 6 * d2 / (n * (n**2 - 1))
    assert spearman > 0.8, spearman


def test_employees_agree_with_builtwith_attributes() -> None:
    checked = 0
    for domain in DOMAINS[:100]:
        _, body = sandbox_builtwith.domain_api_response(domain)
        if not body["Results"]:
            continue
        truth = body["Results"][0]["Attributes"]["Employees"]
        facts = sandbox_clearbit.company_facts(domain)
        assert facts.employees == truth
        assert body["Results"][0]["Meta"]["Country"] == facts.country
        checked += 1
    assert checked > 80


@pytest.mark.parametrize("provider", ["clearbit", "apollo"])
def test_observation_noise_is_bounded(provider: str) -> None:
    factors = [sandbox_clearbit.observation_factor(provider, d) for d in DOMAINS]
    near = [f for f in factors if 0.85 <= f <= 1.15]
    far = [f for f in factors if f >= 2.5 or f <= 1 / 2.5]
    assert len(near) + len(far) == len(factors)
    assert 0.02 <= len(far) / len(factors) <= 0.09
    assert math.isclose(statistics.fmean(near), 1.0, abs_tol=0.03)


def test_money_and_ranges_print_like_the_providers() -> None:
    assert sandbox_apollo.printed(850_000) == "850K"
    assert sandbox_apollo.printed(10_600_000) == "10.6M"
    assert sandbox_apollo.printed(1_000_000_000) == "1B"
    assert sandbox_clearbit.REVENUE_RANGES.label(30e6) == "$10M-$50M"
    assert sandbox_clearbit.REVENUE_RANGES.label(20e9) == "$10B+"
    assert sandbox_clearbit.EMPLOYEE_RANGES.label(600) == "251-1K"
    assert sandbox_clearbit.EMPLOYEE_RANGES.label(250_000) == "100K+"
    assert json.loads(json.dumps(sandbox_clearbit.company_record(DOMAINS[0])))  # JSON-serialisable
