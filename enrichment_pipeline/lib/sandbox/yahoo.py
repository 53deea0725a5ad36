"""Deterministic Yahoo Finance simulator: a fake `FinanceSource` for sandbox runs and tests.

Public companies are the ones in ``config/tickers.csv`` plus a few that only
search finds (`SEARCH_ONLY`); every other domain is private. Search behaves like
Yahoo's fuzzy search: a query finds listed companies whose name or symbol starts
with it, and about 1 in 12 private domains gets a *lookalike* candidate (a
listed company whose website is another domain), so the provider's website
confirmation is exercised and must reject it.

Numbers are drawn from generators seeded with SHA-256 (never Python's salted
`hash()`), so every run agrees. Revenue grows with the domain's size shared
with the other simulators (`shared.size_quantile`) on a
large-company scale (~$0.5B to ~$400B). Amounts are in the listing's currencies,
as at Yahoo: statements and ``totalRevenue`` in ``financialCurrency``,
``marketCap`` in the trading ``currency`` (``GBp`` pence in London, ``JPY`` in
Tokyo...), converted from USD with the provider's own `FX_TO_USD`, so the
provider's conversion gives back the simulated USD values.

No throttling is simulated (the sandbox is faithful, not hostile); tests that
need 429s or empty answers wrap this source.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from enrichment_pipeline.lib.providers.yahoo import (
    DEFAULT_TICKERS_PATH,
    FX_TO_USD,
    TTM,
    FinanceSource,
    fx_rate,
    load_tickers,
)
from enrichment_pipeline.lib.sandbox.samples import sample_domains, sample_fact
from enrichment_pipeline.lib.sandbox.shared import bundled_rows, seeded, size_quantile

LOOKALIKE_ONE_IN = 12
FISCAL_YEARS = 3

# Listed companies found only through search (not in tickers.csv): domain -> symbol.
SEARCH_ONLY: dict[str, str] = {
    "zoom.com": "ZM",
    "dropbox.com": "DBX",
    "etsy.com": "ETSY",
    "twilio.com": "TWLO",
    "okta.com": "OKTA",
}

# symbol -> (long name, sector, industry). Unlisted symbols fall back to a generic profile.
PROFILES: dict[str, tuple[str, str, str]] = {
    row["symbol"]: (row["name"], row["sector"], row["industry"]) for row in bundled_rows("yahoo_profiles.csv")
}

# Listing suffix -> (trading currency, statement currency, country, exchange)
_SUFFIX_MARKET: dict[str, tuple[str, str, str, str]] = {
    ".DE": ("EUR", "EUR", "Germany", "GER"),
    ".L": ("GBp", "GBP", "United Kingdom", "LSE"),
    ".T": ("JPY", "JPY", "Japan", "JPX"),
    ".SW": ("CHF", "CHF", "Switzerland", "EBS"),
    ".ST": ("SEK", "SEK", "Sweden", "STO"),
    ".CO": ("DKK", "DKK", "Denmark", "CPH"),
    ".TO": ("CAD", "CAD", "Canada", "TOR"),
    ".AS": ("EUR", "EUR", "Netherlands", "AMS"),
    ".PA": ("EUR", "EUR", "France", "PAR"),
}
# US listings of foreign companies: (statement currency, country)
_FOREIGN_ON_US: dict[str, tuple[str, str]] = {
    "SAP": ("EUR", "Germany"),
    "ASML": ("EUR", "Netherlands"),
    "SPOT": ("EUR", "Luxembourg"),
    "ERIC": ("SEK", "Sweden"),
    "SHOP": ("USD", "Canada"),
    "TEAM": ("USD", "Australia"),
}


@dataclass(frozen=True)
class Listing:
    """A simulated listed company."""

    domain: str
    symbol: str
    name: str
    sector: str
    industry: str
    currency: str  # trading currency (marketCap, price)
    financial_currency: str  # statements and totalRevenue
    country: str
    exchange: str


class SandboxFinanceSource(FinanceSource):
    """A `FinanceSource` with deterministic answers for a fixed set of listed companies.

    `today` pins the fiscal calendar (the latest fiscal year is the last one
    ended before it) for reproducible statements.
    """

    def __init__(self, tickers_path: str | Path | None = None, today: date | None = None) -> None:
        mapping = load_tickers(tickers_path or DEFAULT_TICKERS_PATH)
        self.today = today or date(2026, 11, 1)
        self.listings: dict[str, Listing] = {}
        # Listed sample companies (sandbox/sample_companies.csv) are found through search.
        samples = {d: f.ticker for d in sample_domains() if (f := sample_fact(d)) and f.ticker}
        for domain, symbol in {**samples, **mapping, **SEARCH_ONLY}.items():
            self.listings[symbol] = _listing(domain, symbol)
        self.by_domain = {listing.domain: listing for listing in self.listings.values()}
        # Calls per method (bounded, unlike a log): methods run in the policy's worker threads.
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1

    # ------------------------------------------------------------------ FinanceSource

    def search(self, query: str) -> list[dict[str, Any]]:
        """Quotes whose name or symbol starts with the query, else maybe one lookalike."""
        self._count("search")
        needle = query.strip().lower()
        if not needle:
            return []
        hits = [
            listing
            for listing in self.listings.values()
            if listing.name.lower().startswith(needle)
            or listing.symbol.lower().split(".")[0] == needle
            or listing.domain.split(".")[0] == needle
        ]
        if not hits and seeded("yahoo-lookalike", needle).randrange(LOOKALIKE_ONE_IN) == 0:
            symbols = sorted(self.listings)
            hits = [self.listings[seeded("yahoo-lookalike-pick", needle).choice(symbols)]]
        return [_quote(listing) for listing in sorted(hits, key=lambda item: item.symbol)[:5]]

    def info(self, ticker: str) -> dict[str, Any]:
        """Yahoo's quote summary; an unknown symbol gets what yfinance gives: a near-empty dict."""
        self._count("info")
        listing = self.listings.get(ticker)
        if listing is None:
            return {"trailingPegRatio": None}
        return _info(listing, self.today)

    def income_statement(self, ticker: str) -> dict[str, dict[str, float]]:
        """Three fiscal years plus TTM, in the statement currency."""
        self._count("income_statement")
        listing = self.listings.get(ticker)
        if listing is None:
            return {}
        return _statement(listing, self.today)


