"""The serving file: published atomically, readable by other processes while the warehouse is locked.

The BI side of each test is a separate process (`sys.executable -c "import duckdb; ..."`),
because DuckDB's file lock is per process: within one process a second
connection would simply share the first one's database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.defs.serving.assets import SERVING_KEY, marts_snapshot
from enrichment_pipeline.lib import serving
from enrichment_pipeline.lib.warehouse import Warehouse, duckdb_path
from enrichment_pipeline_tests.dbt import warehouse_data

MARTS = {"marts.company_profiles": 7, "marts.icp_scores": 7, "marts.tech_changes": 4}

# A BI query in its own process: the row count of a table, as JSON, or the error on stderr.
BI_QUERY = """
import duckdb, json, sys
conn = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps(conn.execute(f"SELECT count(*) FROM {sys.argv[2]}").fetchall()[0][0]))
"""
# A BI session that keeps the file open: counts, waits for a line on stdin, counts again.
BI_SESSION = """
import duckdb, json, sys
conn = duckdb.connect(sys.argv[1], read_only=True)
count = lambda: conn.execute(f"SELECT count(*) FROM {sys.argv[2]}").fetchall()[0][0]
print(json.dumps(count()), flush=True)
sys.stdin.readline()
print(json.dumps(count()), flush=True)
"""


def bi_query(path: Path, table: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BI_QUERY, str(path), table], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def warehouse_url(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    warehouse_data.fill(url)
    return url


def test_serving_path_defaults_next_to_the_duckdb_file(tmp_path: Path):
    url = f"duckdb:///{tmp_path / 'data' / 'sandbox.duckdb'}"
    assert serving.serving_path(url, {}) == tmp_path / "data" / "serving.duckdb"
    assert (
        serving.serving_path(url, {"SERVING_DUCKDB": str(tmp_path / "bi.duckdb")}) == tmp_path / "bi.duckdb"
    )
    assert serving.serving_path("postgresql://u:p@h/db", {}) == Path.cwd() / "data" / "serving.duckdb"


def test_publish_copies_every_marts_table_and_leaves_no_temporary_file(warehouse_url: str, tmp_path: Path):
    target = tmp_path / "out" / "serving.duckdb"
    with Warehouse.open(warehouse_url) as wh:
        counts = serving.publish(wh, target)
        profiles = wh.table("marts.company_profiles").sort("domain")

    assert counts == MARTS
    assert sorted(p.name for p in target.parent.iterdir()) == ["serving.duckdb"]
    with Warehouse.open(f"duckdb:///{target}", read_only=True) as served:
        assert served.table("marts.company_profiles").sort("domain").equals(profiles)
        info = served.table("main.serving_info")
    assert info.select("tables", "total_rows").row(0) == (3, sum(MARTS.values()))
    assert info["warehouse"][0] == warehouse_url  # a DuckDB URL holds no secret (PostgreSQL's shows none)
    # DuckDB 1.0's storage format (version number 64 after the "DUCK" magic), for older BI drivers.
    header = target.read_bytes()[:20]
    assert header[8:12] == b"DUCK" and int.from_bytes(header[12:20], "little") == 64


def test_a_failed_publish_keeps_the_previous_file(warehouse_url: str, tmp_path: Path, monkeypatch):
    target = tmp_path / "serving.duckdb"
    with Warehouse.open(warehouse_url) as wh:
        serving.publish(wh, target)
        before = target.read_bytes()
        real_table = wh.table

        def broken(table: str) -> pl.DataFrame:
            if table == "marts.tech_changes":
                raise RuntimeError("connection lost")
            return real_table(table)

        monkeypatch.setattr(wh, "table", broken)
        with pytest.raises(RuntimeError, match="connection lost"):
            serving.publish(wh, target)

    assert target.read_bytes() == before
    # No temporary file is left behind (the sidecar `.lock` is the warehouse's writer lock).
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == [
        "serving.duckdb",
        "warehouse.duckdb",
    ]


def test_bi_reads_the_serving_file_while_the_pipeline_holds_the_warehouse(warehouse_url: str, tmp_path: Path):
    target = tmp_path / "serving.duckdb"
    warehouse_file = duckdb_path(warehouse_url)
    # This process is the pipeline: it holds the warehouse open for writing and publishes from it.
    with Warehouse.open(warehouse_url) as wh:
        serving.publish(wh, target)
        wh.query("INSERT INTO marts.tech_changes SELECT * FROM marts.tech_changes")  # still writing

        on_warehouse = bi_query(warehouse_file, "marts.company_profiles")
        on_serving = bi_query(target, "marts.company_profiles")

    assert on_warehouse.returncode != 0
    assert "lock" in on_warehouse.stderr.lower()
    assert on_serving.returncode == 0, on_serving.stderr
    assert json.loads(on_serving.stdout) == MARTS["marts.company_profiles"]


def test_open_readers_keep_their_snapshot_and_new_readers_get_the_new_file(
    warehouse_url: str, tmp_path: Path
):
    target = tmp_path / "serving.duckdb"
    with Warehouse.open(warehouse_url) as wh:
        serving.publish(wh, target)
    session = subprocess.Popen(
        [sys.executable, "-c", BI_SESSION, str(target), "marts.tech_changes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout is not None and session.stdin is not None
        first = json.loads(session.stdout.readline())
        with Warehouse.open(warehouse_url) as wh:
            wh.query("DELETE FROM marts.tech_changes WHERE change = 'removed'")
            serving.publish(wh, target)  # swaps the file under the open reader
        session.stdin.write("go\n")
        session.stdin.flush()
        second = json.loads(session.stdout.readline())
    finally:
        session.kill()
        session.wait()

    assert first == second == MARTS["marts.tech_changes"]
    fresh = bi_query(target, "marts.tech_changes")
    assert json.loads(fresh.stdout) == 2  # only the two "added" changes are left


def test_the_asset_publishes_and_reports(warehouse_url: str, tmp_path: Path, monkeypatch):
    monkeypatch.delenv(serving.SERVING_ENV, raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [marts_snapshot], instance=instance, resources={"warehouse": WarehouseResource(url=warehouse_url)}
        )
    (event,) = result.asset_materializations_for_node(marts_snapshot.op.name)
    assert event.asset_key == SERVING_KEY
    metadata = {k: v.value for k, v in event.metadata.items()}
    assert metadata["path"] == str(tmp_path / "serving.duckdb")
    assert (metadata["tables"], metadata["rows"]) == (3, sum(MARTS.values()))
    assert metadata["rows_per_table"] == MARTS
    assert metadata["seconds"] >= 0
    assert (tmp_path / "serving.duckdb").exists()


@pytest.mark.postgres
def test_publish_from_postgres(postgres_url: str, tmp_path: Path):
    warehouse_data.fill(postgres_url)
    target = tmp_path / "serving.duckdb"
    with Warehouse.open(postgres_url) as wh:
        counts = serving.publish(wh, target)
        scores = wh.table("marts.icp_scores").sort("domain")

    assert counts == MARTS
    with Warehouse.open(f"duckdb:///{target}", read_only=True) as served:
        copied = served.table("marts.icp_scores").sort("domain")
    assert copied.equals(scores)
    assert json.loads(bi_query(target, "marts.company_profiles").stdout) == MARTS["marts.company_profiles"]
