"""Raw provider payloads -> typed staging frames (pure functions)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import polars as pl

from enrichment_pipeline.lib.field_rules import field_problem
from enrichment_pipeline.lib.fields import FIELD_TYPES
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.builtwith import (
    DOMAIN_API_ENDPOINT,
    FREE_API_ENDPOINT,
    BuiltWith,
    groups_from_free_api,
    technologies_from_domain_api,
)
from enrichment_pipeline.lib.providers.similarweb import traffic_from_payloads

TECH_SCHEMA = {
    "domain": pl.String,
    "technology": pl.String,
    "tag": pl.String,
    "categories": pl.List(pl.String),
    "first_detected": pl.Datetime("us", "UTC"),
    "last_detected": pl.Datetime("us", "UTC"),
    "is_premium": pl.Boolean,
    "path": pl.String,
    "parent": pl.String,
    # False: BuiltWith still lists it but has not detected it for a long time before
    # its last crawl; history only, never the current stack (see providers/builtwith.py).
    "is_live": pl.Boolean,
    "provider": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
}
GROUP_SCHEMA = {
    "domain": pl.String,
    "tech_group": pl.String,
    "live": pl.Int64,
    "dead": pl.Int64,
    "latest": pl.Datetime("us", "UTC"),
    "oldest": pl.Datetime("us", "UTC"),
    "observed_at": pl.Datetime("us", "UTC"),
}
TRAFFIC_SCHEMA = {
    "domain": pl.String,
    "monthly_visits": pl.Float64,
    "visits_growth": pl.Float64,
    "bounce_rate": pl.Float64,
    "pages_per_visit": pl.Float64,
    "avg_visit_duration_s": pl.Float64,
    "global_rank": pl.Int64,
    "search_share": pl.Float64,
    "direct_share": pl.Float64,
    "referral_share": pl.Float64,
    "social_share": pl.Float64,
    "period_start": pl.Date,
    "period_end": pl.Date,
    "provider": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
}


def _ok(responses: pl.DataFrame, provider: str, endpoint: str | None = None) -> pl.DataFrame:
    frame = responses.filter((pl.col("provider") == provider) & (pl.col("status") == "ok"))
    if endpoint:
        frame = frame.filter(pl.col("endpoint") == endpoint)
    return frame


# (provider, domain, reason) of stored answers a builder could not read: the
# staging asset quarantines them and the profile says so (never a crash).
Refused = list[tuple[str, str, str]]


def builtwith_technologies(responses: pl.DataFrame, refused: Refused | None = None) -> pl.DataFrame:
    answers: list[_Answer] = []
    for row in _ok(responses, "builtwith", "domain_api").iter_rows(named=True):
        rows: list[dict[str, Any]] | Exception
        try:
            techs = technologies_from_domain_api(row["domain"], json.loads(row["payload"]))
            rows = [{**t, "provider": "builtwith", "observed_at": row["fetched_at"]} for t in techs]
        except Exception as exc:  # one unreadable answer costs its own rows only
            rows = exc
        answers.append(("builtwith", row["domain"], rows))
    return _frame(answers, TECH_SCHEMA, refused)


def builtwith_groups(responses: pl.DataFrame, refused: Refused | None = None) -> pl.DataFrame:
    answers: list[_Answer] = []
    for row in _ok(responses, "builtwith", "free_api").iter_rows(named=True):
        rows: list[dict[str, Any]] | Exception
        try:
            rows = []
            for group in groups_from_free_api(row["domain"], json.loads(row["payload"])):
                group["tech_group"] = group.pop("group")
                rows.append({**group, "observed_at": row["fetched_at"]})
        except Exception as exc:
            rows = exc
        answers.append(("builtwith", row["domain"], rows))
    return _frame(answers, GROUP_SCHEMA, refused)


# (provider, domain, the answer's staging rows or why it could not be read)
_Answer = tuple[str, str, list[dict[str, Any]] | Exception]


def _frame(
    answers: list[_Answer],
    schema: Mapping[str, pl.DataType],
    refused: Refused | None,
) -> pl.DataFrame:
    """One frame of every answer's rows; an answer that could not be read, or whose values do not
    fit `schema`, is refused (in the answers' order) and costs its own rows only.

    The frame of all answers is tried first: when it fits (the usual case), no answer needs a
    frame of its own to show that it fits.
    """
    try:
        frame = _records_frame([r for _, _, rows in answers if isinstance(rows, list) for r in rows], schema)
    except Exception:
        frame = None  # some answer's values do not fit: each answer is checked below
    kept: list[dict[str, Any]] = []
    for provider, domain, rows in answers:
        problem = rows if isinstance(rows, Exception) else None
        if problem is None and frame is None:
            try:
                _fits(rows, schema)
            except Exception as exc:
                problem = exc
        if problem is not None:
            _refuse(refused, provider, domain, problem)
        elif frame is None:
            kept.extend(rows)
    return frame if frame is not None else _records_frame(kept, schema)


def _records_frame(records: list[dict[str, Any]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(records, schema=dict(schema)) if records else pl.DataFrame(schema=dict(schema))


def _refuse(refused: Refused | None, provider: str, domain: str, exc: BaseException) -> None:
    if refused is not None:
        refused.append((provider, domain, _reason(exc)))


def similarweb_traffic(responses: pl.DataFrame, refused: Refused | None = None) -> pl.DataFrame:
    payloads: dict[str, dict[str, dict]] = defaultdict(dict)
    observed: dict[str, object] = {}
    for row in _ok(responses, "similarweb").iter_rows(named=True):
        try:
            payloads[row["domain"]][row["endpoint"]] = json.loads(row["payload"])
        except Exception as exc:
            _refuse(refused, "similarweb", row["domain"], exc)
            continue
        observed[row["domain"]] = max(observed.get(row["domain"], row["fetched_at"]), row["fetched_at"])
    records = []
    for domain, by_endpoint in payloads.items():
        try:
            record = {
                **traffic_from_payloads(domain, by_endpoint),
                "provider": "similarweb",
                "observed_at": observed[domain],
            }
            _fits(record, {k: v for k, v in TRAFFIC_SCHEMA.items() if k in record})
        except Exception as exc:
            _refuse(refused, "similarweb", domain, exc)
            continue
        records.append(record)
    if not records:
        return pl.DataFrame(schema=TRAFFIC_SCHEMA)
    return pl.DataFrame(records).select(
        *(
            pl.col(c).cast(t) if c in records[0] else pl.lit(None, dtype=t).alias(c)
            for c, t in TRAFFIC_SCHEMA.items()
        )
    )


def _plain_str(value: Any) -> bool:
    # Non-ASCII text may hold a lone surrogate (`"\\ud800"` in JSON), which polars refuses.
    return type(value) is str and value.isascii()


def _plain_int64(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _plain_str_list(value: Any) -> bool:
    return type(value) is list and all(v is None or _plain_str(v) for v in value)


def _plain_utc_datetime(value: Any) -> bool:
    return type(value) is datetime and value.tzinfo is UTC


_PLAIN: list[tuple[pl.DataType, Callable[[Any], bool]]] = [
    (pl.String(), _plain_str),
    (pl.Int64(), _plain_int64),
    (pl.Float64(), lambda v: type(v) is float),
    (pl.Boolean(), lambda v: type(v) is bool),
    (pl.List(pl.String()), _plain_str_list),
    (pl.Datetime("us", "UTC"), _plain_utc_datetime),
    (pl.Date(), lambda v: type(v) is date),
]


@lru_cache(maxsize=64)
def _plain_checks(
    columns: tuple[tuple[str, pl.DataType], ...],
) -> tuple[tuple[str, Callable[[Any], bool]], ...]:
    """Per column, a check of the values polars certainly stores under its type; a type not listed
    in `_PLAIN` has none (always False), so its values go to polars."""
    return tuple(
        (name, next((check for plain, check in _PLAIN if dtype == plain), lambda _v: False))
        for name, dtype in columns
    )


def _fits(values: Mapping[str, Any] | list[Mapping[str, Any]], schema: Mapping[str, pl.DataType]) -> None:
    """Raise when `values` (one record or many) cannot be stored under `schema` (an int beyond
    64 bits, a wrong type). Records whose every value is plainly of its column's type (ASCII
    text, a 64-bit int, a UTC datetime...) need no check; any other value is left to polars, in
    one frame for all records: cheap even for 500 technologies."""
    records = values if isinstance(values, list) else [values]
    if not records:
        return
    checks = _plain_checks(tuple(schema.items()))
    if all(isinstance(record, Mapping) for record in records) and all(
        record[name] is None or check(record[name])
        for record in records
        for name, check in checks
        if name in record
    ):
        return
    pl.DataFrame([{k: r.get(k) for k in schema} for r in records], schema=dict(schema))


def read_answer(
    provider: Provider, endpoint: str, domain: str, payload: Any
) -> tuple[str | None, dict[str, Any]]:
    """Why one `ok` answer cannot be read into the staging tables (None when it can), and the
    standard fields it gives alone (`provider.extract`; empty when it cannot be read).

    Runs the same code staging runs on the answer (the provider's `extract`, the
    BuiltWith and SimilarWeb frame builders) and checks the values fit the
    tables' types, so a body that would crash a later step is a `parse_error`
    row for this (provider, endpoint, domain) now, with a short reason. A BuiltWith
    Domain API answer's technologies are read once, for its fields and its rows.
    """
    try:
        json.dumps(payload, allow_nan=True)
        rows = None
        if (
            isinstance(provider, BuiltWith)
            and endpoint == DOMAIN_API_ENDPOINT
            and isinstance(payload, Mapping)
        ):
            values, rows = provider.read_domain_api(domain, payload)
        else:
            values = provider.extract(domain, {endpoint: payload})
        _fits(values, FIELD_TYPES)
        problem = field_problem(values)
        if problem is not None:
            return f"answer breaks the staging contract: {problem}", {}
        if rows is not None:
            _fits(rows, {k: v for k, v in TECH_SCHEMA.items() if k not in ("provider", "observed_at")})
        if provider.name == "builtwith" and endpoint == FREE_API_ENDPOINT and isinstance(payload, Mapping):
            shaped = [{**row, "tech_group": row["group"]} for row in groups_from_free_api(domain, payload)]
            _fits(shaped, {k: v for k, v in GROUP_SCHEMA.items() if k != "observed_at"})
        if provider.name == "similarweb" and isinstance(payload, Mapping):
            traffic = traffic_from_payloads(domain, {endpoint: payload})
            _fits(traffic, {k: v for k, v in TRAFFIC_SCHEMA.items() if k in traffic})
            problem = field_problem(traffic)
            if problem is not None:
                return f"answer breaks the staging contract: {problem}", {}
    except Exception as exc:  # any failure is this answer's problem, not the run's
        return _reason(exc), {}
    return None, values


def _reason(exc: BaseException) -> str:
    """A short reason naming the failure, never the payload's content (it may be huge or hostile)."""
    return f"answer could not be read ({type(exc).__name__})"


