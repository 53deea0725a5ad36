"""Yahoo Finance through yfinance: is a domain's company listed, and its financials if so.

Yahoo has no official API, no key and no documented limit; yfinance scrapes it
and Yahoo throttles scrapers hard (HTTP 429, empty ``info``, "Invalid Crumb").
So every library call goes through the shared HTTP policy as a
`ProviderRequest.call`: one call at a time at ~1 per second, the daily quota,
bounded retries with backoff on `Transient`, the circuit breaker and the
accounting all apply, exactly as for HTTP providers.

Per domain (three stored answers):

* ``ticker`` - the domain's symbol, from the editable map ``config/tickers.csv``
  (no call), else from ``search(<domain stem>)`` *confirmed* by the candidate's
  ``info["website"]`` normalizing to the same domain. Yahoo's search is fuzzy
  (``delta.io`` finds Delta Air Lines), so an unconfirmed candidate is never
  used. No confirmed candidate: the company is ``not_public``, stored as
  ``not_found`` with payload ``{"not_public": true}`` for all three endpoints,
  so it is asked again only after `not_found_ttl` (30 days).
* ``info`` - ``Ticker.info`` (the quote summary: names, sector, head count, TTM
  revenue, margins, market cap, currencies).
* ``financials`` - the income statement, ``{fiscal period end (ISO date) or "TTM":
  {line item: value}}``.

Money: Yahoo reports ``totalRevenue`` and statements in ``financialCurrency`` and
``marketCap`` in the trading ``currency`` (``GBp`` = pence on the LSE). They are
converted to USD with the small, *approximate* table `FX_TO_USD` (fixed rates,
good to a few percent: enough for sizing and scoring, not for accounting). A
currency outside the table leaves the money fields out rather than mixing
currencies.

yfinance is imported only inside `YFinanceSource` methods: importing this module
never loads it, and the sandbox and tests plug in a fake `FinanceSource`.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from enrichment_pipeline.lib import units
from enrichment_pipeline.lib.config_files import read_config_text
from enrichment_pipeline.lib.domains import InvalidDomain, normalize_domain
from enrichment_pipeline.lib.json_values import array as _array
from enrichment_pipeline.lib.json_values import host as _host
from enrichment_pipeline.lib.json_values import mapping as _mapping
from enrichment_pipeline.lib.json_values import number as _number
from enrichment_pipeline.lib.json_values import text as _text
from enrichment_pipeline.lib.providers import base

TICKER = "ticker"
INFO = "info"
FINANCIALS = "financials"
ENDPOINTS: tuple[str, ...] = (TICKER, INFO, FINANCIALS)
TTM = "TTM"  # income-statement key of the trailing twelve months (sum of the last four quarters)
NOT_PUBLIC: dict[str, Any] = {"not_public": True}

DEFAULT_TICKERS_PATH = Path(__file__).resolve().parents[2] / "config" / "tickers.csv"
MAX_CANDIDATES = 3

# Approximate USD value of one unit (mid-2025 levels, rounded). Deliberately
# small and fixed: reproducible runs, no FX call; good to a few percent.
FX_TO_USD: dict[str, float] = {
    "USD": 1.0,
    "EUR": 1.08,
    "GBP": 1.27,
    "JPY": 0.0067,
    "CAD": 0.73,
    "SEK": 0.095,
    "CHF": 1.13,
    "DKK": 0.145,
}
_MINOR_UNITS: dict[str, tuple[str, float]] = {
    "GBp": ("GBP", 0.01),
    "GBX": ("GBP", 0.01),
    "GBx": ("GBP", 0.01),
}

# Failures worth a retry: Yahoo throttling, a stale cookie/crumb, Yahoo down, network blips.
_TRANSIENT_MESSAGE = re.compile(
    r"\b429\b|too many requests|rate.?limit|invalid crumb|\bcrumb\b|currently down|"
    r"timed? ?out|temporarily unavailable|connection (?:reset|aborted|error|refused)",
    re.IGNORECASE,
)
_TRANSIENT_TYPES = frozenset({"YFRateLimitError"})
_NOT_FOUND_TYPES = frozenset(
    {"YFTickerMissingError", "YFTzMissingError", "YFPricesMissingError", "UnknownSymbol"}
)
# Keys yfinance puts in ``info`` even for a symbol Yahoo does not know.
_EMPTY_INFO_KEYS = frozenset({"trailingPegRatio"})
# Investor-relations hosts: the company's site is often only named through them.
_IR_LABELS = frozenset({"investor", "investors", "ir", "corporate", "about", "www"})
# Registrable domain of a company's website as Yahoo lists it -> the domain the
# company is known by (Meta's investor site lives on atmeta.com). Extend freely.
WEBSITE_ALIASES: dict[str, str] = {
    "atmeta.com": "meta.com",
    "abc.xyz": "google.com",
    "aboutamazon.com": "amazon.com",
    "thewaltdisneycompany.com": "disney.com",
    "corporate.walmart.com": "walmart.com",
}


class UnknownSymbol(Exception):
    """Yahoo knows no such symbol: yfinance answers ``{"trailingPegRatio": None}`` or ``{}``."""


_NOT_FOUND_MESSAGE = re.compile(r"delisted|no data found|symbol not found|quote not found", re.IGNORECASE)


# --------------------------------------------------------------------------- the library


@runtime_checkable
class FinanceSource(Protocol):
    """What the provider needs from Yahoo Finance; JSON-friendly values only.

    Implementations may raise anything; throttling-like errors are turned into
    retries by the provider (see `is_transient`).
    """

    def search(self, query: str) -> list[dict[str, Any]]:
        """Search quotes (``symbol``, ``shortname``, ``longname``, ``quoteType``, ``exchange``...)."""
        ...

    def info(self, ticker: str) -> dict[str, Any]:
        """The quote summary of one symbol (``Ticker.info``)."""
        ...

    def income_statement(self, ticker: str) -> dict[str, dict[str, float]]:
        """Fiscal period end (ISO date) or ``"TTM"`` -> line item (``"Total Revenue"``...) -> value."""
        ...


class YFinanceSource:
    """`FinanceSource` backed by yfinance (imported on first use, never at module import)."""

    def __init__(self, max_results: int = 5, timeout_s: float = 20.0) -> None:
        self.max_results = max_results
        self.timeout_s = timeout_s

    def search(self, query: str) -> list[dict[str, Any]]:
        import yfinance as yf

        found = yf.Search(
            query, max_results=self.max_results, news_count=0, lists_count=0, timeout=self.timeout_s
        )
        return [dict(quote) for quote in found.quotes]

    def info(self, ticker: str) -> dict[str, Any]:
        import yfinance as yf

        return dict(yf.Ticker(ticker).info or {})

    def income_statement(self, ticker: str) -> dict[str, dict[str, float]]:
        """Annual statements plus a ``"TTM"`` entry summed from the last four quarters."""
        import yfinance as yf

        handle = yf.Ticker(ticker)
        periods = frame_periods(handle.income_stmt)
        trailing = trailing_twelve_months(frame_periods(handle.quarterly_income_stmt))
        if trailing:
            periods[TTM] = trailing
        return periods


def frame_periods(frame: Any) -> dict[str, dict[str, float]]:
    """A yfinance statement DataFrame (line items x period columns) as plain dicts.

    Duck-typed so pandas is never imported here; NaN cells are dropped.
    """
    if frame is None or getattr(frame, "empty", True):
        return {}
    out: dict[str, dict[str, float]] = {}
    for column in frame.columns:
        key = column.date().isoformat() if hasattr(column, "date") else str(column)
        values = {
            str(item): number
            for item, value in frame[column].items()
            if (number := _number(value)) is not None
        }
        if values:
            out[key] = values
    return out


def trailing_twelve_months(quarters: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Sum of the four latest quarters, for the line items all four report (flows, not balances)."""
    latest = sorted(quarters)[-4:]
    if len(latest) < 4:
        return {}
    items = set.intersection(*(set(quarters[q]) for q in latest))
    return {item: float(sum(quarters[q][item] for q in latest)) for item in sorted(items)}


