"""BuiltWith: which technologies a web domain runs, and since when.

Two APIs are supported:

* the Domain API (``/v22/api.json``), paid, one credit per lookup, the full
  per-technology history (names, tags, categories, first/last detection in epoch
  *milliseconds*);
* the Free API (``/free1/api.json``), free but rate limited, only counts of live
  and dead technologies per group and category (timestamps in epoch *seconds*).

BuiltWith reports most lookup problems with HTTP 200 and an ``Errors`` array, so
`BuiltWith.interpret` reads the body rather than trusting the status code. The
parse functions are pure so that assets and tests can replay stored payloads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from enrichment_pipeline.lib import units
from enrichment_pipeline.lib.json_values import array as _array
from enrichment_pipeline.lib.json_values import mapping as _mapping
from enrichment_pipeline.lib.json_values import number as _number
from enrichment_pipeline.lib.json_values import text as _text
from enrichment_pipeline.lib.providers.base import Auth, Interpretation, Provider, ProviderRequest, Status

BuiltWithApi = Literal["domain", "free"]

DOMAIN_API_PATH = "/v22/api.json"
FREE_API_PATH = "/free1/api.json"
DOMAIN_API_ENDPOINT = "domain_api"
FREE_API_ENDPOINT = "free_api"

# BuiltWith reports lookup problems as ``Errors: [{"Lookup", "Message", "Code"}]``
# (usually with HTTP 200). Code -> status. -5 ("http://api.builtwith.com for
# usage": no or unknown key) and -10 (no data) are confirmed by recorded answers;
# the others follow BuiltWith's API documentation as we read it, so for them a
# clear message (no data, key, credits) decides first. Any other code is
# classified by its message, then falls back to `error`.
ERROR_CODES: dict[int, Status] = {
    -1: "error",  # general lookup failure
    -2: "error",  # LOOKUP is not a valid domain: asking again cannot help
    -3: "error",  # LOOKUP missing
    -4: "auth_failed",  # key invalid
    -5: "auth_failed",  # no key / key unknown ("... for usage")
    -6: "quota_exhausted",  # out of API credits
    -7: "rate_limited",  # too many concurrent requests
    -8: "auth_failed",  # API not enabled for this key / plan
    -9: "error",  # too many LOOKUPs in one call
    -10: "not_found",  # no data for this lookup
}
# Codes seen in recorded answers: they decide before the message does.
CONFIRMED_CODES: frozenset[int] = frozenset({-10})
NOT_FOUND_CODES: frozenset[int] = frozenset(c for c, s in ERROR_CODES.items() if s == "not_found")
# A technology whose LastDetected is more than this before the lookup's
# LastIndexed is no longer on the site: BuiltWith lists every technology it
# ever saw. One year matches how long BuiltWith keeps re-crawling a site's
# pages; in a recorded answer, 300 of its 513 technologies are older than that.
DEAD_AFTER = timedelta(days=365)
# Epochs outside this window are junk (a real detection is 1995..2100).
_EPOCH_MIN = datetime(1995, 1, 1, tzinfo=UTC)
_EPOCH_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_VERSION_SUFFIX = re.compile(r"^\s*v?\d[\w.*+-]*$", re.IGNORECASE)
_NOT_FOUND_MESSAGE = re.compile(
    r"no data|not found|unknown domain|no results|not indexed|does not exist|no technolog", re.IGNORECASE
)
# Key and credit problems reported in the body must not be cached as "not found" for a week.
_KEY_MESSAGE = re.compile(r"\bkey\b|unauthori[sz]ed", re.IGNORECASE)
_CREDITS_MESSAGE = re.compile(r"\bcredits?\b|quota", re.IGNORECASE)


class BuiltWith(Provider):
    """BuiltWith Domain API (default) or Free API for one domain per call.

    Only one LOOKUP per call, even though the Domain API accepts up to 16: a
    per-domain answer keeps caching, not-found TTLs and raw storage per domain.
    """

    name: ClassVar[str] = "builtwith"
    default_base_url: ClassVar[str] = "https://api.builtwith.com"
    default_rps: ClassVar[float] = 8.0
    default_cost_per_call: ClassVar[float] = 0.01
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)

    def __init__(self, api: BuiltWithApi = "domain", dead_after: timedelta = DEAD_AFTER) -> None:
        if api not in ("domain", "free"):
            raise ValueError(f"BuiltWith api must be 'domain' or 'free', not {api!r}")
        if dead_after <= timedelta(0):
            raise ValueError("BuiltWith dead_after must be positive")
        self.api: BuiltWithApi = api
        self.dead_after = dead_after

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        """One GET: the Domain API for full history, or the Free API for group counts."""
        if self.api == "free":
            return [ProviderRequest(FREE_API_ENDPOINT, "GET", FREE_API_PATH, {"LOOKUP": domain})]
        return [ProviderRequest(DOMAIN_API_ENDPOINT, "GET", DOMAIN_API_PATH, {"LOOKUP": domain})]

    def auth(self, api_key: str) -> Auth:
        """BuiltWith takes its key as the KEY query parameter on every API."""
        return Auth(params={"KEY": api_key})

    def interpret(self, request: ProviderRequest, http_status: int, body: Any) -> Interpretation | None:
        """Read BuiltWith's in-body errors and empty answers; None leaves other statuses to the policy.

        The endpoint (not `self.api`) decides which shape is expected, so an answer
        stored under one endpoint is always read the same way.
        """
        if not 200 <= http_status < 300:
            return None
        if not isinstance(body, Mapping):
            return Interpretation("parse_error", payload=body, detail="BuiltWith answer is not a JSON object")

        errors = [e for e in body.get("Errors") or [] if isinstance(e, Mapping)]
        if errors:
            return _interpret_errors(errors, body)

        if request.endpoint == FREE_API_ENDPOINT:
            if not body.get("groups"):
                return Interpretation("not_found", payload=body, detail="BuiltWith Free API has no groups")
            return Interpretation("ok", payload=body)

        results = body.get("Results")
        if not results:
            return Interpretation("not_found", payload=body, detail="BuiltWith returned no Results")
        if not any(_name(tech.get("Name")) for _, tech in _iter_technologies(body)):
            return Interpretation("not_found", payload=body, detail="BuiltWith returned no technologies")
        return Interpretation("ok", payload=body)

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        """Current technologies (dead ones excluded) and the firmographic signals of a Domain API answer."""
        payload = payloads.get(DOMAIN_API_ENDPOINT)
        if not isinstance(payload, Mapping):
            return {}
        return self.read_domain_api(domain, payload)[0]

    def read_domain_api(
        self, domain: str, payload: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """`extract`'s fields and every technology row (live and dead) of one Domain API answer,
        from one pass over its technologies (the fetcher's check needs both)."""
        out = domain_api_fields(payload)
        rows = technologies_from_domain_api(domain, payload, dead_after=self.dead_after)
        names = [t["technology"] for t in rows if t["is_live"]]
        if names:
            out["technologies"] = names
        return out, rows


def _interpret_errors(errors: list[Mapping[str, Any]], body: Mapping[str, Any]) -> Interpretation:
    """Classify the first in-body error: no data, key, credits, or anything else (`error`)."""
    first = errors[0]
    message = (_text(first.get("Message")) or "BuiltWith returned an error")[:200]
    code = first.get("Code")
    number = _number(code)
    code = int(number) if number is not None and abs(number) < 1000 else code
    detail = f"{message} (code {code})" if code is not None else message
    known = ERROR_CODES.get(code) if isinstance(code, int) else None  # type: ignore[call-overload]
    if known is not None and code in CONFIRMED_CODES:
        return Interpretation(known, payload=body, detail=detail)
    if _KEY_MESSAGE.search(message):
        return Interpretation("auth_failed", payload=body, detail=detail)
    if _CREDITS_MESSAGE.search(message):
        return Interpretation("quota_exhausted", payload=body, detail=detail)
    if _NOT_FOUND_MESSAGE.search(message):
        return Interpretation("not_found", payload=body, detail=detail)
    return Interpretation(known or "error", payload=body, detail=detail)


# --------------------------------------------------------------------------- parsing


def last_indexed(payload: Mapping[str, Any]) -> datetime | None:
    """When BuiltWith last crawled the site: the result's ``LastIndexed``, else its paths', else None."""
    found: list[datetime] = []
    for result in _array(payload.get("Results")):
        if not isinstance(result, Mapping):
            continue
        when = _from_epoch(result.get("LastIndexed"), millis=True)
        if when is not None:
            found.append(when)
            continue
        inner = _mapping(result.get("Result"))
        for path in _array(inner.get("Paths")):
            when = _from_epoch(_mapping(path).get("LastIndexed"), millis=True)
            if when is not None:
                found.append(when)
    return max(found) if found else None


def technologies_from_domain_api(
    domain: str, payload: Mapping[str, Any], *, dead_after: timedelta = DEAD_AFTER
) -> list[dict[str, Any]]:
    """One row per technology from a Domain API answer, live or dead (no I/O).

    BuiltWith lists every technology it ever saw, once per path (root domain,
    subdomains, internal URLs). Rows are merged by name: earliest
    FirstDetected, latest LastDetected, premium if any sighting says so,
    categories united, `path` from the earliest sighting. A version entry
    (``"jQuery 1.9.1"`` with ``Parent: "jQuery"``) rolls up into its parent.
    `is_live` is False when the technology was last detected more than
    `dead_after` before the site was last indexed: it is no longer on the site
    and belongs to its history (ended at `last_detected`), not its stack.
    Rows keep the order in which technologies first appear in the payload.
    """
    indexed = last_indexed(payload)
    merged: dict[str, dict[str, Any]] = {}
    for path, tech in _iter_technologies(payload):
        name = _name(tech.get("Name"))
        if not name:
            continue
        parent = _name(tech.get("Parent"))
        if parent and parent != name and _is_version_of(name, parent):
            name = parent
        row = {
            "domain": domain,
            "technology": name,
            "tag": _name(tech.get("Tag")),
            "categories": _categories(tech.get("Categories")),
            "first_detected": _from_epoch(tech.get("FirstDetected"), millis=True),
            "last_detected": _from_epoch(tech.get("LastDetected"), millis=True),
            "is_premium": _yes(tech.get("IsPremium")),
            "path": path,
            "parent": parent if parent and parent != name else None,
        }
        seen = merged.get(name)
        if seen is None:
            merged[name] = row
            continue
        if _earlier(row["first_detected"], seen["first_detected"]):
            seen["first_detected"] = row["first_detected"]
            seen["path"] = row["path"]
        if _earlier(seen["last_detected"], row["last_detected"]):
            seen["last_detected"] = row["last_detected"]
        seen["is_premium"] = seen["is_premium"] or row["is_premium"]
        seen["tag"] = seen["tag"] or row["tag"]
        seen["parent"] = seen["parent"] or row["parent"]
        seen["categories"] = _union(seen["categories"], row["categories"])
    for row in merged.values():
        last = row["last_detected"]
        row["is_live"] = indexed is None or last is None or last >= indexed - dead_after
    return list(merged.values())


def domain_api_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Firmographic signals of a Domain API answer in the standard fields (no I/O).

    ``Meta.CompanyName`` / ``Meta.Vertical`` / ``Meta.Country``,
    ``Attributes.Employees``, ``SalesRevenue`` (BuiltWith's estimate of the
    site's yearly online sales, USD) and ``Spend`` (its estimate of the monthly
    technology spend, USD). Zeros and empty strings mean unknown and are left out.
    """
    out: dict[str, Any] = {}
    for result in _array(payload.get("Results")):
        if not isinstance(result, Mapping):
            continue
        meta = _mapping(result.get("Meta"))
        attributes = _mapping(result.get("Attributes"))
        inner = _mapping(result.get("Result"))
        name = _text(meta.get("CompanyName"))
        if name and "company_name" not in out:
            out["company_name"] = name[:200]
        if "industry_naics" not in out:
            out.update(units.industry_fields(units.industry_from_text(_text(meta.get("Vertical")))))
        country = units.country_code(_text(meta.get("Country")))
        if country and "country" not in out:
            out["country"] = country
        employees = _number(attributes.get("Employees"))
        if employees is not None and 1 <= employees <= 5_000_000 and "employees" not in out:
            out["employees"] = int(employees)
            out["employees_range"] = units.employee_band(employees)
        revenue = _number(result.get("SalesRevenue"))
        if revenue is not None and 0 < revenue < 1e13 and "revenue_usd" not in out:
            out["revenue_usd"] = revenue
        spend = _number(inner.get("Spend"))
        if spend is not None and 0 < spend < 1e10 and "tech_spend_usd" not in out:
            out["tech_spend_usd"] = spend
    return out


def _is_version_of(name: str, parent: str) -> bool:
    """``"jQuery 1.9.1"`` is a version of ``"jQuery"``; ``"jQuery UI"`` is not."""
    return name.lower().startswith(parent.lower()) and bool(_VERSION_SUFFIX.match(name[len(parent) :]))


def groups_from_free_api(domain: str, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per group and per category ("group/category") from a Free API answer (no I/O).

    The Free API gives no technology names, only live/dead counts, so these rows
    are the whole signal it offers. Timestamps are epoch seconds here, unlike the
    Domain API's milliseconds.
    """
    rows: list[dict[str, Any]] = []
    for group in _array(payload.get("groups")):
        if not isinstance(group, Mapping):
            continue
        group_name = _text(group.get("name"))
        if not group_name:
            continue
        rows.append(_group_row(domain, group_name, group))
        for category in _array(group.get("categories")):
            if not isinstance(category, Mapping):
                continue
            category_name = _text(category.get("name"))
            if category_name:
                rows.append(_group_row(domain, f"{group_name}/{category_name}", category))
    return rows


def _group_row(domain: str, group: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "domain": domain,
        "group": group,
        "live": _int(item.get("live")),
        "dead": _int(item.get("dead")),
        "latest": _from_epoch(item.get("latest"), millis=False),
        "oldest": _from_epoch(item.get("oldest"), millis=False),
    }


def _iter_technologies(payload: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(path, technology) pairs from Results[].Result.Paths[].Technologies[], skipping junk."""
    for result in _array(payload.get("Results")):
        if not isinstance(result, Mapping):
            continue
        inner = result.get("Result")
        if not isinstance(inner, Mapping):
            continue
        for path in _array(inner.get("Paths")):
            if not isinstance(path, Mapping):
                continue
            where = _path_label(path)
            for tech in _array(path.get("Technologies")):
                if isinstance(tech, Mapping):
                    yield where, tech


def _path_label(path: Mapping[str, Any]) -> str:
    """``sub.domain.tld/url`` for a BuiltWith path: where on the site a technology was seen."""
    host = (_text(path.get("Domain")) or "")[:253]
    sub = (_text(path.get("SubDomain")) or "")[:253]
    url = (_text(path.get("Url")) or "").lstrip("/")[:500]
    label = f"{sub}.{host}" if sub and host else host or sub
    return f"{label}/{url}" if url else label


def _categories(value: Any) -> list[str]:
    """Categories as strings; older answers used ``[{"Name": ...}]`` objects, accept both."""
    out: list[str] = []
    for item in _array(value):
        name = _text(item.get("Name") if isinstance(item, Mapping) else item)
        if name and name not in out:
            out.append(name)
    return out


def _from_epoch(value: Any, *, millis: bool) -> datetime | None:
    """UTC datetime from an epoch number; 0, negatives, out-of-range values and junk mean "unknown".

    `millis` says what the API documents; a value too large for seconds is read
    as milliseconds anyway (recorded Free API answers carry milliseconds too).
    """
    number = _number(value)
    if number is None or number <= 0:
        return None
    if millis or number > 1e11:
        number /= 1000
    try:
        when = datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when if _EPOCH_MIN <= when < _EPOCH_MAX else None


def _yes(value: Any) -> bool:
    """BuiltWith encodes booleans as "yes"/"no" (and sometimes "maybe"); only yes/true count."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value).strip().lower() in {"yes", "true", "1"}


def _name(value: Any) -> str | None:
    """A name or tag as text, cut to 200 characters."""
    text = _text(value)
    return text[:200] if text else None


def _int(value: Any) -> int:
    """A non-negative count that fits a 64-bit column; junk is 0."""
    number = _number(value)
    return int(number) if number is not None and 0 <= number < 2**53 else 0


def _earlier(a: datetime | None, b: datetime | None) -> bool:
    """True when `a` is known and earlier than `b` (an unknown `b` loses to any known `a`)."""
    return a is not None and (b is None or a < b)


def _union(a: list[str], b: list[str]) -> list[str]:
    return a + [item for item in b if item not in a]
