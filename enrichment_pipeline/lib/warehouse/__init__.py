"""The warehouse: versioned DDL, idempotent writes, the quota ledger.

DuckDB (a file, the default) and PostgreSQL share the same tables, columns and
rules: `base.Warehouse` holds every rule in shared SQL, `duckdb_backend` and
`postgres_backend` only what differs (connecting, placeholders, bulk loads,
reading frames, locking). `Warehouse.open(url)` picks the backend by URL scheme
among the dialects imported here.
"""

from enrichment_pipeline.lib.warehouse.base import ACCEPTED_URLS, Warehouse
from enrichment_pipeline.lib.warehouse.duckdb_backend import DuckDBWarehouse, duckdb_path
from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresWarehouse
from enrichment_pipeline.lib.warehouse.schema import (
    JOURNAL,
    MIGRATIONS,
    QUOTA,
    RESPONSES,
    SCHEMA_MIGRATIONS,
    ResponseRow,
    WarehouseError,
    create_table_sql,
    sql_type,
)

__all__ = [
    "ACCEPTED_URLS",
    "JOURNAL",
    "MIGRATIONS",
    "QUOTA",
    "RESPONSES",
    "SCHEMA_MIGRATIONS",
    "DuckDBWarehouse",
    "PostgresWarehouse",
    "ResponseRow",
    "Warehouse",
    "WarehouseError",
    "create_table_sql",
    "duckdb_path",
    "sql_type",
]
