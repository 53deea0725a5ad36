"""The dbt CLI resource (key `dbt`)."""

import sys
from functools import cached_property
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource
from packaging import version

from enrichment_pipeline.defs.dbt.project import dbt_project


class MartsDbtCliResource(DbtCliResource):
    """`DbtCliResource` without two start-up costs a marts build never uses.

    Before each command dagster-dbt asks the dbt executable for its version (a
    second dbt process, ~1.5 s) and loads the project, the profile and all 500+
    macros in this process (~1.5 s) to hold an adapter handle. That handle only
    serves `fetch_column_metadata` / `fetch_row_counts`, which these assets do
    not call. So the version comes from the installed dbt-core package when the
    executable is the one next to this interpreter, and no handle is made.
    (Both hooks are dagster-dbt internals: a test fails if they disappear.)
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(sys.executable).with_name("dbt"):
            try:
                return version.parse(package_version("dbt-core"))
            except PackageNotFoundError:  # pragma: no cover - dbt-fusion next to us
                pass
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Any) -> Any:
        return None


def dbt_cli_resource() -> DbtCliResource:
    """The dbt resource on `dbt_models/`, with the `dbt` next to this interpreter when there is one
    (the virtualenv's `bin/` is not necessarily on PATH, e.g. for `.venv/bin/enrichment-pipeline`)."""
    local = Path(sys.executable).with_name("dbt")
    if local.exists():
        return MartsDbtCliResource(project_dir=dbt_project, dbt_executable=str(local))
    return MartsDbtCliResource(project_dir=dbt_project)
