"""run_results.json -> one line of counts and the failures; the partial-parse state carried back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from enrichment_pipeline.lib import dbt_build


def result(unique_id: str, status: str, message: str = "") -> dict:
    return {"unique_id": unique_id, "status": status, "message": message}


def test_a_passing_build_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = {
        "results": [
            result("model.p.stg_a", "success"),
            result("model.p.dim_a", "success"),
            result("test.p.unique_dim_a_id.abc123", "pass"),
            result("test.p.not_null_dim_a_id.def456", "warn", "Got 2 results"),
        ]
    }
    summary = dbt_build.summarize(results, seconds=1.74, log_path=tmp_path / "data" / "logs" / "dbt.log")
    assert summary.success
    assert summary.line() == "marts: 2 models, 2 tests passed (1 warned) in 1.7 s — log: data/logs/dbt.log"
    assert summary.failure_lines() == []
    assert summary.metadata()["dbt_tests_warned"] == 1


def test_failures_name_the_model_or_test_with_dbt_message():
    results = {
        "results": [
            result("model.p.stg_a", "success"),
            result("model.p.dim_a", "error", "Binder Error: column x\n  not found"),
            result("model.p.fct_b", "skipped"),
            result("test.p.unique_stg_a_id.abc123", "fail", "Got 3 results, configured to fail if != 0"),
        ]
    }
    summary = dbt_build.summarize(results, seconds=2.0, exit_code=1)
    assert not summary.success
    assert summary.line() == "marts: 1 of 3 models failed, 1 of 1 tests failed, 1 skipped in 2.0 s"
    assert summary.failure_lines() == [
        "model dim_a error: Binder Error: column x not found",
        "test unique_stg_a_id failed: Got 3 results, configured to fail if != 0",
    ]


def test_dbt_failing_before_any_node_shows_its_error_lines():
    summary = dbt_build.summarize(None, seconds=0.5, errors=["Compilation Error in model dim_a", "x"])
    assert not summary.success
    assert summary.line() == "marts: dbt failed before building anything in 0.5 s"
    assert summary.failure_lines() == ["Compilation Error in model dim_a", "x"]
    assert dbt_build.summarize(None, seconds=0.5, exit_code=2).failure_lines() == ["dbt exited with code 2"]


def test_long_failure_lists_are_cut():
    results = {"results": [result(f"test.p.t{i}.h", "fail", "bad") for i in range(15)]}
    lines = dbt_build.summarize(results, seconds=1).failure_lines(limit=10)
    assert len(lines) == 11 and lines[-1] == "... and 5 more (see the log)"


def test_log_path_follows_the_warehouse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        dbt_build.dbt_log_path(f"duckdb:///{tmp_path}/w/x.duckdb", {}) == tmp_path / "w" / "logs" / "dbt.log"
    )
    assert dbt_build.dbt_log_path("postgresql://u@h/db", {}) == tmp_path / "data" / "logs" / "dbt.log"
    assert dbt_build.dbt_log_path("duckdb:///x.duckdb", {"ENRICHMENT_DBT_LOG": "/tmp/d.log"}) == Path(
        "/tmp/d.log"
    )


def test_captured_log_keeps_stdout_clean(tmp_path, capsys):
    log = tmp_path / "logs" / "dbt.log"
    with dbt_build.captured_log(log) as tee:
        print("1 of 2 START sql view model \x1b[32mOK\x1b[0m")
        print("")
    assert capsys.readouterr().out == ""
    assert tee.lines == 1
    assert log.read_text().endswith("  1 of 2 START sql view model OK\n\n")
    with dbt_build.captured_log(log, echo=True):
        print("again")
    assert capsys.readouterr().out == "again\n"
    assert "again" in log.read_text() and "START" not in log.read_text()  # the last build's log only


def test_partial_parse_state_is_carried_back(tmp_path):
    shared, build = tmp_path / "target", tmp_path / "target" / "dbt_marts-1"
    build.mkdir(parents=True)
    assert not dbt_build.keep_partial_parse(build, shared)  # dbt wrote none: nothing to carry
    (build / "partial_parse.msgpack").write_bytes(b"new state")
    assert dbt_build.keep_partial_parse(build, shared)
    assert (shared / "partial_parse.msgpack").read_bytes() == b"new state"
    assert [p.name for p in shared.iterdir() if p.is_file()] == ["partial_parse.msgpack"]  # no temp left
    assert not dbt_build.keep_partial_parse(shared, shared)


@pytest.mark.parametrize("keep", [0, 2])
def test_old_build_dirs_are_pruned(tmp_path, keep):
    now = time.time()
    for i in range(4):
        d = tmp_path / f"dbt_marts-{i}"
        d.mkdir()
        os.utime(d, (now - 100 * i, now - 100 * i))
    (tmp_path / "other").mkdir()
    assert dbt_build.prune_build_dirs(tmp_path, "dbt_marts", keep=keep) == 4 - keep
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["other", *(f"dbt_marts-{i}" for i in range(keep))])
