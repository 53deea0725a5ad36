"""The dbt CLI resource (key `dbt`)."""

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource

from enrichment_pipeline.defs.dbt.project import dbt_project


def dbt_cli_resource() -> DbtCliResource:
    """`DbtCliResource` on `dbt_models/`, with the `dbt` next to this interpreter when there is one
    (the virtualenv's `bin/` is not necessarily on PATH, e.g. for `.venv/bin/enrichment-pipeline`)."""
    local = Path(sys.executable).with_name("dbt")
    if local.exists():
        return DbtCliResource(project_dir=dbt_project, dbt_executable=str(local))
    return DbtCliResource(project_dir=dbt_project)
