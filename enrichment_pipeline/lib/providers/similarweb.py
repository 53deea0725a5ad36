"""SimilarWeb: how much traffic a web domain gets, and from where.

Six calls of the SimilarWeb REST API v1 make one traffic profile: visits,
bounce rate, pages per visit, average visit duration (the "total traffic and
engagement" family), global rank, and the traffic-source share overview. Each
asks for the last `months` complete calendar months at monthly granularity.

Plans are often limited to some countries; SimilarWeb answers an out-of-plan
country with HTTP 403. Rather than failing the domain, `SimilarWeb.interpret`
asks the policy for one follow-up call with ``country=world``.
"""

from __future__ import annotations

import calendar
import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, ClassVar

from enrichment_pipeline.lib.fields import GROUPS
from enrichment_pipeline.lib.json_values import array as _array
from enrichment_pipeline.lib.json_values import number as _float
from enrichment_pipeline.lib.providers.base import Auth, Interpretation, Provider, ProviderRequest

WORLD = "world"

# endpoint name -> path below /v1/website/{domain}/
ENDPOINT_PATHS: dict[str, str] = {
    "visits": "total-traffic-and-engagement/visits",
    "bounce_rate": "total-traffic-and-engagement/bounce-rate",
    "pages_per_visit": "total-traffic-and-engagement/pages-per-visit",
    "average_visit_duration": "total-traffic-and-engagement/average-visit-duration",
    "global_rank": "global-rank/global-rank",
    "traffic_sources": "traffic-sources/overview-share",
}
ENDPOINTS: tuple[str, ...] = tuple(ENDPOINT_PATHS)

# SimilarWeb answers domains it has no panel data for with meta.status "Error" and
# error_message "Data not found" (HTTP 404, sometimes another status).
_NOT_FOUND_MESSAGE = re.compile(r"data not found|no data|not found|domain not", re.IGNORECASE)


