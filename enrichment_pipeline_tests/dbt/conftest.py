"""The dbt manifest, parsed once per session into a temporary target directory.

Tests never depend on a manifest in `dbt_models/target/` (prepared by
`make dbt-manifest`, never committed): they parse the project themselves and
build the `@dbt_assets` from that manifest with the project's own factory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from enrichment_pipeline.defs.dbt.factory import build_dbt_assets
from enrichment_pipeline.defs.dbt.project import dbt_project
from enrichment_pipeline.defs.dbt.resources import dbt_cli_resource
from enrichment_pipeline.lib.dbt_env import DBT_ENV_NAMES, dbt_env, dbt_environment


@pytest.fixture(scope="session")
def dbt_target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dbt parse` of dbt_models/ into a fresh target directory (manifest + partial-parse state)."""
    target = tmp_path_factory.mktemp("dbt_target")
    # The DuckDB target needs no database to parse; the path only has to look like one.
    with dbt_environment(dbt_env(f"duckdb:///{target / 'parse.duckdb'}")):
        invocation = dbt_cli_resource().cli(["parse", "--quiet"], target_path=target)
    invocation.wait()
    assert (target / "manifest.json").exists()
    return target


@pytest.fixture(scope="session")
def dbt_manifest(dbt_target_dir: Path) -> dict[str, Any]:
    return json.loads((dbt_target_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def dbt_marts(dbt_target_dir: Path) -> dg.AssetsDefinition:
    return build_dbt_assets(dbt_target_dir / "manifest.json", dbt_project)


@pytest.fixture
def dbt_run_env(monkeypatch: pytest.MonkeyPatch, dbt_target_dir: Path) -> None:
    """dbt runs write their artifacts under the session's target dir (and reuse its partial parse);
    no DBT_* connection variable of the developer's shell leaks in."""
    monkeypatch.setenv("DBT_TARGET_PATH", str(dbt_target_dir))
    for name in DBT_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
