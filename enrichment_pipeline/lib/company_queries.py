"""The read API's questions to the marts, in SQL that DuckDB and PostgreSQL both run.

Plain functions over a `read_sources.Session`; they return JSON-able dicts and
know nothing of HTTP. Sorting is on an allow-list and pagination is keyset
(a cursor holds the last row's sort value and domain), so a page costs the same
wherever it is in the list and rows never repeat or go missing between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import polars as pl

from enrichment_pipeline.lib.fields import GROUPS
from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.read_sources import Row, Session
from enrichment_pipeline.lib.scoring.engine import SCORE_SCHEMA

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

# The document's sections are the standard field groups (lib/fields.py), less company_name (shown
# at the top) and tech_spend_usd (BuiltWith's spend estimate, not published by the read API).
SECTIONS = ("firmographics", "financials", "traffic")
_NOT_IN_SECTIONS = frozenset({"company_name", "tech_spend_usd"})
_SECTION_FIELDS = {
    section: tuple(k for k in GROUPS[section] if k not in _NOT_IN_SECTIONS) for section in SECTIONS
}
CONFIDENCE = ("profile", "employees", "revenue_usd", "industry_naics", "technologies")
GROUP_SOURCES = ("firmographics", "financials", "technologies", "traffic")

# name -> (SQL expression, value type, NULL stand-in so NULLs sort last in descending order)
SORTS: dict[str, tuple[str, str, str]] = {
    "icp_score": ("s.icp_score", "DOUBLE PRECISION", "-1"),
    "monthly_visits": ("p.monthly_visits", "DOUBLE PRECISION", "-1"),
    "employees": ("p.employees", "DOUBLE PRECISION", "-1"),
    "revenue_usd": ("p.revenue_usd", "DOUBLE PRECISION", "-1"),
    "enriched_at": ("p.enriched_at", "TIMESTAMPTZ", "'1970-01-01T00:00:00Z'"),
    "domain": ("p.domain", "VARCHAR", ""),
}
SORT_CHOICES = tuple(sorted([*SORTS, *(f"-{k}" for k in SORTS)]))
DEFAULT_SORT = "-icp_score"
SortChoice = Literal[
    "icp_score", "-icp_score", "monthly_visits", "-monthly_visits", "employees", "-employees",
    "revenue_usd", "-revenue_usd", "enriched_at", "-enriched_at", "domain", "-domain",
]  # fmt: skip


class BadCursor(ValueError):
    """The cursor is not one this API issued for this sort."""


def _json(text: Any, default: Any) -> Any:
    if text is None or text == "":
        return default
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError is one
        return default


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # naive timestamps are UTC (the row index keeps them so)
            return value.isoformat() + "Z"
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


# Every company's row for `profile_document`: what a source keeps in its row index.
PROFILES_SQL = """
SELECT p.*, s.icp_score, s.icp_tier, s.score_breakdown, s.score_reasons, s.disqualified,
       s.disqualification_reason, s.budget_signal, s.pain_signal, s.timing_signal,
       s.model_version, s.scored_at
