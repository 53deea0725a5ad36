"""The code location loads, and its assets and job are what the tooling expects."""

from __future__ import annotations

import dagster as dg

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, MARTS_JOB_NAME
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.raw.assets import RAW_KEY


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_the_module_is_a_loadable_code_location():
    """What `dagster dev`, the code server and every run worker do with workspace.yaml's module:
    exactly one Definitions object at its top level."""
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

    targets = loadable_targets_from_python_module("enrichment_pipeline.definitions", working_directory=None)
    assert [t.attribute for t in targets] == ["defs"]


def test_the_two_jobs_cover_every_asset_once():
    job = defs.resolve_job_def(ENRICH_JOB_NAME)
    assert job.name == ENRICH_JOB_NAME
    assert job.partitions_def == domains_partitions
    assert job.description
    marts = defs.resolve_job_def(MARTS_JOB_NAME)
    assert marts.description
    in_enrich = set(job.asset_layer.selected_asset_keys)
    in_marts = set(marts.asset_layer.selected_asset_keys)
    all_keys = {spec.key for spec in defs.resolve_all_asset_specs()}
    assert in_enrich | in_marts == all_keys
    assert not in_enrich & in_marts
    assert dg.AssetKey(["serving", "marts_snapshot"]) in in_marts


def test_every_asset_has_a_group_and_a_description():
    specs = defs.resolve_all_asset_specs()
    assert specs
    missing = [
        spec.key.to_user_string()
        for spec in specs
        if not spec.group_name or spec.group_name == "default" or not (spec.description or "").strip()
    ]
    assert not missing


def test_only_the_raw_asset_is_partitioned():
    partitioned = {spec.key for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None}
    assert partitioned == {RAW_KEY}
    raw = defs.resolve_assets_def(RAW_KEY)
    assert raw.partitions_def == domains_partitions
    assert raw.backfill_policy == dg.BackfillPolicy.single_run()


def test_every_asset_check_is_described():
    graph = defs.resolve_asset_graph()
    checks = list(graph.asset_check_keys)
    assert checks
    for key in checks:
        spec = graph.get_check_spec(key)
        assert (spec.description or "").strip(), key


def test_resources_cover_what_the_assets_need():
    assert {"warehouse", "providers", "progress", "http_transport"} <= set(defs.resources or {})