# --------------------------------------------------------------------------- the map


def load_tickers(path: str | Path) -> dict[str, str]:
    """``domain,ticker`` rows -> {normalized domain: ticker}; ``#`` lines and blanks skipped.

    Bad rows fail loudly with their line number: a silently ignored typo would
    send that company through the (slower, fuzzier) search instead.
    """
    path = Path(path)
    mapping: dict[str, str] = {}
    # Regular file, size cap, UTF-8: a ConfigFileError naming the file otherwise.
    text = read_config_text(path, "ticker map")
    for line_no, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if [c.lower() for c in cells[:2]] == ["domain", "ticker"]:
            continue
        if len(cells) < 2 or not cells[1]:
            raise ValueError(f"{path}:{line_no}: expected 'domain,ticker', got {row!r}")
        try:
            domain = normalize_domain(cells[0])
        except InvalidDomain as exc:
            raise ValueError(f"{path}:{line_no}: {exc}") from None
        if mapping.get(domain, cells[1]) != cells[1]:
            raise ValueError(f"{path}:{line_no}: {domain} is mapped twice ({mapping[domain]}, {cells[1]})")
        mapping[domain] = cells[1]
    return mapping


# --------------------------------------------------------------------------- the provider


@dataclass(frozen=True)
class _Resolution:
    """How a domain's ticker was found: the ``ticker`` row, the symbol, and an info answer to reuse."""

    row: base.CallResult
    ticker: str | None
    info: base.CallResult | None = None


