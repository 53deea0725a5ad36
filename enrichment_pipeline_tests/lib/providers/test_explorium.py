"""Explorium provider: match-then-enrich in bulk, per-domain rows, batch and item isolation, units.

A scripted MockTransport plays Explorium's three bulk endpoints (in AgentSource
v1 shapes) and counts every call, so the tests can check that unmatched domains
cost no enrichment calls, that a failing batch only fails its own domains and
that one bad item only fails its own domain.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.providers.base import CallResult, ProviderRequest
from enrichment_pipeline.lib.providers.explorium import (
    ENDPOINTS,
    FIRMOGRAPHICS_PATH,
    MATCH_PATH,
    TECHNOGRAPHICS_PATH,
    Explorium,
    firmographic_fields,
    match_items,
    technologies,
)
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow

KEY = "explorium-test-key-0001"
COST = 0.05


def settings(**overrides: Any) -> ProviderSettings:
    base = {
        "name": "explorium",
        "base_url": Explorium.default_base_url,
        "api_key": KEY,
        "rps": None,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "cost_per_call": COST,
        "max_attempts": 3,
        "breaker_failures": 1000,
    }
    return ProviderSettings(**{**base, **overrides})


def bid(domain: str) -> str:
    return hashlib.sha256(domain.encode()).hexdigest()[:32]


def firmographics_data(domain: str) -> dict[str, Any]:
    return {
        "business_id": bid(domain),
        "name": domain.split(".")[0].title(),
        "website": f"https://www.{domain}",
        "country_name": "united states",
        "number_of_employees_range": "51-200",
        "yearly_revenue_range": "10M-25M",
        "naics": 511210,
        "naics_description": "Software Publishers",
        "linkedin_industry_category": "software development",
        "sic_code": "7372",
    }


def technographics_data(domain: str) -> dict[str, Any]:
    return {
        "full_tech_stack": ["HubSpot", "Slack", "React"],
        "full_nested_tech_stack": [
            {"category": "Marketing", "techs": ["HubSpot"]},
            {"category": "Productivity and Operations", "techs": ["Slack"]},
            {"category": "Programming Languages and Frameworks", "techs": ["React"]},
        ],
    }


class FakeExplorium:
    """Explorium's match and bulk enrichment endpoints, with faults scripted per domain.

    `unmatched`: business_id null. `match_errors`: an item with error/error_type.
    `failing_firmographics`: any firmographics batch holding one of these domains
    answers 503 every time. `missing`: endpoint -> domains whose items are left out.
    `aliases`: domain -> domain whose business it is (two domains, one business).
    """

    def __init__(
        self,
        *,
        unmatched: Iterable[str] = (),
        match_errors: Iterable[str] = (),
        failing_firmographics: Iterable[str] = (),
        failing_match: bool = False,
        missing: dict[str, set[str]] | None = None,
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.unmatched = set(unmatched)
        self.match_errors = set(match_errors)
        self.failing_firmographics = set(failing_firmographics)
        self.failing_match = failing_match
        self.missing = missing or {}
        self.aliases = aliases or {}
        self.by_id: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.bodies: dict[str, list[Any]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.headers.get("api_key") == KEY
        path = request.url.path
        body = json.loads(request.content)
        self.calls[path] += 1
        self.bodies.setdefault(path, []).append(body)
        context = {"correlation_id": "c" * 32, "request_status": "success", "time_took_in_seconds": 0.1}
        if path == MATCH_PATH:
            if self.failing_match:
                return httpx.Response(500, json={"detail": "Internal Server Error"})
            assert 1 <= len(body["businesses_to_match"]) <= 50
            items = []
            for entry in body["businesses_to_match"]:
                domain = entry["domain"]
                if domain in self.match_errors:
                    items.append({"input": entry, "error": "lookup failed", "error_type": "internal"})
                    continue
                owner = self.aliases.get(domain, domain)
                business = None if domain in self.unmatched else bid(owner)
                if business:
                    self.by_id[business] = owner
                items.append({"input": entry, "business_id": business})
            matches = sum(1 for i in items if i.get("business_id"))
            return httpx.Response(
                200,
                json={
                    "response_context": context,
                    "total_results": len(items),
                    "total_matches": matches,
                    "matched_businesses": items,
                },
            )
        ids = body["business_ids"]
        assert 1 <= len(ids) <= 50 and len(ids) == len(set(ids))
        domains = [self.by_id[i] for i in ids]
        if path == FIRMOGRAPHICS_PATH:
            if self.failing_firmographics & set(domains):
                return httpx.Response(503, json={"detail": "Service Unavailable"})
            make: Callable[[str], dict[str, Any]] = firmographics_data
            endpoint = "firmographics"
        else:
            assert path == TECHNOGRAPHICS_PATH
            make, endpoint = technographics_data, "technographics"
        gone = self.missing.get(endpoint, set())
        data = [
            {"business_id": i, "data": make(d)} for i, d in zip(ids, domains, strict=True) if d not in gone
        ]
        return httpx.Response(200, json={"response_context": context, "data": data})

    def ids_sent(self, path: str) -> list[str]:
        return [i for body in self.bodies.get(path, []) for i in body["business_ids"]]


async def fetch_direct(
    provider: Explorium,
    fake: FakeExplorium,
    domains: list[str],
    missing: Callable[[str, str], bool] = lambda endpoint, domain: True,
    **overrides: Any,
) -> tuple[dict[str, dict[str, CallResult]], ProviderClient]:
    async with ProviderClient(provider, settings(**overrides), transport=fake.transport()) as client:
        fetched = await provider.fetch_domains(client, domains, missing)
    return {d: dict(rows) for d, rows in fetched.items()}, client


# --------------------------------------------------------------------------- flow


async def test_120_domains_three_batches_enrich_only_matched_ids() -> None:
    domains = [f"co{i:03d}.example" for i in range(120)]
    unmatched = {d for i, d in enumerate(domains) if i % 12 == 0}  # 10 domains
    fake = FakeExplorium(unmatched=unmatched)
    written: list[ResponseRow] = []

    report = await fetch_domains(
        [(Explorium(batch_size=50), settings())],
        FetchPlan(domains=domains),
        write=written.extend,
        mode="sandbox",
        transport=fake.transport(),
    )

    assert fake.calls == {MATCH_PATH: 3, FIRMOGRAPHICS_PATH: 3, TECHNOGRAPHICS_PATH: 3}
    matched_ids = sorted(bid(d) for d in domains if d not in unmatched)
    assert sorted(fake.ids_sent(FIRMOGRAPHICS_PATH)) == matched_ids
    assert sorted(fake.ids_sent(TECHNOGRAPHICS_PATH)) == matched_ids
    assert sorted(len(b["businesses_to_match"]) for b in fake.bodies[MATCH_PATH]) == [20, 50, 50]

    assert len(written) == 120 * 3
    statuses = Counter((r.endpoint, r.status) for r in written)
    assert statuses == {
        ("match", "ok"): 110,
        ("firmographics", "ok"): 110,
        ("technographics", "ok"): 110,
        ("match", "not_found"): 10,
        ("firmographics", "not_found"): 10,
        ("technographics", "not_found"): 10,
    }
    for row in written:
        if row.domain in unmatched and row.endpoint != "match":
            assert row.attempts == 0 and row.cost_usd == 0.0
    # Nine calls in all; the per-domain rows share their costs out exactly.
    assert report.stats["explorium"].calls == 9
    assert sum(r.cost_usd for r in written) == pytest.approx(9 * COST)


async def test_unmatched_batch_costs_no_enrichment_calls() -> None:
    domains = ["nobody.example", "nothing.example"]
    fake = FakeExplorium(unmatched=domains)

    rows, _ = await fetch_direct(Explorium(), fake, domains)

    assert fake.calls == {MATCH_PATH: 1}
    for domain in domains:
        assert {e: r.status for e, r in rows[domain].items()} == dict.fromkeys(ENDPOINTS, "not_found")
        assert rows[domain]["match"].payload == {"input": {"domain": domain}, "business_id": None}


async def test_failing_firmographics_batch_only_fails_its_own_domains() -> None:
    domains = [f"d{i}.example" for i in range(9)]
    fake = FakeExplorium(failing_firmographics={"d4.example"})  # in the second batch of three

    rows, client = await fetch_direct(Explorium(batch_size=3), fake, domains, max_attempts=3)

    bad_batch = {"d3.example", "d4.example", "d5.example"}
    for domain in domains:
        firm = rows[domain]["firmographics"]
        if domain in bad_batch:
            assert firm.status == "error" and firm.http_status == 503
            assert firm.attempts == 3  # retried as a batch by the policy, then given up
        else:
            assert firm.status == "ok"
        assert rows[domain]["match"].status == "ok"
        assert rows[domain]["technographics"].status == "ok"
    assert fake.calls[FIRMOGRAPHICS_PATH] == 2 + 3
    assert client.stats.retries == 2


async def test_item_level_problems_only_affect_their_domain() -> None:
    domains = ["good.example", "broken.example", "sparse.example", "fine.example"]
    fake = FakeExplorium(match_errors={"broken.example"}, missing={"firmographics": {"sparse.example"}})

    rows, _ = await fetch_direct(Explorium(), fake, domains)

    assert rows["broken.example"]["match"].status == "error"
    assert "lookup failed" in (rows["broken.example"]["match"].detail or "")
    # Not requested, and not cached as "not found": the next run asks again.
    assert rows["broken.example"]["firmographics"].status == "error"
    assert rows["broken.example"]["firmographics"].attempts == 0
    assert rows["sparse.example"]["firmographics"].status == "not_found"
    assert rows["sparse.example"]["technographics"].status == "ok"
    for domain in ("good.example", "fine.example"):
        assert {e: r.status for e, r in rows[domain].items()} == dict.fromkeys(ENDPOINTS, "ok")
    assert bid("broken.example") not in fake.ids_sent(FIRMOGRAPHICS_PATH)


async def test_failed_match_fails_the_batch_without_enrichment_calls() -> None:
    fake = FakeExplorium(failing_match=True)

    rows, _ = await fetch_direct(Explorium(), fake, ["a.example", "b.example"], max_attempts=2)

    assert fake.calls == {MATCH_PATH: 2}
    for domain in ("a.example", "b.example"):
        assert rows[domain]["match"].status == "error" and rows[domain]["match"].attempts == 2
        for endpoint in ("firmographics", "technographics"):
            assert rows[domain][endpoint].status == "error"
            assert rows[domain][endpoint].attempts == 0
            assert rows[domain][endpoint].cost == 0.0


async def test_cost_is_split_across_the_domains_each_call_served() -> None:
    domains = ["a.example", "b.example", "c.example", "gone.example"]
    fake = FakeExplorium(unmatched={"gone.example"})

    rows, client = await fetch_direct(Explorium(), fake, domains)

    for domain in domains:
        assert rows[domain]["match"].cost == pytest.approx(COST / 4)
        assert rows[domain]["match"].attempts == 1
    for domain in domains[:3]:
        assert rows[domain]["firmographics"].cost == pytest.approx(COST / 3)
        assert rows[domain]["technographics"].cost == pytest.approx(COST / 3)
    total = sum(r.cost for per_domain in rows.values() for r in per_domain.values())
    assert total == pytest.approx(client.stats.cost) == pytest.approx(3 * COST)


async def test_two_domains_of_one_business_send_the_id_once() -> None:
    fake = FakeExplorium(aliases={"acme.co.uk": "acme.com"})

    rows, _ = await fetch_direct(Explorium(), fake, ["acme.com", "acme.co.uk"])

    assert fake.ids_sent(FIRMOGRAPHICS_PATH) == [bid("acme.com")]
    for domain in ("acme.com", "acme.co.uk"):
        assert rows[domain]["firmographics"].status == "ok"
        assert rows[domain]["firmographics"].payload["business_id"] == bid("acme.com")
        assert rows[domain]["firmographics"].cost == pytest.approx(COST / 2)


async def test_only_missing_endpoints_are_fetched() -> None:
    fake = FakeExplorium()
    cached = {("match", "a.example"), ("technographics", "a.example")}

    rows, _ = await fetch_direct(Explorium(), fake, ["a.example"], lambda e, d: (e, d) not in cached)

    # The id is not in the cache handed to fetch_domains, so the match is made again, but not stored.
    assert fake.calls == {MATCH_PATH: 1, FIRMOGRAPHICS_PATH: 1}
    assert set(rows["a.example"]) == {"firmographics"}


async def test_fully_cached_domains_make_no_calls() -> None:
    fake = FakeExplorium()

    rows, _ = await fetch_direct(Explorium(), fake, ["a.example"], lambda e, d: False)

    # Like every provider's fetch: the domain is listed, with nothing fetched.
    assert rows == {"a.example": {}} and not fake.calls


# --------------------------------------------------------------------------- protocol


def test_batch_size_is_validated() -> None:
    assert Explorium(batch_size=1).batch_size == 1
    assert Explorium().batch_size == 50
    for bad in (0, 51, -3, True):
        with pytest.raises(ValueError, match="batch_size"):
            Explorium(batch_size=bad)


def test_auth_header_endpoints_and_match_request() -> None:
    provider = Explorium()
    assert dict(provider.auth("k123").headers) == {"api_key": "k123"}
    assert provider.endpoints("a.example") == ["match", "firmographics", "technographics"]
    (request,) = provider.requests_for("a.example")
    assert (request.method, request.path) == ("POST", MATCH_PATH)
    assert request.json == {"businesses_to_match": [{"domain": "a.example"}]}


@pytest.mark.parametrize(
    ("endpoint", "status", "body", "expected"),
    [
        ("match", 200, {"matched_businesses": []}, "ok"),
        ("match", 200, {"response_context": {"request_status": "miss"}}, "ok"),
        (
            "match",
            200,
            {"response_context": {"request_status": "failure"}, "matched_businesses": []},
            "error",
        ),
        ("firmographics", 200, {"data": "nope"}, "parse_error"),
        ("firmographics", 200, ["not", "an", "object"], "parse_error"),
        ("firmographics", 403, {"detail": "You have insufficient credits"}, "quota_exhausted"),
        ("firmographics", 404, {"detail": "Not Found"}, "error"),
        ("match", 422, {"detail": [{"loc": ["body"], "msg": "field required", "type": "x"}]}, "error"),
    ],
)
def test_interpret_whole_call_answers(endpoint: str, status: int, body: Any, expected: str) -> None:
    request = ProviderRequest(endpoint, "POST", "/v1/x", json={})
    verdict = Explorium().interpret(request, status, body)
    assert verdict is not None and verdict.status == expected


def test_interpret_leaves_auth_failures_to_the_policy() -> None:
    request = ProviderRequest("match", "POST", MATCH_PATH, json={})
    assert Explorium().interpret(request, 401, {"detail": "Partner ID is invalid."}) is None
    assert Explorium().interpret(request, 403, {"detail": "Forbidden"}) is None


def test_match_items_pair_by_echoed_domain_then_position() -> None:
    payload = {
        "matched_businesses": [
            {"input": {"domain": "https://www.A.example/"}, "business_id": "a" * 32},
            {"business_id": "b" * 32},  # no echo: Explorium keeps input order
        ]
    }
    items = match_items(payload, ["a.example", "b.example"])
    assert items["a.example"]["business_id"] == "a" * 32
    assert items["b.example"]["business_id"] == "b" * 32
    # Without an echo and with a short list, position proves nothing: no pairing at all.
    assert match_items({"matched_businesses": [{"business_id": "a" * 32}]}, ["a.example", "b.example"]) == {}


# --------------------------------------------------------------------------- units


def test_extract_maps_ranges_industry_country_and_technologies() -> None:
    payloads = {
        "firmographics": {"business_id": bid("acme.com"), "data": firmographics_data("acme.com")},
        "technographics": {"business_id": bid("acme.com"), "data": technographics_data("acme.com")},
    }
    fields = Explorium().extract("acme.com", payloads)
    assert fields == {
        "company_name": "Acme",
        "industry_naics": "51",
        "industry_label": "Information",
        "employees": 125,
        "employees_range": "51-200",
        "revenue_usd": 17.5e6,
        "revenue_low_usd": 10e6,
        "revenue_high_usd": 25e6,
        "country": "US",
        "technologies": ["HubSpot", "Slack", "React"],
    }


def test_firmographic_fields_open_ended_ranges_and_text_industry() -> None:
    fields = firmographic_fields(
        {
            "name": "Big Co",
            "number_of_employees_range": "10001+",
            "yearly_revenue_range": "100B-1T",
            "naics": None,
            "naics_description": None,
            "linkedin_industry_category": "financial services",
            "country_name": "germany",
        }
    )
    assert fields["employees"] == 10001 and fields["employees_range"] == "10001+"
    assert (fields["revenue_low_usd"], fields["revenue_high_usd"]) == (1e11, 1e12)
    assert fields["industry_naics"] == "52" and fields["country"] == "DE"
    assert firmographic_fields({"number_of_employees_range": "", "country_name": "Atlantis"}) == {}


def test_technologies_fall_back_to_the_nested_stack() -> None:
    nested_only = {
        "full_tech_stack": None,
        "full_nested_tech_stack": technographics_data("x")["full_nested_tech_stack"],
    }
    assert technologies(nested_only) == ["HubSpot", "Slack", "React"]
    grouped = {"full_tech_stack": [{"category": "Sales", "technologies": ["Outreach", "Outreach", " "]}]}
    assert technologies(grouped) == ["Outreach"]
    assert Explorium().extract("x", {"technographics": {"data": {"full_tech_stack": []}}}) == {}
