"""The dbt project (`dbt_models/`) as Dagster assets downstream of the Python-written tables."""