class Yahoo(base.Provider):
    """Yahoo Finance via a `FinanceSource` (yfinance by default), one domain at a time."""

    name: ClassVar[str] = "yahoo"
    # yfinance talks to Yahoo itself; the base URL is nominal (no HTTP goes through the pool).
    default_base_url: ClassVar[str] = "https://query2.finance.yahoo.com"
    default_rps: ClassVar[float] = 1.0  # undocumented limit; Yahoo throttles anything faster
    default_cost_per_call: ClassVar[float] = 0.0
    needs_key: ClassVar[bool] = False
    ttl: ClassVar[timedelta] = timedelta(days=1)  # prices and margins move daily
    not_found_ttl: ClassVar[timedelta] = timedelta(days=30)  # "not public" rarely changes

    def __init__(
        self,
        source: FinanceSource | None = None,
        tickers_path: str | Path | None = None,
        max_candidates: int = MAX_CANDIDATES,
    ) -> None:
        if max_candidates < 1:
            raise ValueError(f"Yahoo max_candidates must be >= 1, not {max_candidates}")
        self.source: FinanceSource = source if source is not None else YFinanceSource()
        self.tickers_path = Path(tickers_path) if tickers_path is not None else DEFAULT_TICKERS_PATH
        self.tickers = load_tickers(self.tickers_path)
        self.max_candidates = max_candidates

    # ------------------------------------------------------------------ protocol

    def requests_for(self, domain: str) -> list[base.ProviderRequest]:
        """The first calls for a domain: info and financials of a mapped ticker, else the search.

        The full flow (confirming search candidates) needs answers, so it lives in `fetch_domains`.
        """
        ticker = self.tickers.get(domain)
        if ticker is not None:
            return [self._info_request(ticker), self._financials_request(ticker)]
        return [self._search_request(domain)]

    def endpoints(self, domain: str) -> list[str]:
        return list(ENDPOINTS)

    def auth(self, api_key: str) -> base.Auth:
        """No key: Yahoo Finance is anonymous (yfinance handles its cookie and crumb)."""
        return base.Auth()

    def interpret(
        self, request: base.ProviderRequest, http_status: int, body: Any
    ) -> base.Interpretation | None:
        """Shape checks of a library answer (a search is a list, the others objects)."""
        expected: type = list if request.path == "yfinance:search" else dict
        if not isinstance(body, expected):
            kind = "list" if expected is list else "object"
            return base.Interpretation(
                "parse_error", payload=None, detail=f"{request.path} did not return a {kind}"
            )
        return base.Interpretation("ok", payload=body)

    def classify_exception(self, error: Exception) -> base.Status:
        """Unknown or delisted symbols are `not_found`; anything else non-transient is an `error`."""
        if _type_names(error) & _NOT_FOUND_TYPES or _NOT_FOUND_MESSAGE.search(str(error)):
            return "not_found"
        return "error"

    def call_range(self, domain: str, missing: Sequence[str]) -> tuple[int, int]:
        """The ticker comes from the map for free, else from a search whose candidates are each
        checked with an info call (the confirmed one's info is reused), then the statement."""
        if self.tickers.get(domain) is not None:
            paid = [e for e in missing if e != TICKER]
            return min(1, len(paid)), len(paid)
        return 1, 2 + self.max_candidates

    async def fetch_batch(self, job: base.FetchJob, domains: list[str]) -> base.Fetched:
        """Resolve each domain's ticker, then fetch info and financials, one paced call at a time."""
        return {domain: await self._fetch_domain(job, domain) for domain in domains}

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        return financial_fields(payloads.get(TICKER), payloads.get(INFO), payloads.get(FINANCIALS))

    # ------------------------------------------------------------------ flow

    async def _fetch_domain(self, job: base.FetchJob, domain: str) -> list[tuple[str, base.CallResult]]:
        wanted = job.wanted(domain, ENDPOINTS)
        resolved = await self._resolve(job.client, domain)
        rows: dict[str, base.CallResult] = {TICKER: resolved.row}
        if TICKER in wanted:
            job.tell(domain, TICKER, resolved.row)  # paid for: durable before info and financials
        if resolved.ticker is None:
            status, payload = resolved.row.status, resolved.row.payload
            detail = resolved.row.detail if status == "not_found" else f"not requested: {resolved.row.detail}"
            for endpoint in (INFO, FINANCIALS):
                rows[endpoint] = _no_call(status, payload if status == "not_found" else None, detail)
            return [(e, rows[e]) for e in wanted]

        if INFO in wanted:
            rows[INFO] = resolved.info or await job.client.fetch(self._info_request(resolved.ticker))
            job.tell(domain, INFO, rows[INFO])
        if FINANCIALS in wanted:
            info = rows.get(INFO)
            if info is not None and info.status != "ok":
                # Throttled or unknown on info: asking again for the statement would only
                # add another round of retries against the same wall.
                rows[FINANCIALS] = _no_call(info.status, None, f"not requested: info ended {info.status}")
            else:
                rows[FINANCIALS] = await job.client.fetch(self._financials_request(resolved.ticker))
        return [(e, rows[e]) for e in wanted]

    async def _resolve(self, client: base.Caller, domain: str) -> _Resolution:
        """The map first (free), else search candidates confirmed by their website."""
        mapped = self.tickers.get(domain)
        if mapped is not None:
            return _Resolution(_no_call("ok", {"ticker": mapped, "source": "map"}, None), mapped)

        search = await client.fetch(self._search_request(domain))
        if search.status != "ok":
            return _Resolution(search, None)
        spent: list[base.CallResult] = [search]
        rejected: list[str] = []
        failure: base.CallResult | None = None
        for symbol in candidates(search.payload)[: self.max_candidates]:
            check = await client.fetch(self._info_request(symbol))
            if check.status == "ok" and confirms(check.payload, domain):
                row = _combined("ok", {"ticker": symbol, "source": "search"}, None, spent)
                return _Resolution(row, symbol, info=check)
            spent.append(check)
            if check.status in base.ANSWERED:
                rejected.append(symbol)
            elif failure is None:
                failure = check
        if failure is not None:
            # A candidate could not be checked: unknown, not "not public" for 30 days.
            detail = f"could not confirm a search candidate ({failure.status}: {failure.detail})"
            return _Resolution(_combined(failure.status, None, detail, spent), None)
        reason = f"rejected {', '.join(rejected)} (website mismatch)" if rejected else "no search results"
        return _Resolution(_combined("not_found", dict(NOT_PUBLIC), f"not public: {reason}", spent), None)

    # ------------------------------------------------------------------ calls

    def _search_request(self, domain: str) -> base.ProviderRequest:
        query = search_query(domain)
        return base.ProviderRequest(
            TICKER, "CALL", "yfinance:search", {"q": query}, call=functools.partial(self._search, query)
        )

    def _info_request(self, ticker: str) -> base.ProviderRequest:
        return base.ProviderRequest(
            INFO, "CALL", "yfinance:info", {"ticker": ticker}, call=functools.partial(self._info, ticker)
        )

    def _financials_request(self, ticker: str) -> base.ProviderRequest:
        return base.ProviderRequest(
            FINANCIALS,
            "CALL",
            "yfinance:income_statement",
            {"ticker": ticker},
            call=functools.partial(self._income_statement, ticker),
        )

    def _search(self, query: str) -> Any:
        return _json_safe(_guarded(lambda: self.source.search(query)))

    def _info(self, ticker: str) -> Any:
        info = _guarded(lambda: self.source.info(ticker))
        if isinstance(info, Mapping) and not any(
            v is not None for k, v in info.items() if k not in _EMPTY_INFO_KEYS
        ):
            # What yfinance returns for a symbol Yahoo does not know: {} or only
            # {"trailingPegRatio": None}. Asking again returns the same: not_found (cached).
            raise UnknownSymbol(f"Yahoo knows no symbol {ticker} (empty info)")
        if isinstance(info, Mapping) and not (
            info.get("symbol") or info.get("regularMarketPrice") is not None
        ):
            # A stub with some fields but no symbol or price: throttled or a stale crumb.
            raise base.Transient(f"incomplete info for {ticker} (throttled or stale crumb)")
        return _json_safe(info)

    def _income_statement(self, ticker: str) -> Any:
        return _json_safe(_guarded(lambda: self.source.income_statement(ticker)))


