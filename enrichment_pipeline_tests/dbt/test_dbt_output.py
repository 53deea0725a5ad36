"""What a dbt build shows: its log in a file, counts in the metadata, failures by name; and the
partial-parse state carried from one build to the next."""

from __future__ import annotations

import dagster as dg
import pytest

from enrichment_pipeline.defs.dbt.factory import ASSETS_NAME, shared_target_dir
from enrichment_pipeline.defs.dbt.project import dbt_project
from enrichment_pipeline.lib.domains import display_domain
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.dbt import warehouse_data
from enrichment_pipeline_tests.dbt.test_dbt_build import materialize_dbt

pytestmark = pytest.mark.usefixtures("dbt_run_env")

REPARSE = "Unable to do partial parsing"


def build_metadata(result: dg.ExecuteInProcessResult) -> dict:
    events = result.get_asset_materialization_events()
    assert events
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    return failures[0].step_failure_data.user_failure_data.description


def test_build_log_goes_to_a_file_and_the_counts_to_metadata(tmp_path, dbt_marts, dbt_manifest, capsys):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    warehouse_data.fill(url)
    log = tmp_path / "logs" / "dbt.log"

    first = materialize_dbt(dbt_marts, url)

    assert first.success
    out = capsys.readouterr().out
    assert "START sql" not in out and "PASS" not in out  # dbt's per-node lines are not on stdout
    text = log.read_text()
    assert "OK created sql table model marts.dim_company" in text
    assert "\x1b[" not in text  # no colour codes in the file
    metadata = build_metadata(first)
    kinds = [node["resource_type"] for node in dbt_manifest["nodes"].values()]
    models, tests = kinds.count("model"), kinds.count("test")
    assert metadata["dbt_models"] == models == 12
    assert metadata["dbt_tests"] == metadata["dbt_tests_passed"] == tests
    assert metadata["dbt_tests_failed"] == metadata["dbt_models_failed"] == 0
    assert metadata["dbt_log"] == str(log)
    assert metadata["dbt_summary"].startswith(f"marts: 12 models, {tests} tests passed in ")
    # Every dbt model's materialization carries them (whichever one a person opens in the UI).
    assert all("dbt_summary" in e.materialization.metadata for e in first.get_asset_materialization_events())

    # The marts carry the Unicode form of every domain beside the punycode key.
    with Warehouse.open(url, read_only=True) as wh:
        shown = wh.query("SELECT domain, domain_unicode FROM marts.icp_leaderboard").rows()
        assert (
            wh.query("SELECT count(*) AS n FROM marts.dim_company WHERE domain_unicode IS NULL")["n"][0] == 0
        )
    assert shown and all(unicode == display_domain(domain) for domain, unicode in shown)

    # The first build of this warehouse re-parses (its profile differs from the session's parse);
    # the state it leaves is carried back, so the next build parses only what changed: nothing.
    assert (shared_target_dir(dbt_project.project_dir) / "partial_parse.msgpack").exists()
    # With echo_log (the CLI's --verbose) dbt's lines reach stdout as well.
    second = materialize_dbt(
        dbt_marts, url, run_config={"ops": {ASSETS_NAME: {"config": {"echo_log": True}}}}
    )
    assert second.success
    assert REPARSE not in log.read_text()
    assert "OK created sql table model marts.dim_company" in capsys.readouterr().out

    # A failing test: the step fails naming the test and dbt's message; the log keeps everything.
    with Warehouse.open(url) as wh:
        wh.query("INSERT INTO marts.icp_scores SELECT * FROM marts.icp_scores LIMIT 1")
    broken = materialize_dbt(dbt_marts, url)

    assert not broken.success
    description = failure_description(broken)
    first_line, *details = description.splitlines()
    assert first_line.startswith("marts: ") and " tests failed" in first_line
    assert first_line.endswith(f"log: {log}")
    assert any("test unique_stg_icp_scores_domain failed: Got 1 result" in d for d in details), description
    assert "FAIL 1 unique_stg_icp_scores_domain" in log.read_text()


def test_the_resource_skips_what_a_build_never_uses():
    """No `dbt --version` process and no in-process adapter before each build; the hooks it
    overrides must still exist in dagster-dbt, else the saving silently disappears."""
    from importlib.metadata import version

    from dagster_dbt import DbtCliResource

    from enrichment_pipeline.defs.dbt.resources import MartsDbtCliResource, dbt_cli_resource

    assert {"_cli_version", "_initialize_dbt_core_adapter"} <= set(vars(DbtCliResource))
    resource = dbt_cli_resource()
    assert isinstance(resource, MartsDbtCliResource)
    assert str(resource._cli_version) == version("dbt-core")
    assert resource._initialize_dbt_core_adapter(["build"]) is None
