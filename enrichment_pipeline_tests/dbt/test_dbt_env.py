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
def test_postgres_url_gives_every_connection_field(scheme: str):
    env = dbt_env(f"{scheme}://etl:{PASSWORD}%40x@db.internal:6543/warehouse?sslmode=require")
    assert env == {
        "DBT_TARGET": "postgres",
        "DBT_PG_HOST": "db.internal",
        "DBT_PG_PORT": "6543",
        "DBT_PG_USER": "etl",
        "DBT_PG_PASSWORD": f"{PASSWORD}@x",  # percent-escapes decoded
        "DBT_PG_DATABASE": "warehouse",
        "DBT_PG_SSLMODE": "require",
    }
    assert PASSWORD not in str(redacted(env))


def test_postgres_defaults():
    env = dbt_env("postgresql://postgres@127.0.0.1/test")
    assert (env["DBT_PG_PORT"], env["DBT_PG_PASSWORD"], env["DBT_PG_DATABASE"]) == ("5432", "", "test")
    assert "DBT_PG_SSLMODE" not in env


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
    monkeypatch.delenv("DBT_PG_PASSWORD", raising=False)
    with pytest.raises(RuntimeError), dbt_environment({"DBT_PG_PASSWORD": PASSWORD}):
        raise RuntimeError("dbt failed to start")
    assert "DBT_PG_PASSWORD" not in os.environ