# --------------------------------------------------------------------------- helpers


def search_query(domain: str) -> str:
    """What to search for: the domain's first label (``zalando.de`` -> ``zalando``)."""
    return domain.split(".", 1)[0]


def candidates(quotes: Any) -> list[str]:
    """Equity symbols from search quotes, in Yahoo's order, each once."""
    symbols: list[str] = []
    for quote in _array(quotes):
        if not isinstance(quote, Mapping):
            continue
        symbol = _text(quote.get("symbol"))
        kind = str(quote.get("quoteType") or "EQUITY").upper()
        if symbol and kind == "EQUITY" and symbol not in symbols:
            symbols.append(symbol)
    return symbols


def website_domain(info: Any) -> str | None:
    """The registrable domain of ``info["website"]``, or None when absent or not a domain."""
    website = _text(_mapping(info).get("website"))
    if website is None:
        return None
    try:
        return normalize_domain(website)
    except InvalidDomain:
        return None


def confirms(info: Any, domain: str) -> bool:
    """Whether a quote's ``info["website"]`` is the company behind `domain`.

    Registrable domains are compared (``www.``/``investor.`` hosts included),
    through `WEBSITE_ALIASES`, and an investor-relations host whose domain is
    the company's with an ``at`` prefix (``investor.atmeta.com`` for
    ``meta.com``) is accepted too.
    """
    website = _mapping(info).get("website")
    registrable = website_domain(info)
    host = _host(website)
    if registrable is None or host is None:
        return False
    names = {registrable, host}
    labels = host.split(".")
    investor_host = labels[0] in _IR_LABELS
    while len(labels) > 2 and labels[0] in _IR_LABELS:
        labels = labels[1:]
        names.add(".".join(labels))
    candidates = names | {WEBSITE_ALIASES[n] for n in names if n in WEBSITE_ALIASES}
    if investor_host:
        # investor.atmeta.com: "atmeta.com" is itself a public suffix (Meta's), so the
        # registrable domain is the whole host; the company is the name after "at".
        candidates |= {n[2:] for n in names if n.startswith("at") and n.count(".") == 1}
    return domain in candidates