class SimilarWeb(Provider):
    """SimilarWeb API v1 traffic and engagement for one domain (six calls).

    `today` pins the reporting window for reproducible runs and tests; by default
    it is read at request time so a long-lived process does not freeze its window.
    """

    name: ClassVar[str] = "similarweb"
    default_base_url: ClassVar[str] = "https://api.similarweb.com"
    default_rps: ClassVar[float] = 10.0  # SimilarWeb's documented limit per account
    default_cost_per_call: ClassVar[float] = 0.02
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)

    def __init__(self, country: str = WORLD, months: int = 3, today: date | None = None) -> None:
        country = country.strip().lower()
        if not country:
            raise ValueError("SimilarWeb country must not be empty (use 'world')")
        if months < 1:
            raise ValueError(f"SimilarWeb months must be >= 1, not {months}")
        self.country = country
        self.months = months
        self.today = today

    def window(self) -> tuple[str, str]:
        """(start_date, end_date) as YYYY-MM: the last `months` full months before today."""
        today = self.today or date.today()
        end = _add_months(date(today.year, today.month, 1), -1)
        start = _add_months(end, -(self.months - 1))
        return start.strftime("%Y-%m"), end.strftime("%Y-%m")

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        """Six GETs sharing one window, country and granularity, so the metrics line up month by month."""
        start, end = self.window()
        params = {
            "start_date": start,
            "end_date": end,
            "granularity": "monthly",
            "country": self.country,
            "main_domain_only": "false",
            "format": "json",
        }
        return [
            ProviderRequest(endpoint, "GET", f"/v1/website/{domain}/{path}", dict(params))
            for endpoint, path in ENDPOINT_PATHS.items()
        ]

    def auth(self, api_key: str) -> Auth:
        """SimilarWeb v1 takes the key as the api_key query parameter."""
        return Auth(params={"api_key": api_key})

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        return _extract(domain, payloads)

    def interpret(self, request: ProviderRequest, http_status: int, body: Any) -> Interpretation | None:
        """Country fallback on 403, SimilarWeb's "Data not found" shape, and meta.status on 2xx.

        A 403 for ``country=world`` is a real permission problem, left to the
        policy (auth_failed); only a narrower country is retried as world.
        """
        meta = body.get("meta") if isinstance(body, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        meta_status = str(meta.get("status") or "")
        message = str(meta.get("error_message") or "").strip()

        if http_status == 403:
            country = str(request.params.get("country", WORLD)).lower()
            if country == WORLD:
                return None
            fallback = replace(request, params={**request.params, "country": WORLD})
            return Interpretation(
                "error",
                payload=body,
                detail=f"plan lacks country {country}; retrying with country={WORLD}",
                fallback=fallback,
            )

        if meta_status.lower() == "error" and _NOT_FOUND_MESSAGE.search(message):
            return Interpretation("not_found", payload=body, detail=message)
        if http_status == 404:
            return Interpretation("not_found", payload=body, detail=message or "SimilarWeb has no data")

        if 200 <= http_status < 300:
            if not isinstance(body, Mapping):
                return Interpretation("parse_error", payload=body, detail="SimilarWeb answer is not JSON")
            if meta_status.lower() == "success":
                return Interpretation("ok", payload=body)
            if meta_status.lower() == "error":
                return Interpretation("error", payload=body, detail=message or "SimilarWeb meta.status Error")
        return None


# --------------------------------------------------------------------------- parsing


def _extract(domain: str, payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if not payloads:
        return {}
    traffic = traffic_from_payloads(domain, payloads)
    return {k: traffic[k] for k in GROUPS["traffic"] if traffic.get(k) is not None}


def traffic_from_payloads(domain: str, payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One traffic profile from the six endpoint answers, keyed by endpoint name (no I/O).

    Missing endpoints (not found, failed, not requested) give None fields rather
    than an exception, so a partial profile can still be stored and merged.

    * A month with 0 visits is a *gap* (SimilarWeb's panel saw nobody), not
      traffic: it is left out of every average and of growth, and its
      engagement values (0 as well) are ignored.
    * Averages are over the remaining months; growth compares the last
      remaining month with the first (None with fewer than two).
    * Global rank is the latest month's; 0 means *unranked* and gives None.
      Its points are dated ``YYYY-MM``, the others ``YYYY-MM-DD``.
    * Traffic-source shares are each channel's fraction of the month's
      *desktop* visits, in [0, 1], averaged over the months with any visits:
      overview-share counts desktop visits only, so its sources add up to
      well below ``monthly_visits`` (all devices) and are never divided by it.
    """
    visits_all = _series(payloads.get("visits"), "visits")
    gaps = {day for day, value in visits_all if value <= 0}
    visits = [(d, v) for d, v in visits_all if d not in gaps]
    bounce = _without(_series(payloads.get("bounce_rate"), "bounce_rate"), gaps)
    pages = _without(_series(payloads.get("pages_per_visit"), "pages_per_visit"), gaps, zero_is_gap=True)
    duration = _without(
        _series(payloads.get("average_visit_duration"), "average_visit_duration"), gaps, zero_is_gap=True
    )
    rank = _series(payloads.get("global_rank"), "global_rank")
    shares, share_dates = _source_shares(domain, payloads.get("traffic_sources"), gaps)

    growth: float | None = None
    if len(visits) >= 2:
        growth = visits[-1][1] / visits[0][1] - 1.0
        growth = growth if math.isfinite(growth) else None

    all_dates = [d for series in (visits_all, bounce, pages, duration, rank) for d, _ in series]
    all_dates += share_dates
    period_start, period_end = _period(all_dates, payloads)

    return {
        "domain": domain,
        "monthly_visits": _mean(visits),
        "visits_growth": growth,
        "bounce_rate": _mean(bounce),
        "pages_per_visit": _mean(pages),
        "avg_visit_duration_s": _mean(duration),
        "global_rank": _rank(rank),
        "search_share": shares.get("search"),
        "direct_share": shares.get("direct"),
        "referral_share": shares.get("referrals"),
        "social_share": shares.get("social"),
        "period_start": period_start,
        "period_end": period_end,
        "last_updated": _last_updated(payloads.values()),
        "gap_months": len(gaps),
    }


# A rank beyond this is not a rank (SimilarWeb ranks ~ tens of millions of sites).
_MAX_RANK = 1_000_000_000


def _rank(points: list[tuple[date, float]]) -> int | None:
    """The latest month's rank; 0 (or junk) means SimilarWeb does not rank the site: None."""
    if not points:
        return None
    value = points[-1][1]
    if not 1 <= value <= _MAX_RANK:
        return None
    return round(value)


def _without(
    points: list[tuple[date, float]], gaps: set[date], *, zero_is_gap: bool = False
) -> list[tuple[date, float]]:
    """A series without the gap months (and, for per-visit metrics, without 0 values)."""
    return [(d, v) for d, v in points if d not in gaps and not (zero_is_gap and v <= 0)]


def _is_success(payload: Any) -> bool:
    """Only answers SimilarWeb itself marked as successful carry data (error bodies are skipped)."""
    if not isinstance(payload, Mapping):
        return False
    meta = payload.get("meta")
    status = meta.get("status") if isinstance(meta, Mapping) else None
    return status is None or str(status).lower() == "success"


def _series(payload: Any, key: str) -> list[tuple[date, float]]:
    """[(date, value)] by date from ``{key: [{"date": ..., key: value}]}``; nulls and negatives dropped.

    Every engagement endpoint and global-rank use this shape, the list and the
    value field both named after the metric. One value per month (the last wins).
    """
    if not _is_success(payload):
        return []
    points: dict[date, float] = {}
    items = payload.get(key)
    for item in _array(items):
        if not isinstance(item, Mapping):
            continue
        day = _date(item.get("date"))
        value = _float(item.get(key))
        if day is not None and value is not None and value >= 0:
            points[day] = value
    return sorted(points.items())


_SOURCE_KEYS: dict[str, str] = {
    "search": "search",
    "organic search": "search",
    "paid search": "search",
    "direct": "direct",
    "referrals": "referrals",
    "referral": "referrals",
    "social": "social",
    "mail": "mail",
    "email": "mail",
    "display ads": "display_ads",
}


def _source_shares(
    domain: str,
    payload: Any,
    gaps: set[date] = frozenset(),  # type: ignore[assignment]
) -> tuple[dict[str, float], list[date]]:
    """Mean monthly desktop channel mix from traffic-sources/overview-share.

    Real shape: ``{"visits": {"<domain>": [{"source_type": "Search", "visits":
    [{"date": ..., "organic": <visits>, "paid": <visits>}]}]}}`` — per-source
    *desktop* visit counts (in the recorded answer they add up to about a
    fifth of the month's all-device visits). Each month's counts are divided
    by that month's total over all sources, so shares are fractions in [0, 1]
    summing to 1. Months without visits are skipped. Also returns the dates
    seen, for the profile's period.
    """
    shares: dict[str, float] = {}
    seen: list[date] = []
    if not _is_success(payload):
        return shares, seen
    by_domain = payload.get("visits")
    if not isinstance(by_domain, Mapping) or not by_domain:
        return shares, seen
    entries = by_domain.get(domain)
    if entries is None:
        lowered = {str(k).lower().removeprefix("www."): v for k, v in by_domain.items()}
        entries = lowered.get(domain.lower().removeprefix("www."), next(iter(by_domain.values())))

    counts: dict[str, dict[date, float]] = {}  # visit counts per channel and month
    for entry in _array(entries):
        if not isinstance(entry, Mapping):
            continue
        channel = _SOURCE_KEYS.get(str(entry.get("source_type") or "").strip().lower())
        if channel is None:
            channel = "other"
        for point in _array(entry.get("visits")):
            if not isinstance(point, Mapping):
                continue
            day = _date(point.get("date"))
            if day is None or day in gaps:
                continue
            organic, paid = _float(point.get("organic")), _float(point.get("paid"))
            if organic is None and paid is None:
                continue
            value = max(0.0, organic or 0.0) + max(0.0, paid or 0.0)
            months = counts.setdefault(channel, {})
            months[day] = months.get(day, 0.0) + value
            seen.append(day)

    per_channel: dict[str, list[float]] = {}
    month_totals: dict[date, float] = {}
    for months in counts.values():
        for day, value in months.items():
            month_totals[day] = month_totals.get(day, 0.0) + value
    for channel, months in counts.items():
        for day, value in months.items():
            total = month_totals[day]
            if total > 0:
                per_channel.setdefault(channel, []).append(min(1.0, value / total))
    for channel, values in per_channel.items():
        if channel != "other" and values:
            shares[channel] = statistics.fmean(values)
    return shares, seen


def _period(dates: list[date], payloads: Mapping[str, Mapping[str, Any]]) -> tuple[date | None, date | None]:
    """First day of the first month and last day of the last month covered.

    Taken from the data points; when there are none, from the window SimilarWeb
    echoes in ``meta.request``.
    """
    if dates:
        first, last = min(dates), max(dates)
        return first.replace(day=1), _month_end(last)
    for payload in payloads.values():
        meta = payload.get("meta") if isinstance(payload, Mapping) else None
        request = meta.get("request") if isinstance(meta, Mapping) else None
        if isinstance(request, Mapping):
            start, end = _date(request.get("start_date")), _date(request.get("end_date"))
            if start is not None and end is not None:
                return start.replace(day=1), _month_end(end)
    return None, None


def _last_updated(payloads: Iterable[Any]) -> date | None:
    """Most recent ``meta.last_updated`` across the answers (they usually agree)."""
    found = []
    for payload in payloads:
        meta = payload.get("meta") if isinstance(payload, Mapping) else None
        day = _date(meta.get("last_updated")) if isinstance(meta, Mapping) else None
        if day is not None:
            found.append(day)
    return max(found) if found else None


def _mean(points: list[tuple[date, float]]) -> float | None:
    result = statistics.fmean(v for _, v in points) if points else None
    return result if result is not None and math.isfinite(result) else None


def _date(value: Any) -> date | None:
    """YYYY-MM-DD or YYYY-MM (SimilarWeb uses both) to a date; anything else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()[:10]
    try:
        if len(text) == 7:
            return date.fromisoformat(f"{text}-01")
        return date.fromisoformat(text)
    except ValueError:
        return None


def _add_months(day: date, months: int) -> date:
    """First of the month `months` away from `day`'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])