# --------------------------------------------------------------------------- the world


# sample vertical -> (Yahoo sector, industry) for listed sample companies without a profile above
_VERTICAL_PROFILES: dict[str, tuple[str, str]] = {
    "Retail": ("Consumer Cyclical", "Internet Retail"),
    "Technology": ("Technology", "Software - Application"),
    "Business And Industrial": ("Industrials", "Specialty Industrial Machinery"),
    "Finance": ("Financial Services", "Banks - Diversified"),
    "Health": ("Healthcare", "Drug Manufacturers - General"),
    "Media": ("Communication Services", "Entertainment"),
    "Transportation": ("Industrials", "Integrated Freight & Logistics"),
    "Travel": ("Consumer Cyclical", "Travel Services"),
    "Education": ("Consumer Defensive", "Education & Training Services"),
}


def _listing(domain: str, symbol: str) -> Listing:
    rng = seeded("yahoo-profile", symbol)
    sample = sample_fact(domain)
    default = (f"{domain.split('.')[0].capitalize()} Holdings Inc.", "Technology", "Software - Application")
    if sample is not None:
        default = (sample.name, *_VERTICAL_PROFILES.get(sample.vertical, default[1:]))
    name, sector, industry = PROFILES.get(symbol, default)
    currency, financial, country, exchange = "USD", "USD", "United States", rng.choice(("NMS", "NYQ"))
    for suffix, market in _SUFFIX_MARKET.items():
        if symbol.endswith(suffix):
            currency, financial, country, exchange = market
            break
    if symbol in _FOREIGN_ON_US:
        financial, country = _FOREIGN_ON_US[symbol]
    return Listing(domain, symbol, name, sector, industry, currency, financial, country, exchange)


def revenue_usd(domain: str) -> float:
    """Simulated TTM revenue in USD: ~$0.5B for the smallest listed firm to ~$400B."""
    return 10 ** (8.7 + 2.9 * size_quantile(domain)) * seeded("yahoo-revenue", domain).uniform(0.8, 1.25)


def _quote(listing: Listing) -> dict[str, Any]:
    return {
        "exchange": listing.exchange,
        "shortname": listing.name[:32],
        "quoteType": "EQUITY",
        "symbol": listing.symbol,
        "index": "quotes",
        "score": 20000.0 + seeded("yahoo-score", listing.symbol).randrange(100000),
        "typeDisp": "Equity",
        "longname": listing.name,
        "exchDisp": listing.exchange,
        "sector": listing.sector,
        "industry": listing.industry,
        "isYahooFinance": True,
    }


