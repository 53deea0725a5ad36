"""Pages of the company listing (`list_companies`) ranked in memory with numpy, per data version.

DuckDB ranks a filtered top-N over the listing in 4-13 ms at 100,000 companies (a
technology filter, a list scan, is the dearest); a page asked for the first time
paid that on every request. Here every filter is a vectorized comparison over
arrays built once per version, and every sort order is precomputed, so a page is
a mask, one gather and the first `limit + 1` positions: well under a millisecond.

It answers exactly what the SQL answers (`company_queries.list_companies` keeps the
SQL as the definition, and a test compares the two over random filters, sorts and
cursors): the same NULL stand-ins in sort keys, ties broken by domain ascending,
NULLs failing every comparison, string comparisons as DuckDB makes them (code
point order; `upper`/`lower` computed by DuckDB when the arrays are built). Where
exactness is not certain (NaN or -0.0 in a column, duplicate or NULL domains, a
cursor value this API would not have issued) it answers None and the SQL runs.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Numbers a cursor may carry that float64 holds exactly, as DuckDB's cast would.
_EXACT_INT = 2**53

# What the arrays are built from: the listing's columns as the SQL compares them.
_BUILD_SQL = """
SELECT domain, icp_score, icp_tier, status, industry_naics,
       upper(country) AS country_cmp,
       lower(search_vendor) AS search_vendor_cmp,
       lower(ecommerce_platform) AS ecommerce_platform_cmp,
       CAST(employees AS DOUBLE) AS employees,
       CAST(revenue_usd AS DOUBLE) AS revenue_usd,
       CAST(monthly_visits AS DOUBLE) AS monthly_visits,
       epoch_us(enriched_at) AS enriched_at_us,
       current_technologies
