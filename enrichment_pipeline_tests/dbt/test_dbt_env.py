"""WAREHOUSE_URL -> DBT_* variables, and setting them only while dbt starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enrichment_pipeline.lib.dbt_env import DBT_ENV_NAMES, dbt_env, dbt_environment, redacted
from enrichment_pipeline.lib.warehouse import WarehouseError

PASSWORD = "S3NTINEL-pw"


def test_duckdb_url_gives_the_absolute_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert dbt_env("duckdb:///data/sandbox.duckdb") == {
        "DBT_TARGET": "duckdb",
        "DBT_DUCKDB_PATH": str(tmp_path / "data" / "sandbox.duckdb"),
    }
    assert dbt_env(f"duckdb:///{tmp_path}/w.duckdb")["DBT_DUCKDB_PATH"] == str(tmp_path / "w.duckdb")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"])
def test_postgres_url_gives_every_connection_field(scheme: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    env = dbt_env(f"{scheme}://etl:{PASSWORD}%40x@db.internal:6543/warehouse?sslmode=require")
    assert env == {
        "DBT_TARGET": "postgres",
        "DBT_PG_HOST": "db.internal",
        "DBT_PG_PORT": "6543",
        "DBT_PG_USER": "etl",
        "DBT_ENV_SECRET_PG_PASSWORD": f"{PASSWORD}@x",  # percent-escapes decoded
        "DBT_PG_DATABASE": "warehouse",
        "DBT_PG_SSLMODE": "require",
    }
    assert PASSWORD not in str(redacted(env))


def test_postgres_defaults():
    env = dbt_env("postgresql://postgres@127.0.0.1/test")
    assert (env["DBT_PG_PORT"], env["DBT_ENV_SECRET_PG_PASSWORD"], env["DBT_PG_DATABASE"]) == (
        "5432",
        "",
        "test",
    )
    assert env["DBT_PG_SSLMODE"] == "prefer"  # libpq's default, on this machine only


@pytest.mark.parametrize("url", ["mysql://u:S3NTINEL-pw@h/db", "sqlite:///x.db", "not a url"])
def test_unsupported_url_is_one_clear_error_without_the_password(url: str):
    with pytest.raises(WarehouseError) as error:
        dbt_env(url)
    assert "unsupported WAREHOUSE_URL" in str(error.value)
    assert PASSWORD not in str(error.value)


def test_environment_is_set_only_inside_and_restored(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DBT_TARGET", "from-the-shell")
    monkeypatch.setenv("DBT_PG_HOST", "shell-host")  # not in the new env: hidden meanwhile
    monkeypatch.delenv("DBT_DUCKDB_PATH", raising=False)
    env = {"DBT_TARGET": "duckdb", "DBT_DUCKDB_PATH": "/tmp/w.duckdb"}

    with dbt_environment(env):
        assert {n: os.environ.get(n) for n in DBT_ENV_NAMES if n in os.environ} == env

    assert os.environ["DBT_TARGET"] == "from-the-shell"
    assert os.environ["DBT_PG_HOST"] == "shell-host"
    assert "DBT_DUCKDB_PATH" not in os.environ


def test_environment_is_restored_after_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DBT_ENV_SECRET_PG_PASSWORD", raising=False)
    with pytest.raises(RuntimeError), dbt_environment({"DBT_ENV_SECRET_PG_PASSWORD": PASSWORD}):
        raise RuntimeError("dbt failed to start")
    assert "DBT_ENV_SECRET_PG_PASSWORD" not in os.environ


def test_password_only_travels_as_a_dbt_secret_variable():
    env = dbt_env(f"postgresql://etl:{PASSWORD}@db.internal/wh")
    holders = [name for name, value in env.items() if PASSWORD in value]
    assert holders == ["DBT_ENV_SECRET_PG_PASSWORD"]
    profile = (Path(__file__).resolve().parents[2] / "dbt_models" / "profiles.yml").read_text()
    assert "env_var('DBT_ENV_SECRET_PG_PASSWORD'" in profile
    assert "env_var('DBT_PG_PASSWORD'" not in profile


@pytest.mark.parametrize(
    ("url", "pgsslmode", "expected"),
    [
        ("postgresql://u@db.internal/wh", None, "require"),  # remote: never plaintext by default
        ("postgresql://u@10.0.0.5:5432/wh", None, "require"),
        ("postgresql://u@db.internal/wh?sslmode=verify-full", None, "verify-full"),
        ("postgresql://u@db.internal/wh", "verify-ca", "verify-ca"),  # libpq's own variable is honoured
        ("postgresql://u@db.internal/wh?sslmode=disable", "verify-full", "disable"),  # the URL wins
        ("postgresql://u@127.0.0.1/wh", None, "prefer"),
        ("postgresql://u@localhost/wh", None, "prefer"),
        ("postgresql://u@/wh?host=/var/run/postgresql", None, "prefer"),
    ],
)
def test_sslmode_is_the_same_for_warehouse_and_dbt(url, pgsslmode, expected, monkeypatch):
    from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresTarget

    if pgsslmode:
        monkeypatch.setenv("PGSSLMODE", pgsslmode)
    else:
        monkeypatch.delenv("PGSSLMODE", raising=False)
    assert dbt_env(url)["DBT_PG_SSLMODE"] == expected
    target = PostgresTarget(url)
    assert (target.sslmode or "prefer") == expected
    if "sslmode=" not in url and target.sslmode:
        assert target.defaults["sslmode"] == expected  # what the warehouse connects with


def test_certificate_files_reach_dbt(monkeypatch):
    monkeypatch.delenv("PGSSLCERT", raising=False)
    monkeypatch.setenv("PGSSLKEY", "/etc/ssl/private/client.key")
    env = dbt_env("postgresql://u@db.internal/wh?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem")
    assert env["DBT_PG_SSLMODE"] == "verify-full"
    assert env["DBT_PG_SSLROOTCERT"] == "/etc/ssl/ca.pem"
    assert env["DBT_PG_SSLKEY"] == "/etc/ssl/private/client.key"
    assert "DBT_PG_SSLCERT" not in env


def test_unknown_sslmode_is_one_clear_error():
    with pytest.raises(WarehouseError, match="sslmode must be one of"):
        dbt_env(f"postgresql://u:{PASSWORD}@db.internal/wh?sslmode=sometimes")