def _in(currency: str, usd: float) -> float:
    """A USD amount in `currency` (rounded to whole units), via the provider's own table."""
    rate = fx_rate(currency) or FX_TO_USD["USD"]
    return float(round(usd / rate))


def _fundamentals(listing: Listing) -> dict[str, float]:
    rng = seeded("yahoo-fundamentals", listing.symbol)
    revenue = revenue_usd(listing.domain)
    gross = rng.uniform(0.25, 0.82)
    operating = min(gross - 0.05, rng.uniform(-0.05, 0.4))
    growth = rng.uniform(-0.06, 0.28)
    employees = max(500, round(revenue / rng.uniform(250e3, 900e3)))
    market_cap = revenue * rng.uniform(1.0, 12.0)
    return {
        "revenue": revenue,
        "gross": gross,
        "operating": operating,
        "growth": growth,
        "employees": employees,
        "market_cap": market_cap,
    }


def _info(listing: Listing, today: date) -> dict[str, Any]:
    f = _fundamentals(listing)
    price = round(seeded("yahoo-price", listing.symbol).uniform(20, 600), 2)
    return {
        "address1": "1 Main Street",
        "country": listing.country,
        "website": f"https://www.{listing.domain}",
        "industry": listing.industry,
        "industryKey": listing.industry.lower().replace(" - ", "-").replace(" ", "-"),
        "sector": listing.sector,
        "sectorKey": listing.sector.lower().replace(" ", "-"),
        "longBusinessSummary": f"{listing.name} operates in {listing.industry.lower()}.",
        "fullTimeEmployees": int(f["employees"]),
        "currency": listing.currency,
        "financialCurrency": listing.financial_currency,
        "exchange": listing.exchange,
        "quoteType": "EQUITY",
        "symbol": listing.symbol,
        "shortName": listing.name[:32],
        "longName": listing.name,
        "regularMarketPrice": price,
        "marketCap": _in(listing.currency, f["market_cap"]),
        "totalRevenue": _in(listing.financial_currency, f["revenue"]),
        "revenueGrowth": round(f["growth"], 4),
        "grossMargins": round(f["gross"], 4),
        "operatingMargins": round(f["operating"], 4),
        "ebitdaMargins": round(min(f["gross"], f["operating"] + 0.06), 4),
        "lastFiscalYearEnd": _fiscal_year_ends(listing, today)[0].isoformat(),
    }


def _fiscal_year_ends(listing: Listing, today: date) -> list[date]:
    """The last `FISCAL_YEARS` fiscal year ends before `today`, latest first."""
    month = seeded("yahoo-fiscal", listing.symbol).choice((3, 6, 9, 12, 12, 12))
    day = {3: 31, 6: 30, 9: 30, 12: 31}[month]
    year = today.year if date(today.year, month, day) < today else today.year - 1
    return [date(year - i, month, day) for i in range(FISCAL_YEARS)]


def _statement(listing: Listing, today: date) -> dict[str, dict[str, float]]:
    f = _fundamentals(listing)
    currency = listing.financial_currency
    out: dict[str, dict[str, float]] = {}
    ttm = f["revenue"]
    latest = ttm / (1 + f["growth"] / 2)  # the TTM runs about half a year past the last fiscal year
    for years_back, period_end in enumerate(_fiscal_year_ends(listing, today)):
        jitter = seeded("yahoo-statement", listing.symbol, period_end.isoformat())
        revenue = latest / (1 + f["growth"]) ** years_back
        gross = revenue * min(0.95, f["gross"] + jitter.uniform(-0.02, 0.02))
        operating = revenue * (f["operating"] + jitter.uniform(-0.02, 0.02))
        out[period_end.isoformat()] = _lines(currency, revenue, gross, operating)
    out[TTM] = _lines(currency, ttm, ttm * f["gross"], ttm * f["operating"])
    return out


def _lines(currency: str, revenue: float, gross: float, operating: float) -> dict[str, float]:
    """Income-statement line items in yfinance's pretty names."""
    net = operating * 0.78
    return {
        "Total Revenue": _in(currency, revenue),
        "Cost Of Revenue": _in(currency, revenue - gross),
        "Gross Profit": _in(currency, gross),
        "Operating Expense": _in(currency, gross - operating),
        "Operating Income": _in(currency, operating),
        "Net Income": _in(currency, net),
        "EBITDA": _in(currency, operating + 0.06 * revenue),
    }