FROM marts.company_profiles p LEFT JOIN marts.icp_scores s ON s.domain = p.domain
"""
PROFILE_SQL = PROFILES_SQL + "WHERE p.domain = ?\n"


def company(session: Session, domain: str, now: datetime | None = None) -> dict[str, Any] | None:
    rows = session.rows(PROFILE_SQL, [domain])
    if not rows:
        return None
    return profile_document(rows[0], now or datetime.now(UTC))


def profile_document(r: Row, now: datetime) -> dict[str, Any]:
    enriched_at = r.get("enriched_at")
    age = None
    if isinstance(enriched_at, datetime):
        aware = enriched_at if enriched_at.tzinfo is not None else enriched_at.replace(tzinfo=UTC)
        age = max(0, int((now - aware).total_seconds()))
    score = None
    if r.get("icp_score") is not None:
        score = {
            "icp_score": r["icp_score"],
            "icp_tier": r["icp_tier"],
            "breakdown": _json(r.get("score_breakdown"), {}),
            "reasons": _json(r.get("score_reasons"), []),
            "disqualified": bool(r.get("disqualified")),
            "disqualification_reason": r.get("disqualification_reason"),
            "signals": {k: r.get(f"{k}_signal") for k in ("budget", "pain", "timing")},
            "model_version": r.get("model_version"),
            "scored_at": _iso(r.get("scored_at")),
        }
    sources = _json(r.get("field_sources"), {})
    return {
        "domain": r["domain"],
        "company_name": r.get("company_name"),
        "status": r.get("status"),
        "mode": r.get("mode"),
        **{section: {k: r.get(k) for k in fields} for section, fields in _SECTION_FIELDS.items()},
        "technographics": {
            "technologies": _json(r.get("technologies"), []),
            "technology_count": r.get("technology_count"),
            "search_vendor": r.get("search_vendor"),
            "ecommerce_platform": r.get("ecommerce_platform"),
            "cms": r.get("cms"),
        },
        "score": score,
        "sources": {
            "groups": {g: r.get(f"{g}_source") for g in GROUP_SOURCES},
            "fields": {
                name: {"provider": v.get("provider"), "observed_at": v.get("observed_at")}
                for name, v in sources.items()
                if isinstance(v, dict)
            },
        },
        "confidence": {k: r.get(f"{k}_confidence") for k in CONFIDENCE},
        "disagreements": _json(r.get("disagreements"), {}),
        "provider_statuses": _json(r.get("provider_statuses"), []),
        "freshness": {
            "enriched_at": _iso(enriched_at),
            "age_seconds": age,
            "scored_at": _iso(r.get("scored_at")),
        },
    }


# -- lists --------------------------------------------------------------------------------------------


@dataclass
class CompanyFilter:
    tiers: Sequence[str] = ()
    min_score: float | None = None
    max_score: float | None = None
    industry: str | None = None
    country: str | None = None
    technologies: Sequence[str] = ()
    without_technologies: Sequence[str] = ()
    search_vendor: str | None = None
    ecommerce_platform: str | None = None
    statuses: Sequence[str] = ()
    enriched_since: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def where(self, techs_column: str | None = None) -> tuple[list[str], list[Any]]:
        """SQL conditions on `p` (profiles) and `s` (scores). `techs_column`: a column holding each
        company's current technologies in lower case, used instead of the technology table."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.tiers:
            clauses.append(f"s.icp_tier IN ({', '.join('?' for _ in self.tiers)})")
            params.extend(self.tiers)
        if self.min_score is not None:
            clauses.append("s.icp_score >= ?")
            params.append(self.min_score)
        if self.max_score is not None:
            clauses.append("s.icp_score <= ?")
            params.append(self.max_score)
        if self.industry:
            clauses.append("p.industry_naics = ?")
            params.append(self.industry)
        if self.country:
            clauses.append("upper(p.country) = ?")
            params.append(self.country.upper())
        for tech in self.technologies:
            clauses.append(
                f"list_contains({techs_column}, ?)"
                if techs_column
                else "EXISTS (SELECT 1 FROM marts.fct_company_technology t "
                "WHERE t.domain = p.domain AND t.is_current AND lower(t.technology) = ?)"
            )
            params.append(tech.lower())
        for tech in self.without_technologies:
            clauses.append(
                f"NOT list_contains({techs_column}, ?)"
                if techs_column
                else "NOT EXISTS (SELECT 1 FROM marts.fct_company_technology t "
                "WHERE t.domain = p.domain AND t.is_current AND lower(t.technology) = ?)"
            )
            params.append(tech.lower())
        if self.search_vendor:
            clauses.append("lower(p.search_vendor) = ?")
            params.append(self.search_vendor.lower())
        if self.ecommerce_platform:
            clauses.append("lower(p.ecommerce_platform) = ?")
            params.append(self.ecommerce_platform.lower())
        if self.statuses:
            clauses.append(f"p.status IN ({', '.join('?' for _ in self.statuses)})")
            params.extend(self.statuses)
        if self.enriched_since is not None:
            clauses.append("p.enriched_at >= ?::TIMESTAMPTZ")
            params.append(_iso(self.enriched_since))
        return clauses, params


