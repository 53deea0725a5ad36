"""How dbt nodes become Dagster assets and checks.

Sources and models both map onto `[schema, table]`, the convention of the
Python assets: source `pipeline_marts.company_profiles` is the Python asset
`marts/company_profiles`, so the lineage is one graph from the raw responses to
the dbt marts, and a dbt model `marts.dim_company` is `marts/dim_company`. dbt
tests become asset checks (blocking when their severity is `error`).
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

DBT_GROUP = "marts_dbt"
_RELATIONS = ("model", "seed", "snapshot")


class PipelineDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        kind = dbt_resource_props["resource_type"]
        if kind == "source":
            table = dbt_resource_props.get("identifier") or dbt_resource_props["name"]
            return dg.AssetKey([dbt_resource_props["schema"], table])
        if kind in _RELATIONS:
            table = dbt_resource_props.get("alias") or dbt_resource_props["name"]
            return dg.AssetKey([dbt_resource_props["schema"], table])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return DBT_GROUP

    def get_asset_check_spec(
        self, asset_spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: Any
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return dg.AssetCheckSpec(
            spec.name,
            asset=spec.asset_key,
            description=describe_test(manifest["nodes"][unique_id]),
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
        )


def describe_test(test: Mapping[str, Any]) -> str:
    """One line for a dbt test, e.g. "dbt test: domain is unique"."""
    meta = test.get("test_metadata") or {}
    name = meta.get("name") or test["name"]
    kwargs = meta.get("kwargs") or {}
    column = kwargs.get("column_name") or test.get("column_name")
    subject = f"{column} " if column else ""
    if name == "unique":
        text = f"{subject}is unique"
    elif name == "not_null":
        text = f"{subject}is never null"
    elif name == "accepted_values":
        values = (kwargs.get("values") or (kwargs.get("arguments") or {}).get("values")) or []
        text = f"{subject}is one of {', '.join(map(str, values))}"
    elif name == "relationships":
        to = str(kwargs.get("to", "")).replace("ref('", "").replace("')", "")
        text = f"every {subject}exists in {to}.{kwargs.get('field', '')}".replace(" .", ".")
    else:
        text = f"{name} on {subject}".strip()
    return f"dbt test: {text}"