def is_transient(error: BaseException) -> bool:
    """Throttling and the like: yfinance's YFRateLimitError, HTTP 429 text, crumb trouble, timeouts."""
    if isinstance(error, TimeoutError | ConnectionError) or _type_names(error) & _TRANSIENT_TYPES:
        return True
    return bool(_TRANSIENT_MESSAGE.search(str(error)))


def _guarded(call: Callable[[], Any]) -> Any:
    """Run a library call; turn throttling-like failures into `Transient` so the policy retries them."""
    try:
        return call()
    except base.Transient:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise base.Transient(f"{type(exc).__name__}: {exc}") from exc
        raise


def _type_names(error: BaseException) -> set[str]:
    """Class names along the exception's MRO: matches yfinance's errors without importing yfinance."""
    return {klass.__name__ for klass in type(error).__mro__}


def _no_call(status: base.Status, payload: Any, detail: str | None) -> base.CallResult:
    """A row for an answer that needed no call (the map) or a call that was not made."""
    return base.CallResult(status, None, payload, detail, attempts=0, latency_ms=0.0, cost=0.0)


def _combined(
    status: base.Status, payload: Any, detail: str | None, spent: list[base.CallResult]
) -> base.CallResult:
    """One row for several calls (search + rejected candidates): their attempts, latency and cost add up."""
    return base.CallResult(
        status,
        None,
        payload,
        detail,
        attempts=sum(r.attempts for r in spent),
        latency_ms=round(sum(r.latency_ms for r in spent), 2),
        cost=sum(r.cost for r in spent),
        wait_ms=round(sum(r.wait_ms for r in spent), 2),
    )