FROM {table}
"""
_NUMBER_SORTS = ("icp_score", "monthly_visits", "employees", "revenue_usd")
_CODED = {
    "icp_tier": "icp_tier",
    "status": "status",
    "industry_naics": "industry_naics",
    "country": "country_cmp",
    "search_vendor": "search_vendor_cmp",
    "ecommerce_platform": "ecommerce_platform_cmp",
}


@dataclass(frozen=True)
class Page:
    domains: list[str]  # up to limit + 1, in order
    last_value: Any  # the sort value of domains[limit - 1] as the SQL returns it (when there are more)


class _Coded:
    """A string column as integer codes; NULL is -1, so it equals nothing."""

    def __init__(self, column: pl.Series) -> None:
        values = column.drop_nulls().unique().to_list()
        self.codes_of = {v: i for i, v in enumerate(values)}
        self.codes = column.replace_strict(self.codes_of, default=-1, return_dtype=pl.Int32).to_numpy()

    def among(self, wanted: Sequence[str]) -> np.ndarray:
        codes = [self.codes_of[v] for v in wanted if v in self.codes_of]
        if not codes:
            return np.zeros(len(self.codes), dtype=bool)
        if len(codes) == 1:
            return self.codes == codes[0]
        return np.isin(self.codes, codes)


class ListingIndex:
    def __init__(self, frame: pl.DataFrame) -> None:
        n = frame.height
        domains = frame.get_column("domain")
        if domains.null_count() or domains.n_unique() != n:
            raise ValueError("the listing's domains are not unique and non-null")
        self.n = n
        self.domains: list[str] = domains.to_list()
        order = sorted(range(n), key=self.domains.__getitem__)  # code point order, as DuckDB's
        self.sorted_domains = [self.domains[i] for i in order]
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)

        # Sort keys with the SQL's NULL stand-ins; `null` masks for comparisons (NULL fails them).
        self.keys: dict[str, np.ndarray] = {}
        self.null: dict[str, np.ndarray] = {}
        self.inexact: set[str] = set()
        for name in _NUMBER_SORTS:
            column = frame.get_column(name)
            values = column.fill_null(-1.0).to_numpy().astype(np.float64)
            if np.isnan(values).any() or (np.signbit(values) & (values == 0)).any():
                self.inexact.add(name)  # DuckDB orders NaN and -0.0 its own way
            self.keys[name] = values
            self.null[name] = column.is_null().to_numpy()
        enriched = frame.get_column("enriched_at_us")
        self.keys["enriched_at"] = enriched.fill_null(0).to_numpy().astype(np.int64)
        self.null["enriched_at"] = enriched.is_null().to_numpy()
        self.coded = {name: _Coded(frame.get_column(column)) for name, column in _CODED.items()}

        lists = frame.get_column("current_technologies")
        techs = frame.select(pl.int_range(n, dtype=pl.Int64).alias("position"), lists.alias("tech")).explode(
            "tech"
        )
        # A NULL element is one `list_contains` treats its own way: then technology filters are
        # left to the SQL.
        self.techs_exact = not lists.list.eval(pl.element().is_null()).list.any().any()
        grouped = techs.drop_nulls("tech").group_by("tech").agg(pl.col("position"))
        self.tech_positions = {
            tech: np.unique(np.asarray(positions, dtype=np.int64))
            for tech, positions in zip(
                grouped.get_column("tech").to_list(), grouped.get_column("position").to_list(), strict=True
            )
        }

        # Every order the API offers: ORDER BY key dir, domain ASC (domain alone for `domain`).
        self.orders: dict[tuple[str, bool], np.ndarray] = {
            ("domain", False): np.asarray(order, dtype=np.int64),
            ("domain", True): np.asarray(order[::-1], dtype=np.int64),
        }
        for name, key in self.keys.items():
            self.orders[(name, False)] = np.lexsort((self.rank, key))
            self.orders[(name, True)] = np.lexsort((self.rank, -key))

    @classmethod
    def build(cls, conn: duckdb.DuckDBPyConnection, table: str) -> ListingIndex:
        """From the listing table `table` (LISTING_SQL's columns) of a DuckDB connection."""
        frame = pl.from_arrow(conn.sql(_BUILD_SQL.format(table=table)).arrow())
        assert isinstance(frame, pl.DataFrame)
        return cls(frame)

    def __len__(self) -> int:
        return self.n

    def page(self, flt: Any, sort: str, limit: int, cursor: tuple[Any, str] | None) -> Page | None:
        """The first `limit + 1` domains of the page `list_companies` answers, or None where only
        the SQL answers exactly. `flt`: a `CompanyFilter`; `cursor`: the decoded (value, domain)."""
        name = sort.lstrip("-")
        descending = sort.startswith("-")
        if getattr(flt, "extra", None) or name in self.inexact or (name, descending) not in self.orders:
            return None
        mask = self._mask(flt)
        if mask is None:
            return None
        if cursor is not None:
            after = self._after(name, descending, *cursor)
            if after is None:
                return None
            mask &= after
        order = self.orders[(name, descending)]
        positions = order[np.flatnonzero(mask[order])[: limit + 1]]
        domains = [self.domains[i] for i in positions.tolist()]
        last_value = self._value(name, int(positions[limit - 1])) if len(positions) > limit else None
        return Page(domains, last_value)

    def _mask(self, flt: Any) -> np.ndarray | None:
        mask = np.ones(self.n, dtype=bool)
        if flt.tiers:
            mask &= self.coded["icp_tier"].among(flt.tiers)
        for bound, keep in ((flt.min_score, np.greater_equal), (flt.max_score, np.less_equal)):
            if bound is not None:
                if "icp_score" in self.inexact or not _exact_number(bound):
                    return None
                mask &= keep(self.keys["icp_score"], float(bound)) & ~self.null["icp_score"]
        # Compared with the value cased as `CompanyFilter.where` passes it to the SQL.
        if flt.industry:
            mask &= self.coded["industry_naics"].among([flt.industry])
        if flt.country:
            mask &= self.coded["country"].among([flt.country.upper()])
        if flt.search_vendor:
            mask &= self.coded["search_vendor"].among([flt.search_vendor.lower()])
        if flt.ecommerce_platform:
            mask &= self.coded["ecommerce_platform"].among([flt.ecommerce_platform.lower()])
        if flt.technologies or flt.without_technologies:
            if not self.techs_exact:
                return None
            for tech in flt.technologies:
                mask &= self._has(tech.lower())
            for tech in flt.without_technologies:
                mask &= ~self._has(tech.lower())
        if flt.statuses:
            mask &= self.coded["status"].among(flt.statuses)
        if flt.enriched_since is not None:
            since = _micros(flt.enriched_since)
            mask &= (self.keys["enriched_at"] >= since) & ~self.null["enriched_at"]
        return mask

    def _has(self, tech: str) -> np.ndarray:
        present = np.zeros(self.n, dtype=bool)
        positions = self.tech_positions.get(tech)
        if positions is not None:
            present[positions] = True
        return present

    def _after(self, name: str, descending: bool, value: Any, last_domain: str) -> np.ndarray | None:
        """Rows after the cursor: `(key op value) OR (key = value AND domain > last)`."""
        if not last_domain.isascii() or "\x00" in last_domain:
            return None
        later_domain = self.rank >= bisect.bisect_right(self.sorted_domains, last_domain)
        if name == "domain":
            if descending:
                return self.rank < bisect.bisect_left(self.sorted_domains, last_domain)
            return later_domain
        key = self.keys[name]
        if name == "enriched_at":
            if not isinstance(value, str):
                return None
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return None
            if parsed.tzinfo is None or parsed.astimezone(UTC).isoformat().replace("+00:00", "Z") != value:
                return None  # not a value this API issues: the SQL casts it its own way
            bound: float | int = _micros(parsed)
        else:
            if isinstance(value, bool) or not _exact_number(value):
                return None
            bound = float(value)
        beyond = key < bound if descending else key > bound
        return beyond | ((key == bound) & later_domain)

    def _value(self, name: str, position: int) -> Any:
        if name == "domain":
            return self.domains[position]
        if name == "enriched_at":
            return _EPOCH + timedelta(microseconds=int(self.keys[name][position]))
        return float(self.keys[name][position])


def _exact_number(value: Any) -> bool:
    if isinstance(value, int):
        return abs(value) <= _EXACT_INT
    return isinstance(value, float) and math.isfinite(value)


def _micros(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
