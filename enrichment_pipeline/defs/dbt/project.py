"""The one `DbtProject` of the code location.

The manifest is prepared explicitly (`make dbt-manifest`, which `make run`,
`make test` and `make dev` depend on) and never committed. Under `dagster dev`
the project is re-parsed on a code reload only when a file of the dbt project
changed since the manifest was written: Dagster's default preparer parses on
every load, and every run worker of `dagster dev` loads the code location, so
each launched run paid a full `dbt parse` (10-20 s here) before its first step.
"""

from pathlib import Path

from dagster_dbt import DbtProject
from dagster_dbt.dbt_project import using_dagster_dev

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_models"
_SOURCES = (
    "models",
    "macros",
    "seeds",
    "snapshots",
    "tests",
    "dbt_project.yml",
    "profiles.yml",
    "packages.yml",
)


def manifest_is_stale(project: DbtProject) -> bool:
    """Whether the manifest is missing or older than a file it is parsed from."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    for name in _SOURCES:
        path = project.project_dir / name
        files = [path] if path.is_file() else (path.rglob("*") if path.is_dir() else [])
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def prepare_if_changed(project: DbtProject) -> None:
    """`DbtProject.prepare_if_dev`, skipped while the manifest is current."""
    if using_dagster_dev() and manifest_is_stale(project):
        project.prepare_if_dev()


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
prepare_if_changed(dbt_project)
