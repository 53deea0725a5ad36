"""What the warehouse holds, whatever the database: tables, migrations, rows, column types."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from enrichment_pipeline.lib.providers.base import ANSWERED

RESPONSES = "raw.provider_responses"
# Answers of domains whose enrichment is still under way: each is durable the moment it
# lands here, and moves to RESPONSES with the rest of its domain in one transaction.
JOURNAL = "raw.response_journal"
QUOTA = "raw.provider_quota"
DOMAIN_REQUESTS = "raw.domain_requests"  # raw text in, normalized by the intake sensor
# Unqualified: DuckDB resolves it to `main` (where earlier versions created it), PostgreSQL to `public`.
SCHEMA_MIGRATIONS = "schema_migrations"


def _answers_table(name: str) -> str:
    """The provider answers' table as first created; the journal is created with the same columns
    and key (later columns are added to both by later migrations). Released migrations use it:
    never edit it, add a migration instead."""
    return f"""CREATE TABLE IF NOT EXISTS {name} (
                provider VARCHAR NOT NULL,
                endpoint VARCHAR NOT NULL,
                domain VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                http_status INTEGER,
                payload VARCHAR,
                detail VARCHAR,
                fetched_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                attempts INTEGER NOT NULL,
                latency_ms DOUBLE PRECISION,
                cost_usd DOUBLE PRECISION NOT NULL,
                mode VARCHAR NOT NULL,
                run_id VARCHAR,
                PRIMARY KEY (provider, endpoint, domain)
            )"""


# How a table's schema changes: the tables whose rows are kept (raw.*, the quota ledger) change
# only here. Each migration runs once, in order, inside one transaction, so an older warehouse
# opens and upgrades; never edit a released one — add the next version instead. Use SQL both
# DuckDB and PostgreSQL accept (the types `sql_type` returns, `IF NOT EXISTS`).
# A derived table (staging.*, marts.*) is never migrated: its schema is the polars schema its
# writer passes to `Warehouse.replace_table`, which recreates the table when that schema changed.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "raw responses, quota ledger, staging and marts",
        [
            "CREATE SCHEMA IF NOT EXISTS raw",
            "CREATE SCHEMA IF NOT EXISTS staging",
            "CREATE SCHEMA IF NOT EXISTS marts",
            _answers_table(RESPONSES),
            f"""CREATE TABLE IF NOT EXISTS {QUOTA} (
                provider VARCHAR NOT NULL,
                day DATE NOT NULL,
                calls INTEGER NOT NULL,
                PRIMARY KEY (provider, day)
            )""",
            """CREATE TABLE IF NOT EXISTS marts.tech_changes (
                domain VARCHAR NOT NULL,
                technology VARCHAR NOT NULL,
                change VARCHAR NOT NULL,
                seen_at TIMESTAMPTZ NOT NULL,
                provider VARCHAR NOT NULL
            )""",
        ],
    ),
    (
        2,
        "domain requests (the intake sensor's queue)",
        [
            "CREATE SEQUENCE IF NOT EXISTS raw.domain_request_ids",
            f"""CREATE TABLE IF NOT EXISTS {DOMAIN_REQUESTS} (
                request_id BIGINT PRIMARY KEY DEFAULT nextval('raw.domain_request_ids'),
                domain VARCHAR NOT NULL,
                requested_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
                requested_by VARCHAR,
                processed_at TIMESTAMPTZ,
                status VARCHAR NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'accepted', 'rejected')),
                reason VARCHAR,
                partition_key VARCHAR
            )""",
        ],
    ),
    (
        3,
        "response journal (answers kept as they arrive, before their domain is complete)",
        [
            _answers_table(JOURNAL),
        ],
    ),
    (
        4,
        "provider responses: time waited for a rate-limit slot, apart from the HTTP round trip",
        [
            f"ALTER TABLE {RESPONSES} ADD COLUMN IF NOT EXISTS wait_ms DOUBLE PRECISION",
            f"ALTER TABLE {JOURNAL} ADD COLUMN IF NOT EXISTS wait_ms DOUBLE PRECISION",
        ],
    ),
]


@dataclass(frozen=True)
class ResponseRow:
    """One current answer of one provider endpoint for one domain."""

    provider: str
    endpoint: str
    domain: str
    status: str
    http_status: int | None
    payload: Any
    detail: str | None
    fetched_at: datetime
    expires_at: datetime
    attempts: int
    latency_ms: float | None
    cost_usd: float
    mode: str
    run_id: str | None = None
    # latency_ms: the provider's HTTP round trips; wait_ms: time spent waiting to send
    # (rate-limit slot, a pause the provider asked for), so the two never blur.
    wait_ms: float | None = None


class WarehouseError(RuntimeError):
    """A warehouse problem worth one line to the user (bad URL, server down, nothing there yet)."""


RESPONSE_KEY = ("provider", "endpoint", "domain")
RESPONSE_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "endpoint": pl.String(),
    "domain": pl.String(),
    "status": pl.String(),
    "http_status": pl.Int32(),
    "payload": pl.String(),
    "detail": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
    "expires_at": pl.Datetime("us", "UTC"),
    "attempts": pl.Int32(),
    "latency_ms": pl.Float64(),
    "cost_usd": pl.Float64(),
    "mode": pl.String(),
    "run_id": pl.String(),
    "wait_ms": pl.Float64(),
}


def responses_frame(rows: Iterable[ResponseRow]) -> pl.DataFrame:
    """Rows as a typed frame, payloads as compact JSON text (TypeError if not JSON-able)."""
    records = [
        {
            **row.__dict__,
            "payload": None if row.payload is None else json.dumps(row.payload, separators=(",", ":")),
        }
        for row in rows
    ]
    return pl.DataFrame(records, schema=RESPONSE_SCHEMA)


_SQL_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE PRECISION",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMPTZ",
}


def sql_type(dtype: pl.DataType | type[pl.DataType]) -> str:
    """The column type, in SQL that DuckDB and PostgreSQL both read the same way."""
    if isinstance(dtype, pl.List) and dtype.inner == pl.String:
        return "VARCHAR[]"
    name = _SQL_TYPES.get(dtype.base_type())
    if name is None:
        raise WarehouseError(f"no SQL type for {dtype}")
    return name


def column_definitions(schema: dict[str, pl.DataType], primary_key: Sequence[str] = ()) -> str:
    columns = [f'"{name}" {sql_type(dtype)}' for name, dtype in schema.items()]
    if primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(primary_key)})")
    return "(\n    " + ",\n    ".join(columns) + "\n)"


def create_table_sql(table: str, schema: dict[str, pl.DataType], primary_key: Sequence[str] = ()) -> str:
    return f"CREATE TABLE IF NOT EXISTS {table} {column_definitions(schema, primary_key)}"


def answered_sql(column: str = "status") -> str:
    """SQL that is true where `column` holds an answer (`ANSWERED`), for any WHERE or CASE."""
    statuses = ", ".join(f"'{status}'" for status in ANSWERED)
    return f"({column} IN ({statuses}))"


def quoted_columns(columns: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)
