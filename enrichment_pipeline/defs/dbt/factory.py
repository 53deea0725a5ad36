"""`@dbt_assets` for a given manifest, so tests can build them from a freshly parsed one."""

import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from enrichment_pipeline.defs.dbt.translator import PipelineDbtTranslator
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib import dbt_build
from enrichment_pipeline.lib.dbt_env import dbt_env, dbt_environment, redacted
from enrichment_pipeline.lib.warehouse import duckdb_path, filelock

ASSETS_NAME = "dbt_marts"


class DbtBuildConfig(dg.Config):
    # dbt's own log always goes to the log file; `echo_log` also prints it (the CLI's --verbose).
    echo_log: bool = False


def shared_target_dir(project_dir: Path) -> Path:
    """Where dagster-dbt seeds each build's partial-parse state from (`DBT_TARGET_PATH` or `target`)."""
    target = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    return target if target.is_absolute() else Path(project_dir) / target


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
        context: dg.AssetExecutionContext,
        config: DbtBuildConfig,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
    ) -> Iterator[Any]:
        """`dbt build` (models and tests) on the warehouse of the run, DuckDB or PostgreSQL.

        dbt's log goes to a file; the step logs one line of counts, every model's
        materialization carries the counts and the log path, and a failure names
        the failing models and tests with dbt's message."""
        url = warehouse.resolved_url()
        env = dbt_env(url)
        log_path = dbt_build.dbt_log_path(url)
        context.log.info(f"dbt target: {redacted(env)}; log: {log_path}")
        # dbt's DuckDB adapter fails on a file another process holds: queue on its lock instead.
        held = filelock.exclusive(duckdb_path(url)) if url.startswith("duckdb:") else nullcontext()
        events: list[Any] = []
        errors: list[str] = []
        started = time.perf_counter()
        with held, dbt_build.captured_log(log_path, echo=config.echo_log):
            with dbt_environment(env):
                invocation = dbt.cli(["build"], context=context, raise_on_error=False)
            for event in invocation.stream_raw_events():
                info = event.raw_event.get("info", {})
                if info.get("level") == "error" and info.get("msg"):
                    errors.append(str(info["msg"]))
                events.extend(
                    event.to_default_asset_events(
                        manifest=invocation.manifest,
                        dagster_dbt_translator=invocation.dagster_dbt_translator,
                        context=context,
                        target_path=invocation.target_path,
                        project=invocation.project,
                    )
                )
            exit_code = invocation.process.wait()
        summary = dbt_build.summarize(
            dbt_build.read_run_results(invocation.target_path),
            seconds=time.perf_counter() - started,
            log_path=log_path,
            errors=errors,
            exit_code=exit_code,
        )
        project_dir = Path(project.project_dir if project else dbt.project_dir)
        shared = shared_target_dir(project_dir)
        dbt_build.keep_partial_parse(invocation.target_path, shared)
        dbt_build.prune_build_dirs(shared, ASSETS_NAME)

        build_metadata = {
            **summary.metadata(),
            "dbt_log": dg.MetadataValue.path(str(log_path.absolute())),
        }
        # Buffered until dbt is done, so every model's materialization carries the build's counts.
        for event in events:
            if isinstance(event, dg.Output):
                yield event.with_metadata({**event.metadata, **build_metadata})
            else:
                yield event
        if not summary.success:
            context.log.error(summary.text())
            raise dg.Failure(description=summary.text(), metadata=build_metadata, allow_retries=False)
        context.log.info(summary.line())

    return dbt_marts
