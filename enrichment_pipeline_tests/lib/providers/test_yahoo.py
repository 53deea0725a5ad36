"""Yahoo Finance provider: ticker resolution, bounded retries on throttling, pacing, units.

A scripted `FinanceSource` stands in for yfinance (no network, ever); it records
every call and when it ran, so the tests can count calls and measure spacing.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.http_policy import ProviderClient
from enrichment_pipeline.lib.providers.base import CallResult, ProviderRequest
from enrichment_pipeline.lib.providers.yahoo import (
    DEFAULT_TICKERS_PATH,
    ENDPOINTS,
    FX_TO_USD,
    NOT_PUBLIC,
    TTM,
    FinanceSource,
    Yahoo,
    YFinanceSource,
    confirms,
    financial_fields,
    fx_rate,
    is_transient,
    load_tickers,
    to_usd,
)
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow


def settings(**overrides: Any) -> ProviderSettings:
    base = {
        "name": "yahoo",
        "base_url": Yahoo.default_base_url,
        "api_key": "k",
        "rps": None,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "max_attempts": 3,
        "breaker_failures": 1000,
    }
    return ProviderSettings(**{**base, **overrides})


def info_for(symbol: str, website: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "regularMarketPrice": 101.5,
        "website": website,
        "longName": f"{symbol} Corporation",
        "sector": "Technology",
        "industry": "Software - Application",
        "country": "United States",
        "fullTimeEmployees": 1200,
        "currency": "USD",
        "financialCurrency": "USD",
        "totalRevenue": 4.0e8,
        "revenueGrowth": 0.12,
        "grossMargins": 0.7,
        "operatingMargins": 0.15,
        "marketCap": 3.0e9,
        **extra,
    }


STATEMENT = {
    "2025-12-31": {"Total Revenue": 3.8e8, "Gross Profit": 2.6e8},
    "2024-12-31": {"Total Revenue": 3.3e8},
    "2023-12-31": {"Total Revenue": 2.9e8},
}


@dataclass
class Always:
    """A fault served on every call, not just once."""

    step: Any


class FakeSource(FinanceSource):
    """Answers from dicts; `faults[(method, arg)]` is served first (exceptions raised, values returned)."""

    def __init__(
        self,
        *,
        quotes: dict[str, list[dict[str, Any]]] | None = None,
        infos: dict[str, dict[str, Any]] | None = None,
        statements: dict[str, dict[str, dict[str, float]]] | None = None,
        faults: dict[tuple[str, str], list[Any]] | None = None,
    ) -> None:
        self.quotes = quotes or {}
        self.infos = infos or {}
        self.statements = statements or {}
        self.faults = faults or {}
        self.calls: list[tuple[str, str]] = []
        self.times: list[float] = []

    def _serve(self, method: str, arg: str, answer: Callable[[], Any]) -> Any:
        self.calls.append((method, arg))
        self.times.append(time.monotonic())
        queue = self.faults.get((method, arg))
        if queue:
            step = queue[0]
            if isinstance(step, Always):
                step = step.step
            else:
                queue.pop(0)
            if isinstance(step, BaseException):
                raise step
            return step
        return answer()

    def search(self, query: str) -> list[dict[str, Any]]:
        return self._serve("search", query, lambda: self.quotes.get(query, []))

    def info(self, ticker: str) -> dict[str, Any]:
        return self._serve("info", ticker, lambda: self.infos.get(ticker, {}))

    def income_statement(self, ticker: str) -> dict[str, dict[str, float]]:
        return self._serve("income_statement", ticker, lambda: self.statements.get(ticker, STATEMENT))

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


@pytest.fixture
def tickers(tmp_path: Path) -> Path:
    path = tmp_path / "tickers.csv"
    path.write_text(
        "domain,ticker\n# a comment\nacme.com,ACME\nwww.Globex.co.uk,GLBX.L\n\n", encoding="utf-8"
    )
    return path


def quote(symbol: str, kind: str = "EQUITY") -> dict[str, Any]:
    return {"symbol": symbol, "shortname": symbol, "quoteType": kind, "exchange": "NMS"}


async def fetch_one(
    provider: Yahoo,
    domain: str,
    missing: Callable[[str, str], bool] = lambda endpoint, domain: True,
    **overrides: Any,
) -> tuple[dict[str, CallResult], ProviderClient]:
    async with ProviderClient(provider, settings(**overrides)) as client:
        fetched = await provider.fetch_domains(client, [domain], missing)
    return dict(fetched[domain]), client


# --------------------------------------------------------------------------- ticker resolution


async def test_mapped_ticker_needs_no_search(tickers: Path) -> None:
    source = FakeSource(infos={"ACME": info_for("ACME", "https://www.acme.com")})

    rows, _ = await fetch_one(Yahoo(source=source, tickers_path=tickers), "acme.com")

    assert rows["ticker"].status == "ok"
    assert rows["ticker"].payload == {"ticker": "ACME", "source": "map"}
    assert rows["ticker"].attempts == 0
    assert rows["info"].status == "ok" and rows["info"].payload["symbol"] == "ACME"
    assert rows["financials"].status == "ok" and rows["financials"].payload == STATEMENT
    assert source.calls == [("info", "ACME"), ("income_statement", "ACME")]


async def test_search_candidate_confirmed_by_its_website(tickers: Path) -> None:
    source = FakeSource(
        quotes={"initech": [quote("INIT-ETF", "ETF"), quote("INTC"), quote("INIT")]},
        infos={
            "INTC": info_for("INTC", "https://www.intel.com"),
            "INIT": info_for("INIT", "http://investors.initech.com/about"),
        },
    )

    rows, _ = await fetch_one(Yahoo(source=source, tickers_path=tickers), "initech.com")

    assert rows["ticker"].status == "ok"
    assert rows["ticker"].payload == {"ticker": "INIT", "source": "search"}
    assert rows["ticker"].attempts == 2  # the search and the rejected INTC check
    # The confirming info answer is stored as the info row, not asked for twice.
    assert rows["info"].payload["symbol"] == "INIT" and rows["info"].attempts == 1
    assert source.calls == [
        ("search", "initech"),
        ("info", "INTC"),
        ("info", "INIT"),
        ("income_statement", "INIT"),
    ]


async def test_rejected_candidate_means_not_public_for_all_endpoints(tickers: Path) -> None:
    source = FakeSource(
        quotes={"delta": [quote("DAL")]}, infos={"DAL": info_for("DAL", "https://www.delta.com")}
    )

    rows, _ = await fetch_one(Yahoo(source=source, tickers_path=tickers), "delta.io")

    for endpoint in ENDPOINTS:
        assert rows[endpoint].status == "not_found"
        assert rows[endpoint].payload == NOT_PUBLIC == {"not_public": True}
    assert "DAL" in (rows["ticker"].detail or "")
    assert source.count("income_statement") == 0


async def test_no_search_results_means_not_public(tickers: Path) -> None:
    source = FakeSource()

    rows, _ = await fetch_one(Yahoo(source=source, tickers_path=tickers), "tiny-bakery.example")

    assert {e: r.status for e, r in rows.items()} == dict.fromkeys(ENDPOINTS, "not_found")
    assert source.calls == [("search", "tiny-bakery")]


async def test_candidate_that_cannot_be_checked_is_an_error_not_a_verdict(tickers: Path) -> None:
    from yfinance.exceptions import YFRateLimitError

    source = FakeSource(
        quotes={"initech": [quote("INIT")]}, faults={("info", "INIT"): [Always(YFRateLimitError())]}
    )

    rows, _ = await fetch_one(Yahoo(source=source, tickers_path=tickers), "initech.com", max_attempts=2)

    assert rows["ticker"].status == "error"  # never cached as "not public" for 30 days
    assert rows["info"].status == "error" and rows["info"].attempts == 0
    assert rows["ticker"].attempts == 1 + 2


async def test_only_missing_endpoints_are_fetched(tickers: Path) -> None:
    source = FakeSource(infos={"ACME": info_for("ACME", "acme.com")})
    cached = {("ticker", "acme.com"), ("financials", "acme.com")}

    rows, _ = await fetch_one(
        Yahoo(source=source, tickers_path=tickers), "acme.com", lambda e, d: (e, d) not in cached
    )

    assert set(rows) == {"info"}
    assert source.calls == [("info", "ACME")]


# --------------------------------------------------------------------------- throttling


def _rate_limit() -> BaseException:
    from yfinance.exceptions import YFRateLimitError

    return YFRateLimitError()


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(_rate_limit, id="YFRateLimitError"),
        pytest.param(lambda: {"maxAge": 86400, "trailingPegRatio": None}, id="stub-info"),
        pytest.param(lambda: Exception("401 Client Error: Invalid Crumb"), id="invalid-crumb"),
        pytest.param(lambda: RuntimeError("HTTP Error 429: Too Many Requests"), id="http-429"),
    ],
)
async def test_transient_failures_are_retried_with_backoff(tickers: Path, fault: Callable[[], Any]) -> None:
    source = FakeSource(
        infos={"ACME": info_for("ACME", "acme.com")}, faults={("info", "ACME"): [fault(), fault()]}
    )

    rows, client = await fetch_one(Yahoo(source=source, tickers_path=tickers), "acme.com", max_attempts=3)

    assert rows["info"].status == "ok" and rows["info"].attempts == 3
    assert source.count("info") == 3
    assert client.stats.retries == 2
    assert rows["financials"].status == "ok"


@pytest.mark.parametrize("answer", [{}, {"trailingPegRatio": None}], ids=["empty", "peg-only"])
async def test_unknown_symbol_info_is_not_found_at_once(tickers: Path, answer: dict[str, Any]) -> None:
    # What yfinance really returns for a symbol Yahoo does not know (yfinance issue #1905).
    source = FakeSource(faults={("info", "ACME"): [Always(answer)]})

    rows, client = await fetch_one(Yahoo(source=source, tickers_path=tickers), "acme.com", max_attempts=4)

    assert rows["info"].status == "not_found" and rows["info"].attempts == 1
    assert source.count("info") == 1 and client.stats.retries == 0
    assert rows["financials"].status == "not_found" and source.count("income_statement") == 0


@pytest.mark.parametrize(
    ("website", "domain", "expected"),
    [
        ("https://investor.atmeta.com", "meta.com", True),
        ("https://www.meta.com", "meta.com", True),
        ("https://investors.example.co.uk/overview", "example.co.uk", True),
        ("https://www.delta.com", "delta.io", False),
        ("https://investor.atmeta.com", "atlassian.com", False),
        (None, "meta.com", False),
    ],
)
def test_website_confirmation_by_registrable_domain(website: Any, domain: str, expected: bool) -> None:
    assert confirms({"website": website}, domain) is expected


async def test_retries_are_bounded_by_max_attempts(tickers: Path) -> None:
    source = FakeSource(faults={("info", "ACME"): [Always(_rate_limit())]})

    rows, client = await fetch_one(Yahoo(source=source, tickers_path=tickers), "acme.com", max_attempts=4)

    assert rows["info"].status in ("error", "rate_limited")
    assert rows["info"].attempts == 4 and "4 attempt" in (rows["info"].detail or "")
    assert source.count("info") == 4  # never more than max_attempts
    # No second storm against the same wall: the statement is not asked for.
    assert rows["financials"].status == rows["info"].status and rows["financials"].attempts == 0
    assert source.count("income_statement") == 0
    assert client.stats.calls == 4


async def test_other_failures_are_not_retried(tickers: Path) -> None:
    class YFTickerMissingError(Exception):  # same name as yfinance's: classified by name, no import
        pass

    source = FakeSource(
        faults={
            ("info", "ACME"): [Always(YFTickerMissingError("$ACME: possibly delisted; no timezone found"))]
        }
    )
    rows, _ = await fetch_one(Yahoo(source=source, tickers_path=tickers), "acme.com")
    assert rows["info"].status == "not_found" and rows["info"].attempts == 1

    broken = FakeSource(faults={("income_statement", "ACME"): [Always(KeyError("Total Revenue"))]})
    broken.infos["ACME"] = info_for("ACME", "acme.com")
    rows, _ = await fetch_one(Yahoo(source=broken, tickers_path=tickers), "acme.com")
    assert rows["financials"].status == "error" and rows["financials"].attempts == 1


def test_is_transient_recognises_throttling_only() -> None:
    assert is_transient(_rate_limit())
    assert is_transient(TimeoutError("read timed out"))
    assert is_transient(ValueError("Invalid Crumb"))
    assert not is_transient(KeyError("regularMarketPrice"))
    assert not is_transient(ValueError("No data found, symbol may be delisted"))


async def test_calls_are_paced_by_the_policy_rate_limit(tickers: Path) -> None:
    rps = 20.0
    csv_text = "domain,ticker\n" + "".join(f"co{i}.com,CO{i}\n" for i in range(5))
    tickers.write_text(csv_text, encoding="utf-8")
    source = FakeSource(infos={f"CO{i}": info_for(f"CO{i}", f"co{i}.com") for i in range(5)})
    written: list[ResponseRow] = []

    await fetch_domains(
        [(Yahoo(source=source, tickers_path=tickers), settings(rps=rps, concurrency=8))],
        FetchPlan(domains=[f"co{i}.com" for i in range(5)]),
        write=written.extend,
        mode="sandbox",
    )

    assert len(source.times) == 10 and len(written) == 15
    # Times are taken inside the worker thread, which may start a little late on a
    # busy machine; the median gap and the whole span are immune to that jitter.
    gaps = [b - a for a, b in zip(source.times, source.times[1:], strict=False)]
    assert statistics.median(gaps) >= 0.9 / rps
    assert source.times[-1] - source.times[0] >= 9 * 0.85 / rps


# --------------------------------------------------------------------------- units


def test_money_is_converted_from_the_reported_currencies() -> None:
    info = info_for(
        "ULVR.L",
        "unilever.com",
        currency="GBp",
        financialCurrency="EUR",
        totalRevenue=6.0e10,
        marketCap=1.2e13,  # pence
        country="United Kingdom",
    )
    fields = financial_fields({"ticker": "ULVR.L", "source": "map"}, info, None)
    assert fields["revenue_usd"] == pytest.approx(6.0e10 * FX_TO_USD["EUR"])
    assert fields["market_cap_usd"] == pytest.approx(1.2e11 * FX_TO_USD["GBP"])
    assert fields["country"] == "GB"
    assert fx_rate("GBp") == pytest.approx(FX_TO_USD["GBP"] / 100)
    assert fx_rate("jpy") == FX_TO_USD["JPY"]


def test_unknown_currency_leaves_money_fields_out() -> None:
    info = info_for("PETR4.SA", "petrobras.com.br", currency="BRL", financialCurrency="BRL")
    fields = financial_fields({"ticker": "PETR4.SA"}, info, STATEMENT)
    assert "revenue_usd" not in fields and "market_cap_usd" not in fields
    assert fields["gross_margin"] == 0.7 and fields["ticker"] == "PETR4.SA"
    assert to_usd(1.0, None) is None and to_usd(None, "USD") is None


def test_fields_margins_and_revenue_fallbacks() -> None:
    info = info_for("ACME", "acme.com", totalRevenue=None, grossMargins=65.0, operatingMargins=-0.2)
    fields = financial_fields(
        {"ticker": "ACME", "source": "map"}, info, {**STATEMENT, TTM: {"Total Revenue": 4.1e8}}
    )
    assert fields["revenue_usd"] == 4.1e8  # TTM from the statement
    assert "gross_margin" not in fields  # 65.0 is a percentage slipped in, not a 0-1 ratio
    assert fields["operating_margin"] == -0.2
    assert financial_fields({"ticker": "ACME"}, info, STATEMENT)["revenue_usd"] == 3.8e8  # latest fiscal year
    full = financial_fields({"ticker": "ACME"}, info_for("ACME", "acme.com"), STATEMENT)
    assert full == {
        "ticker": "ACME",
        "is_public": True,
        "company_name": "ACME Corporation",
        "industry_naics": "51",
        "industry_label": "Information",
        "employees": 1200,
        "employees_range": "1001-5000",
        "country": "US",
        "revenue_usd": 4.0e8,
        "revenue_growth": 0.12,
        "gross_margin": 0.7,
        "operating_margin": 0.15,
        "market_cap_usd": 3.0e9,
    }
    for key in ("gross_margin", "operating_margin"):
        assert 0.0 <= full[key] <= 1.0
    assert financial_fields(None, None, None) == {}


def test_extract_reads_the_stored_endpoints(tickers: Path) -> None:
    provider = Yahoo(source=FakeSource(), tickers_path=tickers)
    payloads = {"ticker": {"ticker": "ACME", "source": "map"}, "info": info_for("ACME", "acme.com")}
    assert provider.extract("acme.com", payloads)["market_cap_usd"] == 3.0e9
    assert provider.extract("acme.com", {}) == {}


# --------------------------------------------------------------------------- map, protocol, library


def test_load_tickers_normalizes_and_fails_loudly(tickers: Path, tmp_path: Path) -> None:
    assert load_tickers(tickers) == {"acme.com": "ACME", "globex.co.uk": "GLBX.L"}
    bad = tmp_path / "bad.csv"
    bad.write_text("domain,ticker\nacme.com,ACME\nnot a domain,XX\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        load_tickers(bad)
    bad.write_text("acme.com,ACME\nwww.acme.com,ACM2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapped twice"):
        load_tickers(bad)


def test_bundled_map_covers_varied_markets() -> None:
    mapping = load_tickers(DEFAULT_TICKERS_PATH)
    assert len(mapping) >= 40
    assert mapping["apple.com"] == "AAPL" and mapping["zalando.de"] == "ZAL.DE" and mapping["3m.com"] == "MMM"
    suffixes = {t.rsplit(".", 1)[1] for t in mapping.values() if "." in t}
    assert {"DE", "L", "T", "SW"} <= suffixes


def test_protocol_basics(tickers: Path) -> None:
    provider = Yahoo(source=FakeSource(), tickers_path=tickers)
    assert (provider.default_rps, provider.default_cost_per_call) == (1.0, 0.0)
    assert (provider.ttl, provider.not_found_ttl) == (timedelta(days=1), timedelta(days=30))
    assert provider.endpoints("x.example") == ["ticker", "info", "financials"]
    assert provider.auth("k").params == {} and provider.auth("k").headers == {}
    assert [r.path for r in provider.requests_for("acme.com")] == [
        "yfinance:info",
        "yfinance:income_statement",
    ]
    assert [r.path for r in provider.requests_for("other.example")] == ["yfinance:search"]
    assert all(r.call is not None and r.method == "CALL" for r in provider.requests_for("acme.com"))
    search = ProviderRequest("ticker", "CALL", "yfinance:search")
    assert provider.interpret(search, 200, {"quotes": []}).status == "parse_error"  # type: ignore[union-attr]
    assert provider.interpret(search, 200, []).status == "ok"  # type: ignore[union-attr]


def test_importing_the_provider_does_not_import_yfinance() -> None:
    code = (
        "import sys\n"
        "import enrichment_pipeline.lib.providers.yahoo as y\n"
        "y.Yahoo(); y.YFinanceSource()\n"
        "assert 'yfinance' not in sys.modules, 'yfinance imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_yfinance_source_converts_the_library_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    annual = pd.DataFrame(
        {pd.Timestamp("2025-12-31"): [100.0, 40.0], pd.Timestamp("2024-12-31"): [90.0, float("nan")]},
        index=["Total Revenue", "Gross Profit"],
    )
    quarters = pd.DataFrame(
        {pd.Timestamp(f"2025-{m:02d}-28"): [float(m), 1.0] for m in (2, 5, 8, 11)}
        | {pd.Timestamp("2024-11-30"): [999.0, 1.0]},
        index=["Total Revenue", "Gross Profit"],
    )
    seen: dict[str, Any] = {}

    class Search:
        def __init__(self, query: str, **kwargs: Any) -> None:
            seen["search"] = (query, kwargs)
            self.quotes = [{"symbol": "ACME", "quoteType": "EQUITY"}]

    class Ticker:
        def __init__(self, symbol: str) -> None:
            self.info = {"symbol": symbol, "regularMarketPrice": 1.0}
            self.income_stmt = annual
            self.quarterly_income_stmt = quarters

    monkeypatch.setitem(sys.modules, "yfinance", types.SimpleNamespace(Search=Search, Ticker=Ticker))
    source = YFinanceSource(max_results=5)

    assert source.search("acme") == [{"symbol": "ACME", "quoteType": "EQUITY"}]
    assert seen["search"][0] == "acme" and seen["search"][1]["max_results"] == 5
    assert source.info("ACME") == {"symbol": "ACME", "regularMarketPrice": 1.0}
    assert source.income_statement("ACME") == {
        "2025-12-31": {"Total Revenue": 100.0, "Gross Profit": 40.0},
        "2024-12-31": {"Total Revenue": 90.0},
        TTM: {"Gross Profit": 4.0, "Total Revenue": 2.0 + 5.0 + 8.0 + 11.0},
    }


# --------------------------------------------------------------------------- cost estimate


def test_call_range_is_free_for_a_mapped_ticker_and_worst_case_for_a_search(tickers: Path) -> None:
    yahoo = Yahoo(source=FakeSource(), tickers_path=tickers, max_candidates=2)
    # Mapped: the ticker costs nothing; the statement waits on a good info, so one call at least.
    assert yahoo.call_range("acme.com", ["ticker", "info", "financials"]) == (1, 2)
    assert yahoo.call_range("acme.com", ["ticker"]) == (0, 0)
    # Searched: the search, up to two candidates' info, then the statement.
    assert yahoo.call_range("initech.com", ["financials"]) == (1, 1 + 2 + 1)
