"""The dbt models of `dbt_models/` as assets, their tests as asset checks.

Needs the prepared manifest (`make dbt-manifest`); the warehouse comes from the
`warehouse` resource at run time, turned into `DBT_*` variables for dbt.
"""

from enrichment_pipeline.defs.dbt.factory import build_dbt_assets
from enrichment_pipeline.defs.dbt.project import dbt_project

dbt_marts = build_dbt_assets(dbt_project.manifest_path, dbt_project)
