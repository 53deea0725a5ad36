"""`lib/cost.py`: calls and cost from the cache state, batch math, quotas, the budget, and the CLI's
`enrich --dry-run` and budget refusal."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from enrichment_pipeline.cli import main
from enrichment_pipeline.lib import cost
from enrichment_pipeline.lib.providers.registry import configured_providers
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS as SIMILARWEB_ENDPOINTS
from enrichment_pipeline.lib.settings import SettingsError
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline.lib.waterfall import Waterfall
from enrichment_pipeline_tests.conftest import response_row

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
FRESH = NOW + timedelta(days=10)
EXPIRED = NOW - timedelta(days=1)
ENV_PREFIXES = ("BUILTWITH_", "SIMILARWEB_", "CLEARBIT_", "APOLLO_", "EXPLORIUM_", "YAHOO_", "ENRICHMENT_")
ENV_NAMES = ("WAREHOUSE_URL", "DAGSTER_HOME", "WATERFALL_CONFIG", "SANDBOX_EPOCH", "DOMAIN_DROP_DIR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            monkeypatch.delenv(name)


def providers(*names: str, **env: str):
    environ = {"ENRICHMENT_PROVIDERS": ",".join(names), **env}
    active, skipped = configured_providers("sandbox", environ=environ)
    assert not skipped
    return active


def builtwith_row(domain: str, expires_at: datetime, techs: tuple[str, ...] = ("Shopify",)):
    payload = {
        "Results": [{"Result": {"Paths": [{"Domain": domain, "Technologies": [{"Name": t} for t in techs]}]}}]
    }
    return response_row(
        domain, provider="builtwith", endpoint="domain_api", payload=payload, expires_at=expires_at
    )


def similarweb_rows(domain: str, expires_at: datetime, endpoints=SIMILARWEB_ENDPOINTS):
    return [
        response_row(domain, provider="similarweb", endpoint=e, payload={}, expires_at=expires_at)
        for e in endpoints
    ]


def only(*providers_in_order: str) -> Waterfall:
    """Every listed provider at level 0 (strategy all): no waterfall guesswork in the numbers."""
    return Waterfall.model_validate(
        {"groups": {"technologies": {"providers": list(providers_in_order), "strategy": "all"}}}
    )


# --------------------------------------------------------------------------- cache state


def test_cached_domains_cost_nothing(warehouse: Warehouse) -> None:
    warehouse.write_responses([builtwith_row("cached.com", FRESH), *similarweb_rows("cached.com", FRESH)])
    active = providers("builtwith", "similarweb")
    est = cost.estimate(warehouse, ["cached.com", "new.com"], NOW, "sandbox", providers=active)

    bw, sw = est.provider("builtwith"), est.provider("similarweb")
    assert (bw.calls_min, bw.calls_max, bw.cached_domains) == (1, 1, 1)
    assert (sw.calls_min, sw.calls_max, sw.cached_domains) == (6, 6, 1)  # six endpoints, one domain
    assert est.cost_max == pytest.approx(1 * 0.01 + 6 * 0.02)

    only_cached = cost.estimate(warehouse, ["cached.com"], NOW, "sandbox", providers=active)
    assert (only_cached.calls_max, only_cached.cost_max) == (0, 0.0)


def test_expired_and_partial_answers_are_paid_again(warehouse: Warehouse) -> None:
    warehouse.write_responses(
        [
            builtwith_row("a.com", EXPIRED),
            *similarweb_rows("a.com", FRESH, SIMILARWEB_ENDPOINTS[:4]),  # two endpoints never stored
            response_row("b.com", "error", provider="builtwith", endpoint="domain_api", expires_at=FRESH),
        ]
    )
    est = cost.estimate(
        warehouse, ["a.com", "b.com"], NOW, "sandbox", providers=providers("builtwith", "similarweb")
    )
    assert est.provider("builtwith").calls_max == 2  # expired answer, and an error is never a cache hit
    assert est.provider("similarweb").calls_max == 2 + 6


def test_other_mode_answers_are_not_a_cache(warehouse: Warehouse) -> None:
    warehouse.write_responses([builtwith_row("a.com", FRESH)])  # sandbox row
    active = providers("builtwith")
    assert cost.estimate(warehouse, ["a.com"], NOW, "sandbox", providers=active).calls_max == 0
    assert cost.estimate(warehouse, ["a.com"], NOW, "live", providers=active).calls_max == 1


def test_force_ignores_the_cache(warehouse: Warehouse) -> None:
    warehouse.write_responses([builtwith_row("a.com", FRESH)])
    est = cost.estimate(warehouse, ["a.com"], NOW, "sandbox", providers=providers("builtwith"), force=True)
    assert est.calls_max == 1 and est.forced


def test_no_warehouse_is_an_empty_cache() -> None:
    est = cost.estimate(None, ["a.com", "b.com"], NOW, "sandbox", providers=providers("builtwith"))
    assert est.provider("builtwith").calls_max == 2
    assert est.provider("builtwith").quota_used == 0


# --------------------------------------------------------------------------- batches and the waterfall


def test_batch_providers_pay_per_batch(warehouse: Warehouse) -> None:
    domains = [f"d{i}.com" for i in range(25)]
    apollo = providers("apollo")
    est = cost.estimate(warehouse, domains, NOW, "sandbox", providers=apollo, waterfall=only("apollo"))
    assert (est.calls_min, est.calls_max) == (3, 3)  # ceil(25 / 10), one endpoint
    assert est.cost_max == pytest.approx(3 * 0.05)

    explorium = providers("explorium", EXPLORIUM_BATCH_SIZE="20")
    est = cost.estimate(warehouse, domains, NOW, "sandbox", providers=explorium, waterfall=only("explorium"))
    # two batches: a match call each, then at most one call per enrichment endpoint
    assert (est.calls_min, est.calls_max) == (2, 6)


def test_lower_levels_are_an_upper_bound(warehouse: Warehouse) -> None:
    """Apollo second for technologies: 0 calls at least, one bulk call per 10 domains at most,
    and none for a domain whose cached BuiltWith answer already fills the group."""
    warehouse.write_responses([builtwith_row("known.com", FRESH)])
    active = providers("builtwith", "apollo")
    domains = ["known.com", *(f"d{i}.com" for i in range(12))]
    waterfall = Waterfall.model_validate({"groups": {"technologies": {"providers": ["builtwith", "apollo"]}}})
    est = cost.estimate(warehouse, domains, NOW, "sandbox", providers=active, waterfall=waterfall)

    bw, apollo = est.provider("builtwith"), est.provider("apollo")
    assert (bw.level, bw.calls_min, bw.calls_max) == (0, 12, 12)
    assert (apollo.level, apollo.calls_min, apollo.calls_max) == (1, 0, 2)  # 12 domains: ceil(12/10)
    assert apollo.domains_max == 12 and apollo.calls_min < apollo.calls_max  # a range, not a count
    assert est.cost_min == pytest.approx(12 * 0.01)
    assert est.cost_max == pytest.approx(12 * 0.01 + 2 * 0.05)


def test_yahoo_search_is_counted_at_its_worst(warehouse: Warehouse) -> None:
    yahoo = providers("yahoo")
    est = cost.estimate(warehouse, ["apple.com", "unlisted-shop.com"], NOW, "sandbox", providers=yahoo)
    p = est.provider("yahoo")
    # apple.com is in the ticker map: info + statement (the statement waits on a good info).
    # The other needs a search, then up to 3 candidates' info, then the statement.
    assert (p.calls_min, p.calls_max) == (1 + 1, 2 + (1 + 3 + 1))
    assert p.cost_max == 0.0  # Yahoo Finance is free; only a quota would limit it


# --------------------------------------------------------------------------- price and quota


def test_price_and_quota_come_from_the_environment(warehouse: Warehouse) -> None:
    warehouse.reserve_quota("builtwith", NOW.date(), 8, 10)
    active = providers("builtwith", BUILTWITH_COST_PER_CALL="0.5", BUILTWITH_DAILY_QUOTA="10")
    est = cost.estimate(warehouse, ["a.com", "b.com", "c.com"], NOW, "sandbox", providers=active)
    p = est.provider("builtwith")
    assert p.cost_max == pytest.approx(1.5)
    assert (p.daily_quota, p.quota_used, p.quota_left) == (10, 8, 2)
    assert not p.within_quota
    assert [q.provider for q in est.providers if not q.within_quota] == ["builtwith"]


def test_skipped_providers_are_listed_not_priced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRICHMENT_PROVIDERS", "builtwith,yahoo")
    est = cost.estimate(None, ["a.com"], NOW, "live")
    assert est.skipped == {"builtwith": "no BUILTWITH_API_KEY set"}
    assert [p.provider for p in est.providers] == ["yahoo"]


# --------------------------------------------------------------------------- budget


def test_budget_is_read_and_checked() -> None:
    est = cost.estimate(None, ["a.com", "b.com"], NOW, "sandbox", providers=providers("builtwith"))
    assert cost.max_cost_usd({}) is None
    cost.enforce_budget(est, {})  # no budget: anything goes
    cost.enforce_budget(est, {"ENRICHMENT_MAX_COST_USD": "0.02"})  # exactly the upper bound
    with pytest.raises(cost.BudgetExceeded, match=r"up to \$0\.02 .*ENRICHMENT_MAX_COST_USD=\$0\.01"):
        cost.enforce_budget(est, {"ENRICHMENT_MAX_COST_USD": "0.01"})
    for bad in ("ten", "-1", "nan"):
        with pytest.raises(SettingsError, match="ENRICHMENT_MAX_COST_USD"):
            cost.max_cost_usd({"ENRICHMENT_MAX_COST_USD": bad})


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("ENRICHMENT_PROVIDERS", "builtwith,similarweb")

    def no_calls(*args, **kwargs):
        raise AssertionError("a provider was called")

    monkeypatch.setattr("enrichment_pipeline.lib.http_policy.ProviderClient.fetch", no_calls)
    return tmp_path


def _registered(home: Path) -> list[str]:
    if not (home / "dagster").exists():
        return []
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        return list(instance.get_dynamic_partitions("domains"))


def test_dry_run_prints_the_estimate_and_changes_nothing(cli_home: Path, capsys) -> None:
    assert main(["enrich", "--dry-run", "acme.com", "https://www.Example.org/x", "not a domain"]) == 0
    out, err = capsys.readouterr()
    out = " ".join(out.split())
    assert "cost estimate: 2 domain(s)" in out
    assert "similarweb" in out and "12" in out and "0.26" in out  # 2 + 12 calls, $0.02 + $0.24
    assert "upper bound" in out
    assert "no partition registered" in out
    assert "not a domain" in err
    assert not (cli_home / "data").exists()  # no warehouse made
    assert _registered(cli_home) == []


def test_run_over_budget_is_refused(cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("ENRICHMENT_MAX_COST_USD", "0.05")
    assert main(["enrich", "acme.com", "example.org"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "refusing to run" in err and "ENRICHMENT_MAX_COST_USD" in err and "0.26" in err
    assert _registered(cli_home) == []
    assert not (cli_home / "data").exists()


def test_bad_budget_is_a_usage_error(cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("ENRICHMENT_MAX_COST_USD", "lots")
    assert main(["enrich", "acme.com"]) == 2
    assert "ENRICHMENT_MAX_COST_USD must be" in capsys.readouterr().err
