"""The sources' in-memory row index answers exactly what the query answers, for its version only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from enrichment_pipeline.lib import company_queries as q
from enrichment_pipeline.lib.read_sources import ReadSource, RowIndex, SnapshotSource
from enrichment_pipeline_tests.api import marts_data

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def wait_for_index(source: ReadSource, version: str | None = None) -> RowIndex:
    deadline = time.monotonic() + 30
    while True:
        with source.session():  # opens the current data, as a request would
            pass
        index = source.row_index()
        if index is not None and (version is None or index.version == version):
            return index
        assert time.monotonic() < deadline, "the row index was never built"
        time.sleep(0.02)


def assert_index_answers_as_the_query(source: ReadSource, index: RowIndex, n: int) -> None:
    assert len(index) == n
    for i in range(n):
        domain = marts_data.company_domain(i)
        with source.session() as s:
            asked = q.company(s, domain, NOW)
        row = index.get(domain)
        assert row is not None and asked is not None
        assert q.profile_document(row, NOW) == asked, domain
    assert index.get("unknown.example") is None


def test_snapshot_index_matches_the_query_and_follows_a_swap(tmp_path: Path):
    path = tmp_path / "serving.duckdb"
    marts_data.write_snapshot(path, marts_data.marts(25), tmp_path / "w1")
    source = SnapshotSource(path, index_sql=q.PROFILES_SQL)
    try:
        first = wait_for_index(source)
        assert first.version == source.version()
        assert_index_answers_as_the_query(source, first, 25)

        marts_data.write_snapshot(path, marts_data.marts(30, tag=" v2"), tmp_path / "w2")
        # Before the new file is opened, no index is offered: never the old one for the new data.
        assert source.row_index() is None
        second = wait_for_index(source, source.version())
        assert second.version != first.version
        row = second.get(marts_data.company_domain(0))
        assert row is not None and row["company_name"].endswith(" v2")
        assert_index_answers_as_the_query(source, second, 30)
    finally:
        source.close()


def test_no_index_without_its_query(tmp_path: Path):
    path = tmp_path / "serving.duckdb"
    marts_data.write_snapshot(path, marts_data.marts(3), tmp_path / "w")
    source = SnapshotSource(path)
    try:
        with source.session():
            pass
        assert source.row_index() is None
    finally:
        source.close()


def test_pages_gathered_from_the_index_are_the_pages_of_the_plain_query(tmp_path: Path):
    path = tmp_path / "serving.duckdb"
    marts_data.write_snapshot(path, marts_data.marts(40), tmp_path / "w")
    indexed = SnapshotSource(path, q.LISTING_SQL, q.PROFILES_SQL)
    plain = SnapshotSource(path)
    try:
        wait_for_index(indexed)
        questions = [
            (q.CompanyFilter(), "-icp_score"),
            (q.CompanyFilter(tiers=["hot", "warm"]), "domain"),
            (q.CompanyFilter(technologies=["algolia"]), "-monthly_visits"),
            (q.CompanyFilter(without_technologies=["shopify"], min_score=20), "-enriched_at"),
        ]
        for flt, sort in questions:
            cursor = None
            for _ in range(10):
                with indexed.listing_session() as s:
                    assert s.row_index is not None and s.company_listing is not None
                    page = q.list_companies(s, flt, sort=sort, limit=7, cursor=cursor)
                with plain.session() as s:
                    assert q.list_companies(s, flt, sort=sort, limit=7, cursor=cursor) == page
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert page["items"], (flt, sort)
    finally:
        indexed.close()
        plain.close()
