"""`@dbt_assets` for a given manifest, so tests can build them from a freshly parsed one."""

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from enrichment_pipeline.defs.dbt.translator import PipelineDbtTranslator
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib.dbt_env import dbt_env, dbt_environment, redacted
from enrichment_pipeline.lib.warehouse import duckdb_path, filelock

ASSETS_NAME = "dbt_marts"


def build_dbt_assets(
    manifest: Path | dict[str, Any], project: DbtProject | None = None
) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=PipelineDbtTranslator(),
        name=ASSETS_NAME,
    )
    def dbt_marts(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """`dbt build` (models and tests) on the warehouse of the run, DuckDB or PostgreSQL."""
        url = warehouse.resolved_url()
        env = dbt_env(url)
        context.log.info(f"dbt target: {redacted(env)}")
        # dbt's DuckDB adapter fails on a file another process holds: queue on its lock instead.
        held = filelock.exclusive(duckdb_path(url)) if url.startswith("duckdb:") else nullcontext()
        with held:
            with dbt_environment(env):
                invocation = dbt.cli(["build"], context=context)
            yield from invocation.stream()

    return dbt_marts
