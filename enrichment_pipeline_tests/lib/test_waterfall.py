"""The waterfall: config validation, who is called at which level, and the calls it saves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.providers.base import Auth, Provider, ProviderRequest
from enrichment_pipeline.lib.settings import ProviderSettings, SettingsError
from enrichment_pipeline.lib.waterfall import GroupRule, Waterfall, load_waterfall

WATERFALL = Waterfall(
    groups={
        "firmographics": GroupRule(providers=["alpha", "beta", "gamma"]),
        "technologies": GroupRule(providers=["tech", "beta"]),
    }
)


def test_bundled_waterfall_loads_and_names_only_known_providers():
    from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES

    waterfall = load_waterfall()
    waterfall.check_providers(PROVIDER_NAMES)
    assert waterfall.order("technologies")[0] == "builtwith"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups:\n  firmographics:\n    providers: []\n", "groups.firmographics.providers"),
        ("groups:\n  colours:\n    providers: [alpha]\n", "unknown field group"),
        ("groups:\n  traffic:\n    providers: [a, a]\n", "listed twice"),
        ("groups:\n  traffic:\n    providers: [a]\n    strategy: sometimes\n", "strategy"),
        ("groups: [\n", "not valid YAML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_waterfall(path)


def test_unknown_provider_is_named():
    with pytest.raises(SettingsError, match="unknown provider"):
        WATERFALL.check_providers(["alpha", "beta"])


def test_levels_call_a_lower_provider_only_for_an_empty_group():
    active = {"alpha", "beta", "gamma", "tech"}
    assert WATERFALL.wanted(0, set(), set(), active) == {"alpha", "tech"}
    # alpha filled firmographics and tech filled technologies: nobody else is needed.
    assert WATERFALL.wanted(1, {"firmographics", "technologies"}, {"alpha", "tech"}, active) == set()
    assert not WATERFALL.may_want_more(0, {"firmographics", "technologies"}, {"alpha", "tech"}, active)
    # technologies still empty: beta (second for technologies) is called at level 1.
    assert WATERFALL.wanted(1, {"firmographics"}, {"alpha", "tech"}, active) == {"beta"}
    # beta answered both groups empty: gamma is the last chance for firmographics.
    assert WATERFALL.wanted(2, set(), {"alpha", "tech", "beta"}, active) == {"gamma"}
    # An inactive provider (no key in live mode) is skipped, not waited for.
    assert WATERFALL.wanted(2, set(), {"alpha", "tech", "beta"}, active - {"gamma"}) == set()


def test_strategy_all_calls_every_provider_at_once():
    waterfall = Waterfall(groups={"technologies": GroupRule(providers=["a", "b"], strategy="all")})
    assert waterfall.wanted(0, {"technologies"}, set(), {"a", "b"}) == {"a", "b"}
    assert waterfall.depth == 1


class FakeFirmographics(Provider):
    """One GET per domain; fills firmographics unless the domain is in `empty`."""

    default_base_url = "https://fake.test"
    default_rps = 0

    def __init__(self, name: str, empty: set[str], batch: int = 1) -> None:
        self.name = name  # type: ignore[misc]
        self.empty = empty
        self.batch_size = batch  # type: ignore[misc]

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        return [ProviderRequest("company", "GET", f"/{self.name}/{domain}")]

    def auth(self, api_key: str) -> Auth:
        return Auth(params={"key": api_key})

    def extract(self, domain: str, payloads: dict[str, Any]) -> dict[str, Any]:
        body = payloads.get("company") or {}
        return {"company_name": body.get("name")} if body.get("name") else {}


def settings(name: str) -> ProviderSettings:
    return ProviderSettings(name=name, base_url="https://fake.test", api_key="k", rps=None, cost_per_call=0.1)


async def test_stop_at_first_hit_saves_the_lower_providers_calls():
    domains = [f"d{i}.com" for i in range(20)]
    alpha_empty = set(domains[:5])  # alpha knows 15 of 20
    beta_empty = set(domains[:2])  # beta knows 3 of those 5
    calls: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        provider, domain = request.url.path.strip("/").split("/")
        calls[provider] += 1
        empty = alpha_empty if provider == "alpha" else beta_empty if provider == "beta" else set()
        return httpx.Response(200, json={} if domain in empty else {"name": domain})

    providers = [
        (FakeFirmographics("alpha", alpha_empty), settings("alpha")),
        (FakeFirmographics("beta", beta_empty), settings("beta")),
        (FakeFirmographics("gamma", set()), settings("gamma")),
    ]
    waterfall = Waterfall(groups={"firmographics": GroupRule(providers=["alpha", "beta", "gamma"])})
    written: list[Any] = []
    report = await fetch_domains(
        providers,
        FetchPlan(domains=domains),
        write=written.extend,
        mode="sandbox",
        waterfall=waterfall,
        transport=httpx.MockTransport(handler),
    )
    assert calls == {"alpha": 20, "beta": 5, "gamma": 2}
    assert report.stats["beta"].calls_saved == 15
    assert report.stats["gamma"].calls_saved == 18
    assert report.stats["alpha"].calls_saved == 0
    # Every domain's rows were written, each provider once per domain it was asked about.
    per_domain = Counter(r.domain for r in written)
    assert per_domain[domains[0]] == 3 and per_domain[domains[4]] == 2 and per_domain[domains[10]] == 1
    assert report.domains_written == 20


async def test_cached_answers_count_for_the_waterfall():
    domains = ["a.com", "b.com"]
    calls: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        provider, domain = request.url.path.strip("/").split("/")
        calls[provider] += 1
        return httpx.Response(200, json={"name": domain})

    providers = [
        (FakeFirmographics("alpha", set()), settings("alpha")),
        (FakeFirmographics("beta", set()), settings("beta")),
    ]
    waterfall = Waterfall(groups={"firmographics": GroupRule(providers=["alpha", "beta"])})
    # a.com: alpha's fresh cached answer fills the group; b.com: alpha's cached answer is empty.
    plan = FetchPlan(
        domains=domains,
        fresh={"alpha": {("company", "a.com"), ("company", "b.com")}},
        cached={"alpha": {"a.com": {"company": {"name": "A"}}, "b.com": {"company": {}}}},
    )
    report = await fetch_domains(
        providers, plan, write=lambda rows: None, mode="sandbox", waterfall=waterfall,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    assert calls == {"beta": 1}
    assert report.stats["alpha"].cache_hits == 2
    assert report.stats["alpha"].calls == 0


def test_a_fill_only_stops_the_providers_ranked_below_the_filler():
    # gamma (last for firmographics) filled it at level 0: beta (level 1) is still wanted.
    filled = WATERFALL.fill_positions("gamma", {"firmographics"})
    assert filled == {"firmographics": 2}
    assert WATERFALL.wanted(1, filled, {"alpha", "tech", "gamma"}, {"alpha", "beta", "gamma", "tech"}) == {
        "beta"
    }
    # a provider not listed for a group stands after all of them
    assert WATERFALL.fill_positions("tech", {"firmographics"}) == {"firmographics": 3}
    merged: dict[str, int] = {}
    Waterfall.merge_fills(merged, {"firmographics": 2})
    Waterfall.merge_fills(merged, {"firmographics": 0, "technologies": 0})
    assert merged == {"firmographics": 0, "technologies": 0}
    assert WATERFALL.wanted(1, merged, {"alpha", "tech"}, {"alpha", "beta", "gamma", "tech"}) == set()


def test_a_provider_is_dropped_from_groups_its_endpoint_cannot_fill():
    limited = WATERFALL.for_capabilities({"beta": {"firmographics"}, "tech": set()})
    assert limited.order("technologies") == []  # tech and beta both cannot fill it
    assert limited.order("firmographics") == ["alpha", "beta", "gamma"]
    assert WATERFALL.for_capabilities({}).groups == WATERFALL.groups
