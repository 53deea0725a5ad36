"""`@dbt_assets` for a given manifest, so tests can build them from a freshly parsed one."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from enrichment_pipeline.defs.dbt.translator import PipelineDbtTranslator
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib.dbt_env import dbt_env, dbt_environment, redacted

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
        env = dbt_env(warehouse.resolved_url())
        context.log.info(f"dbt target: {redacted(env)}")
        with dbt_environment(env):
            invocation = dbt.cli(["build"], context=context)
        yield from invocation.stream()

    return dbt_marts
