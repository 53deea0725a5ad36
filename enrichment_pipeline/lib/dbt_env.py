"""WAREHOUSE_URL -> the environment variables `dbt_models/profiles.yml` reads.

dbt reads its connection from `profiles.yml`, which reads `DBT_*` variables, so
one dbt project builds on the DuckDB file or on PostgreSQL, whichever
WAREHOUSE_URL names. The result holds the PostgreSQL password: it belongs in the
environment of the dbt subprocess only, never in a log line or an event.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping

from psycopg.conninfo import conninfo_to_dict

from enrichment_pipeline.lib.warehouse import DuckDBWarehouse, PostgresWarehouse, WarehouseError, duckdb_path
from enrichment_pipeline.lib.warehouse.base import backend_for
from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresTarget

# dbt masks the value of every `DBT_ENV_SECRET_*` variable in its output (logs, errors, events)
# and refuses to render one anywhere but profiles.yml, so a model cannot print or store it.
PASSWORD_VAR = "DBT_ENV_SECRET_PG_PASSWORD"

# Every variable `dbt_env` may set; the others of a previous call are cleared with these.
DBT_ENV_NAMES = (
    "DBT_TARGET",
    "DBT_DUCKDB_PATH",
    "DBT_PG_HOST",
    "DBT_PG_PORT",
    "DBT_PG_USER",
    PASSWORD_VAR,
    "DBT_PG_PASSWORD",  # the name before the secret convention: never set, cleared if inherited
    "DBT_PG_DATABASE",
    "DBT_PG_SSLMODE",
    "DBT_PG_SSLROOTCERT",
    "DBT_PG_SSLCERT",
    "DBT_PG_SSLKEY",
)


def dbt_env(url: str) -> dict[str, str]:
    """The `DBT_*` variables for the warehouse at `url` (same URL forms as `Warehouse.open`).

    DuckDB: `DBT_TARGET=duckdb` and the absolute path of the file. PostgreSQL:
    `DBT_TARGET=postgres` and host, port, user, password (as `DBT_ENV_SECRET_PG_PASSWORD`),
    database, and the same TLS settings as the warehouse connection (`sslmode`, `require` by
    default for a remote server, and certificate files); percent-escapes in the URL are decoded.
    """
    backend = backend_for(url)
    if backend is DuckDBWarehouse:
        return {"DBT_TARGET": "duckdb", "DBT_DUCKDB_PATH": str(duckdb_path(url).expanduser().absolute())}
    if backend is PostgresWarehouse:
        target = PostgresTarget(url)  # validates the URL; its errors never show the password
        params = conninfo_to_dict(target.conninfo)
        env = {
            "DBT_TARGET": "postgres",
            "DBT_PG_HOST": target.host,
            "DBT_PG_PORT": target.port,
            "DBT_PG_USER": target.user or "postgres",
            PASSWORD_VAR: str(params.get("password") or ""),
            "DBT_PG_DATABASE": target.dbname or target.user or "postgres",
            "DBT_PG_SSLMODE": target.sslmode or "prefer",
        }
        for key, value in target.ssl_files.items():
            if value:
                env[f"DBT_PG_{key.upper()}"] = value
        return env
    raise WarehouseError(f"no dbt target for {backend.__name__}")  # pragma: no cover


def redacted(env: dict[str, str]) -> dict[str, str]:
    """The same variables with the password hidden, for showing which target dbt uses."""
    return {k: ("***" if k == PASSWORD_VAR and v else v) for k, v in env.items()}


_ENVIRON_LOCK = threading.Lock()


@contextlib.contextmanager
def dbt_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set the `DBT_*` variables on this process while a dbt subprocess is being started.

    dagster-dbt's `DbtCliResource.cli` has no `env` argument: it copies
    `os.environ` when it starts dbt (and loads the profile in-process to get an
    adapter handle). So the variables are set for the duration of that call only,
    any other `DBT_*` connection variable is hidden meanwhile, and everything is
    restored afterwards. A lock keeps two threads from interleaving.
    """
    with _ENVIRON_LOCK:
        names = {*DBT_ENV_NAMES, *env}
        saved = {name: os.environ.get(name) for name in names}
        try:
            for name in DBT_ENV_NAMES:
                os.environ.pop(name, None)
            os.environ.update(env)
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