def provider_fields_schema() -> dict[str, pl.DataType]:
    return {
        "provider": pl.String(),
        "domain": pl.String(),
        "observed_at": pl.Datetime("us", "UTC"),
        **FIELD_TYPES,
    }


def provider_fields(
    responses: pl.DataFrame, providers: Mapping[str, Provider], refused: Refused | None = None
) -> pl.DataFrame:
    """One row per (provider, domain): each provider's answers mapped onto the standard fields."""
    schema = provider_fields_schema()
    ok = responses.filter((pl.col("status") == "ok") & pl.col("provider").is_in(list(providers)))
    payloads: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    observed: dict[tuple[str, str], Any] = {}
    for provider, domain, endpoint, payload, fetched_at in ok.select(
        "provider", "domain", "endpoint", "payload", "fetched_at"
    ).iter_rows():
        key = (provider, domain)
        try:
            payloads[key][endpoint] = json.loads(payload) if payload else None
        except Exception as exc:
            _refuse(refused, provider, domain, exc)
            continue
        observed[key] = max(observed.get(key, fetched_at), fetched_at)
    answers: list[_Answer] = []
    for (provider, domain), by_endpoint in payloads.items():
        rows: list[dict[str, Any]] | Exception
        try:
            values = providers[provider].extract(domain, by_endpoint)
            record = {
                "provider": provider,
                "domain": domain,
                "observed_at": observed[(provider, domain)],
                **{f: values.get(f) for f in FIELD_TYPES},
            }
            rows = [record] if values else []
        except Exception as exc:
            rows = exc
        answers.append((provider, domain, rows))
    return _frame(answers, schema, refused)
