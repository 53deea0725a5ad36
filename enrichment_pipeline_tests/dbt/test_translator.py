"""The dbt project as Dagster sees it: source keys are the Python assets' keys, tests are checks.

Uses the manifest the session parses itself (see conftest), never a committed one.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.dbt.resources import dbt_cli_resource
from enrichment_pipeline.defs.dbt.translator import DBT_GROUP, PipelineDbtTranslator
from enrichment_pipeline.defs.history.assets import tech_changes, technology_history
from enrichment_pipeline.defs.profiles.assets import PROFILES_KEY
from enrichment_pipeline.defs.raw.assets import RAW_KEY
from enrichment_pipeline.defs.scoring.assets import icp_scores
from enrichment_pipeline.defs.serving.assets import DBT_MART_KEYS, SERVING_KEY, marts_snapshot
from enrichment_pipeline.defs.staging.assets import builtwith_technologies

PYTHON_TABLE_KEYS = {
    RAW_KEY,
    builtwith_technologies.key,
    technology_history.key,
    PROFILES_KEY,
    icp_scores.key,
    tech_changes.key,
}
PYTHON_MARTS = {PROFILES_KEY, icp_scores.key, tech_changes.key}


def key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


def with_dbt(dbt_marts: dg.AssetsDefinition) -> dg.Definitions:
    """The code location with the dbt and serving assets (as is, once `definitions.py` wires them)."""
    if SERVING_KEY in {spec.key for spec in defs.resolve_all_asset_specs()}:
        return defs
    return dg.Definitions.merge(
        defs,
        dg.Definitions(assets=[dbt_marts, marts_snapshot], resources={"dbt": dbt_cli_resource()}),
    )


def test_every_source_maps_onto_the_python_asset_of_its_table(dbt_manifest: dict[str, Any]):
    translator = PipelineDbtTranslator()
    sources = dbt_manifest["sources"].values()
    keys = {translator.get_asset_key(source) for source in sources}
    assert keys == PYTHON_TABLE_KEYS
    profiles = next(
        s for s in sources if s["source_name"] == "pipeline_marts" and s["name"] == "company_profiles"
    )
    assert translator.get_asset_key(profiles) == key("marts", "company_profiles")


def test_models_are_keyed_by_schema_and_never_collide_with_python_tables(dbt_marts):
    assert {k for k in dbt_marts.keys if k.path[0] == "marts"} == set(DBT_MART_KEYS)
    assert {k.path[0] for k in dbt_marts.keys} == {"marts", "dbt_staging"}
    assert not set(dbt_marts.keys) & PYTHON_TABLE_KEYS
    assert set(dbt_marts.group_names_by_key.values()) == {DBT_GROUP}


def test_dbt_assets_depend_on_exactly_the_python_tables(dbt_marts):
    upstream = {dep for k in dbt_marts.keys for dep in dbt_marts.asset_deps[k]} - set(dbt_marts.keys)
    assert upstream == PYTHON_TABLE_KEYS
    assert (
        key("marts", "company_profiles") in dbt_marts.asset_deps[key("dbt_staging", "stg_company_profiles")]
    )


def test_dbt_tests_are_described_asset_checks(dbt_marts):
    checks = {spec.key: spec for spec in dbt_marts.check_specs}
    unique = dg.AssetCheckKey(key("marts", "dim_company"), "unique_dim_company_domain")
    relationship = next(
        k
        for k in checks
        if k.asset_key == key("marts", "fct_company_technology") and k.name.startswith("relationships")
    )
    assert unique in checks and checks[unique].blocking
    assert checks[unique].description == "dbt test: domain is unique"
    assert checks[relationship].description == "dbt test: every domain exists in dim_company.domain"
    assert all((spec.description or "").strip() for spec in checks.values())
    # A warn-severity test is a non-blocking check.
    sector = next(
        k for k in checks if k.asset_key == key("marts", "dim_company") and "industry_naics" in k.name
    )
    assert not checks[sector].blocking


def test_every_primary_key_is_tested_unique_and_not_null(dbt_marts):
    names = {spec.key.name for spec in dbt_marts.check_specs}
    primary_keys = {
        "dim_company": "domain",
        "fct_company_technology": "company_technology_id",
        "fct_tech_changes": "tech_change_id",
        "icp_leaderboard": "rank",
        "provider_coverage_and_cost": "provider_mode_id",
        "tech_adoption_by_industry": "technology_industry_id",
    }
    for model, column in primary_keys.items():
        assert f"unique_{model}_{column}" in names
        assert f"not_null_{model}_{column}" in names


def test_one_lineage_graph_from_raw_responses_to_the_serving_file(dbt_marts):
    candidate = with_dbt(dbt_marts)
    dg.Definitions.validate_loadable(candidate)
    graph = candidate.resolve_asset_graph()

    def ancestors(start: dg.AssetKey) -> set[dg.AssetKey]:
        seen, todo = set(), [start]
        while todo:
            for parent in graph.get(todo.pop()).parent_keys:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    for mart in DBT_MART_KEYS:
        assert RAW_KEY in ancestors(mart), mart
    for dep in PYTHON_TABLE_KEYS:
        assert graph.get(dep).is_materializable, f"{dep} is not the Python asset"
    assert set(graph.get(SERVING_KEY).parent_keys) == set(DBT_MART_KEYS) | PYTHON_MARTS


def test_the_wired_location_keeps_its_conventions(dbt_marts):
    candidate = with_dbt(dbt_marts)
    specs = candidate.resolve_all_asset_specs()
    missing = [
        s.key.to_user_string()
        for s in specs
        if not s.group_name or s.group_name == "default" or not (s.description or "").strip()
    ]
    assert missing == []
    graph = candidate.resolve_asset_graph()
    assert all((graph.get_check_spec(k).description or "").strip() for k in graph.asset_check_keys)
    assert all(s.partitions_def is None for s in specs if s.group_name in (DBT_GROUP, "serving"))