def _json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf dropped to None, other objects as text."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        try:
            return _json_safe(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


# --------------------------------------------------------------------------- parsing


def fx_rate(currency: Any) -> float | None:
    """USD per unit of `currency` from `FX_TO_USD` (pence ``GBp``/``GBX`` included); None if unknown."""
    code = _text(currency)
    if code is None:
        return None
    if code in _MINOR_UNITS:
        major, factor = _MINOR_UNITS[code]
        return FX_TO_USD[major] * factor
    return FX_TO_USD.get(code.upper())


def to_usd(amount: Any, currency: Any) -> float | None:
    """`amount` in USD, or None when the amount or the currency's rate is unknown (never a guess)."""
    number = _number(amount)
    rate = fx_rate(currency)
    if number is None or rate is None:
        return None
    return number * rate


def latest_revenue(statement: Any) -> float | None:
    """``Total Revenue`` of the TTM entry, else of the latest fiscal period."""
    statement = _mapping(statement)
    for period in [TTM, *sorted((p for p in statement if p != TTM), reverse=True)]:
        revenue = _number(_mapping(statement.get(period)).get("Total Revenue"))
        if revenue is not None:
            return revenue
    return None


def _ratio(value: Any) -> float | None:
    """A 0-1 style ratio; a value above 1 (a percentage slipped in) or non-finite is dropped."""
    number = _number(value)
    return number if number is not None and number <= 1.0 else None


def financial_fields(ticker_payload: Any, info: Any, statement: Any) -> dict[str, Any]:
    """Standard fields from the stored ``ticker``, ``info`` and ``financials`` answers (no I/O).

    Revenue is the TTM ``totalRevenue`` from info, else the statement's TTM,
    else its latest fiscal year, converted from ``financialCurrency``; market
    cap is converted from the trading ``currency``.
    """
    info = _mapping(info)
    ticker = _mapping(ticker_payload).get("ticker") or info.get("symbol")
    if not ticker:
        return {}
    out: dict[str, Any] = {"ticker": str(ticker), "is_public": True}
    out["company_name"] = _text(info.get("longName")) or _text(info.get("shortName"))
    industry = units.industry_from_text(info.get("industry"), info.get("sector"))
    out.update(units.industry_fields(industry))
    employees = _number(info.get("fullTimeEmployees"))
    if employees is not None and employees >= 1:
        out["employees"] = int(employees)
        out["employees_range"] = units.employee_band(employees)
    country = units.country_code(info.get("country"))
    if country is not None:
        out["country"] = country

    statement_currency = info.get("financialCurrency") or info.get("currency")
    revenue = _number(info.get("totalRevenue"))
    if revenue is None:
        revenue = latest_revenue(statement)
    out["revenue_usd"] = to_usd(revenue, statement_currency)
    out["revenue_growth"] = _number(info.get("revenueGrowth"))
    out["gross_margin"] = _ratio(info.get("grossMargins"))
    out["operating_margin"] = _ratio(info.get("operatingMargins"))
    out["market_cap_usd"] = to_usd(info.get("marketCap"), info.get("currency"))
    return {k: v for k, v in out.items() if v is not None}