def encode_cursor(sort: str, value: Any, domain: str) -> str:
    raw = json.dumps({"s": sort, "v": _iso(value), "d": domain}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        value, domain, cursor_sort = data["v"], data["d"], data["s"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadCursor("cursor is malformed: pass `next_cursor` from the previous page unchanged") from None
    if cursor_sort != sort or not isinstance(domain, str):
        raise BadCursor(f"cursor was issued for sort {cursor_sort!r}, not {sort!r}: restart without cursor")
    kind = SORTS[sort.lstrip("-")][1]
    if kind == "DOUBLE PRECISION" and not isinstance(value, int | float):
        raise BadCursor("cursor is malformed: pass `next_cursor` from the previous page unchanged")
    if kind != "DOUBLE PRECISION" and not isinstance(value, str):
        raise BadCursor("cursor is malformed: pass `next_cursor` from the previous page unchanged")
    if kind == "TIMESTAMPTZ":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise BadCursor(
                "cursor is malformed: pass `next_cursor` from the previous page unchanged"
            ) from None
    return value, domain


LIST_COLUMNS = """p.domain, p.company_name, s.icp_score, s.icp_tier, p.status, p.industry_naics,
       p.industry_label, p.country, p.employees, p.revenue_usd, p.monthly_visits, p.search_vendor,
       p.ecommerce_platform,
       p.enriched_at, s.score_reasons"""


LIST_NAMES = tuple(c.strip().split(".")[-1] for c in LIST_COLUMNS.split(","))


def list_companies(
    session: Session,
    flt: CompanyFilter,
    *,
    sort: str = DEFAULT_SORT,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    name = sort.lstrip("-")
    if name not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    descending = sort.startswith("-")
    expr, kind, null_value = SORTS[name]
    key = expr if name == "domain" else f"COALESCE({expr}, CAST({null_value} AS {kind}))"
    listing = getattr(session, "company_listing", None)
    if listing is not None:
        source, techs = f"{listing} p", "p.current_technologies"
    else:
        source = "marts.company_profiles p LEFT JOIN marts.icp_scores s ON s.domain = p.domain"
        techs = None
    decoded = decode_cursor(cursor, sort) if cursor else None
    index = getattr(session, "row_index", None) if listing is not None else None
    pages = getattr(session, "listing_index", None)
    if index is not None and pages is not None:
        # Ranked in memory where that answers exactly what the SQL below answers.
        ranked = ranked_page(pages, flt, sort, limit, decoded)
        if ranked is not None:
            domains, next_cursor = ranked
            return _page(index.rows(domains, LIST_NAMES), next_cursor, limit, sort)
    clauses, params = flt.where(techs)
    if decoded is not None:
        value, last_domain = decoded
        if name == "domain":
            clauses.append("p.domain < ?" if descending else "p.domain > ?")
            params.append(last_domain)
        else:
            op = "<" if descending else ">"
            clauses.append(f"({key} {op} CAST(? AS {kind}) OR ({key} = CAST(? AS {kind}) AND p.domain > ?))")
            params.extend([value, value, last_domain])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    direction = "DESC" if descending else "ASC"
    order = f"p.domain {direction}" if name == "domain" else f"{key} {direction}, p.domain ASC"
    # With the row index, the query only ranks (a top-N over two columns, ~4x cheaper than carrying
    # every column through it) and the page's columns are gathered from the index.
    columns = "p.domain" if index is not None else LIST_COLUMNS
    sql = f"SELECT {columns}, {key} AS sort_value FROM {source} {where} ORDER BY {order} LIMIT ?"
    if listing is not None:
        # One prebuilt table: the score columns live beside the profile columns.
        sql = sql.replace("s.icp_", "p.icp_").replace("s.score_reasons", "p.score_reasons")
    rows = session.rows(sql, [*params, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(sort, last["sort_value"], last["domain"])
    if index is not None:
        rows = index.rows([r["domain"] for r in rows], LIST_NAMES)
    return _page(rows, next_cursor, limit, sort)


def ranked_page(
    pages: Any, flt: CompanyFilter, sort: str, limit: int, decoded: tuple[Any, str] | None
) -> tuple[list[str], str | None] | None:
    """The page's domains and next cursor from the listing ranked in memory (`listing_index`), or
    None where only the SQL answers exactly. `decoded`: the cursor, `decode_cursor`'s answer."""
    page = pages.page(flt, sort, limit, decoded)
    if page is None:
        return None
    if len(page.domains) > limit:
        return page.domains[:limit], encode_cursor(sort, page.last_value, page.domains[limit - 1])
    return page.domains, None


def list_item(row: Row) -> Row:
    """A row of LIST_NAMES as a page lists it."""
    row.pop("sort_value", None)
    row["score_reasons"] = _json(row.get("score_reasons"), [])
    row["enriched_at"] = _iso(row.get("enriched_at"))
    return row


def _page(rows: list[Row], next_cursor: str | None, limit: int, sort: str) -> dict[str, Any]:
    return {"items": [list_item(r) for r in rows], "next_cursor": next_cursor, "limit": limit, "sort": sort}


# A denormalized copy of what `list_companies` reads, for a source that can build one per snapshot
# (DuckDB: in memory, once per snapshot): no join and no technology table scan per request.
LISTING_SQL = f"""
SELECT {LIST_COLUMNS},
       coalesce(t.techs, []) AS current_technologies
FROM marts.company_profiles p
LEFT JOIN marts.icp_scores s ON s.domain = p.domain
LEFT JOIN (
    SELECT domain, list(DISTINCT lower(technology)) AS techs
    FROM marts.fct_company_technology WHERE is_current GROUP BY domain
) t ON t.domain = p.domain
"""


# What LISTING_SQL reads, for a source that copies it into memory first (PostgreSQL).
_PROFILE_COLUMNS = (
    "domain", "company_name", "status", "industry_naics", "industry_label", "country", "employees",
    "revenue_usd", "monthly_visits", "search_vendor", "ecommerce_platform", "enriched_at",
)  # fmt: skip
LISTING_INPUTS: dict[str, dict[str, pl.DataType]] = {
    "marts.company_profiles": {c: PROFILE_SCHEMA[c] for c in _PROFILE_COLUMNS},
    "marts.icp_scores": {c: SCORE_SCHEMA[c] for c in ("domain", "icp_score", "icp_tier", "score_reasons")},
    "marts.fct_company_technology": {
        "domain": pl.String(),
        "technology": pl.String(),
        "is_current": pl.Boolean(),
    },
}


# -- technologies -------------------------------------------------------------------------------------


def technologies(session: Session, domain: str) -> dict[str, Any] | None:
    if not session.rows("SELECT 1 AS found FROM marts.company_profiles WHERE domain = ?", [domain]):
        return None
    stack = session.rows(
        "SELECT technology, technology_tag, is_premium, first_detected, last_detected, first_seen_at, "
        "removed_at, is_current, times_adopted FROM marts.fct_company_technology WHERE domain = ? "
        "ORDER BY is_current DESC, technology",
        [domain],
    )
    changes = session.rows(
        "SELECT technology, change_type, seen_at, provider FROM marts.fct_tech_changes "
        "WHERE domain = ? ORDER BY seen_at DESC, technology LIMIT 1000",
        [domain],
    )
    for row in (*stack, *changes):
        for k, v in row.items():
            row[k] = _iso(v)
    return {
        "domain": domain,
        "current": [r for r in stack if r["is_current"]],
        "history": stack,
        "changes": changes,
    }


# -- stats --------------------------------------------------------------------------------------------


def stats(session: Session) -> dict[str, Any]:
    tiers = session.rows("SELECT icp_tier AS k, count(*) AS n FROM marts.icp_scores GROUP BY icp_tier")
    statuses = session.rows("SELECT status AS k, count(*) AS n FROM marts.company_profiles GROUP BY status")
    fresh = session.rows(
        "SELECT count(*) AS companies, min(enriched_at) AS oldest, max(enriched_at) AS newest "
        "FROM marts.company_profiles"
    )[0]
    providers = session.rows(
        "SELECT provider, mode, domains_requested, domains_with_data, data_share, answered_share, calls, "
        "cost_usd, cost_per_domain_with_data_usd, avg_latency_ms, last_fetched_at "
        "FROM marts.provider_coverage_and_cost ORDER BY provider, mode"
    )
    for p in providers:
        p["last_fetched_at"] = _iso(p["last_fetched_at"])
    return {
        "companies": int(fresh["companies"]),
        "by_tier": {r["k"]: int(r["n"]) for r in tiers if r["k"] is not None},
        "by_status": {r["k"]: int(r["n"]) for r in statuses if r["k"] is not None},
        "providers": providers,
        "freshness": {
            "oldest_enriched_at": _iso(fresh["oldest"]),
            "newest_enriched_at": _iso(fresh["newest"]),
        },
    }
