"""The one `DbtProject` of the code location.

The manifest is prepared explicitly (`make dbt-manifest`, which `make run`,
`make test` and `make dev` depend on) and never committed; under `dagster dev`
`prepare_if_dev()` re-parses the project on every code reload as well.
"""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_models"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
