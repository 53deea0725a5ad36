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

from enrichment_pipeline.lib.providers.base import Auth, Interpretation, Provider, ProviderRequest

BuiltWithApi = Literal["domain", "free"]

DOMAIN_API_PATH = "/v22/api.json"
FREE_API_PATH = "/free1/api.json"
DOMAIN_API_ENDPOINT = "domain_api"
FREE_API_ENDPOINT = "free_api"

# BuiltWith's code for "we have no data for this lookup". Codes are not documented
# exhaustively, so the message is also matched (see _NOT_FOUND_MESSAGE).
NOT_FOUND_CODES: frozenset[int] = frozenset({-10})
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

    def __init__(self, api: BuiltWithApi = "domain") -> None:
        if api not in ("domain", "free"):
            raise ValueError(f"BuiltWith api must be 'domain' or 'free', not {api!r}")
        self.api: BuiltWithApi = api

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
        if not any(True for _ in _iter_technologies(body)):
            return Interpretation("not_found", payload=body, detail="BuiltWith returned no technologies")
        return Interpretation("ok", payload=body)

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        payload = payloads.get(DOMAIN_API_ENDPOINT)
        if not payload:
            return {}
        names = [t["technology"] for t in technologies_from_domain_api(domain, payload)]
        return {"technologies": names} if names else {}


def _interpret_errors(errors: list[Mapping[str, Any]], body: Mapping[str, Any]) -> Interpretation:
    """Classify the first in-body error: no data, key, credits, or anything else (`error`)."""
    first = errors[0]
    message = str(first.get("Message") or "").strip() or "BuiltWith returned an error"
    code = first.get("Code")
    detail = f"{message} (code {code})" if code is not None else message
    if code in NOT_FOUND_CODES:
        return Interpretation("not_found", payload=body, detail=detail)
    if _KEY_MESSAGE.search(message):
        return Interpretation("auth_failed", payload=body, detail=detail)
    if _CREDITS_MESSAGE.search(message):
        return Interpretation("quota_exhausted", payload=body, detail=detail)
    if _NOT_FOUND_MESSAGE.search(message):
        return Interpretation("not_found", payload=body, detail=detail)
    return Interpretation("error", payload=body, detail=detail)


# --------------------------------------------------------------------------- parsing


def technologies_from_domain_api(domain: str, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per technology name from a Domain API answer (no I/O).

    BuiltWith lists a technology once per path (root domain, subdomains, internal
    URLs) it was seen on; downstream wants one fact per technology, so rows are
    merged by name: earliest FirstDetected, latest LastDetected, premium if any
    sighting says so, categories united, and `path` taken from the earliest sighting.
    Rows keep the order in which technologies first appear in the payload.
    """
    merged: dict[str, dict[str, Any]] = {}
    for path, tech in _iter_technologies(payload):
        name = str(tech.get("Name") or "").strip()
        if not name:
            continue
        row = {
            "domain": domain,
            "technology": name,
            "tag": _str_or_none(tech.get("Tag")),
            "categories": _categories(tech.get("Categories")),
            "first_detected": _from_epoch(tech.get("FirstDetected"), millis=True),
            "last_detected": _from_epoch(tech.get("LastDetected"), millis=True),
            "is_premium": _yes(tech.get("IsPremium")),
            "path": path,
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
        seen["categories"] = _union(seen["categories"], row["categories"])
    return list(merged.values())


def groups_from_free_api(domain: str, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per group and per category ("group/category") from a Free API answer (no I/O).

    The Free API gives no technology names, only live/dead counts, so these rows
    are the whole signal it offers. Timestamps are epoch seconds here, unlike the
    Domain API's milliseconds.
    """
    rows: list[dict[str, Any]] = []
    for group in payload.get("groups") or []:
        if not isinstance(group, Mapping):
            continue
        group_name = str(group.get("name") or "").strip()
        if not group_name:
            continue
        rows.append(_group_row(domain, group_name, group))
        for category in group.get("categories") or []:
            if not isinstance(category, Mapping):
                continue
            category_name = str(category.get("name") or "").strip()
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
    for result in payload.get("Results") or []:
        if not isinstance(result, Mapping):
            continue
        inner = result.get("Result")
        if not isinstance(inner, Mapping):
            continue
        for path in inner.get("Paths") or []:
            if not isinstance(path, Mapping):
                continue
            where = _path_label(path)
            for tech in path.get("Technologies") or []:
                if isinstance(tech, Mapping):
                    yield where, tech


def _path_label(path: Mapping[str, Any]) -> str:
    """``sub.domain.tld/url`` for a BuiltWith path: where on the site a technology was seen."""
    host = str(path.get("Domain") or "").strip()
    sub = str(path.get("SubDomain") or "").strip()
    url = str(path.get("Url") or "").strip().lstrip("/")
    label = f"{sub}.{host}" if sub and host else host or sub
    return f"{label}/{url}" if url else label


def _categories(value: Any) -> list[str]:
    """Categories as strings; older answers used ``[{"Name": ...}]`` objects, accept both."""
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value:
        name = item.get("Name") if isinstance(item, Mapping) else item
        if isinstance(name, str) and name.strip() and name.strip() not in out:
            out.append(name.strip())
    return out


def _from_epoch(value: Any, *, millis: bool) -> datetime | None:
    """UTC datetime from an epoch number; 0, negatives and junk mean "unknown"."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number <= 0:
        return None
    return datetime.fromtimestamp(number / 1000 if millis else number, tz=UTC)


def _yes(value: Any) -> bool:
    """BuiltWith encodes booleans as "yes"/"no" (and sometimes "maybe"); only yes/true count."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"yes", "true", "1"}


def _str_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _earlier(a: datetime | None, b: datetime | None) -> bool:
    """True when `a` is known and earlier than `b` (an unknown `b` loses to any known `a`)."""
    return a is not None and (b is None or a < b)


def _union(a: list[str], b: list[str]) -> list[str]:
    return a + [item for item in b if item not in a]
