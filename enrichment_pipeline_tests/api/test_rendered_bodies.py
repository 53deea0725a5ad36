"""Lookup bodies rendered in the background are the bodies a lookup builds, for their version only."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from enrichment_pipeline.api.body_cache import Body, BodyCache
from enrichment_pipeline.api.rendered_bodies import RenderedBodies
from enrichment_pipeline.api.routes_companies import indexed_company_body, row_body
from enrichment_pipeline.lib import company_queries as q
from enrichment_pipeline.lib.read_sources import RowIndex, SnapshotSource
from enrichment_pipeline_tests.api import marts_data
from enrichment_pipeline_tests.api.test_row_index import wait_for_index

N = 40


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RowIndex:
    base = tmp_path_factory.mktemp("rendered")
    path = marts_data.write_snapshot(base / "serving.duckdb", marts_data.marts(N), base / "w")
    source = SnapshotSource(path, index_sql=q.PROFILES_SQL)
    try:
        return wait_for_index(source)
    finally:
        source.close()


def _fields(body: Body | None) -> tuple:
    assert body is not None
    return body.content, body.etag, body.tail, body.enriched_at


def test_every_rendered_body_is_the_body_a_lookup_builds(index: RowIndex, caplog):
    rendered = RenderedBodies(64 * 2**20, row_body)
    with caplog.at_level(logging.INFO, "enrichment_pipeline.api.rendered_bodies"):
        rendered.ensure(index)
        rendered.wait(30)
    for i in range(N):
        domain = marts_data.company_domain(i)
        row = index.get(domain)
        assert row is not None
        assert _fields(rendered.get(index.version, domain)) == _fields(row_body(row)), domain
    assert rendered.get(index.version, "unknown.example") is None
    assert rendered.get("another-version", marts_data.company_domain(0)) is None
    assert f"rendered: {N} of {N} companies (0 left" in caplog.text
    assert rendered.complete(index.version) and not rendered.complete("another-version")


def test_the_budget_stops_the_render_and_lookups_build_the_rest(index: RowIndex, caplog):
    one = row_body(index.get(marts_data.company_domain(0))).size
    api = SimpleNamespace(rendered=RenderedBodies(one * 5, row_body), bodies=BodyCache(2**20))
    with caplog.at_level(logging.INFO, "enrichment_pipeline.api.rendered_bodies"):
        api.rendered.ensure(index)
        api.rendered.wait(30)
    done = [i for i in range(N) if api.rendered.get(index.version, marts_data.company_domain(i))]
    assert 0 < len(done) <= 5
    assert "stopped at the API_PRERENDER_MB budget" in caplog.text
    assert not api.rendered.complete(index.version)  # pages are then ranked in a thread
    for i in range(N):  # rendered or not, a lookup answers the same body
        domain = marts_data.company_domain(i)
        assert _fields(indexed_company_body(api, index, domain)) == _fields(row_body(index.get(domain)))
    assert indexed_company_body(api, index, "unknown.example") is None


def test_a_zero_budget_renders_nothing(index: RowIndex):
    rendered = RenderedBodies(0, row_body)
    rendered.ensure(index)
    assert rendered._thread is None
    assert rendered.get(index.version, marts_data.company_domain(0)) is None


def test_a_row_that_cannot_be_rendered_is_left_to_the_lookup(index: RowIndex, caplog):
    bad = marts_data.company_domain(7)

    def render(row: dict) -> Body:
        if row["domain"] == bad:
            raise ValueError("hostile value")
        return row_body(row)

    rendered = RenderedBodies(64 * 2**20, render)
    with caplog.at_level(logging.INFO, "enrichment_pipeline.api.rendered_bodies"):
        rendered.ensure(index)
        rendered.wait(30)
    assert rendered.get(index.version, bad) is None
    assert rendered.get(index.version, marts_data.company_domain(8)) is not None
    assert f"rendered: {N - 1} of {N} companies (1 left" in caplog.text
    assert not rendered.complete(index.version)


def test_a_newer_version_replaces_and_stops_an_older_render(index: RowIndex, monkeypatch):
    monkeypatch.setattr("enrichment_pipeline.api.rendered_bodies.BURST_S", 0.0)  # check every row
    newer = RowIndex("newer", index.frame.with_columns(pl.lit("v2").alias("company_name")), "domain")
    release = threading.Event()
    calls: list[str] = []

    def render(row: dict) -> Body:
        calls.append(row["company_name"])
        if row["company_name"] != "v2":
            release.wait(10)  # the old render is held until the newer version is asked for
        return row_body(row)

    rendered = RenderedBodies(64 * 2**20, render)
    rendered.ensure(index)
    old_thread = rendered._thread
    rendered.ensure(newer)
    release.set()
    assert old_thread is not None
    old_thread.join(10)
    rendered.wait(30)
    domain = marts_data.company_domain(3)
    assert rendered.get(index.version, domain) is None  # never the old version's body
    body = rendered.get("newer", domain)
    assert body is not None and b'"company_name":"v2"' in body.content
    assert calls.count("v2") == N and len(calls) - N < N  # the old render stopped early
    assert rendered.complete("newer") and not rendered.complete(index.version)
    rendered.ensure(newer)  # asked again for the same version: nothing restarts
    assert rendered._thread is not None and not rendered._thread.is_alive()


def test_api_prerender_mb_is_read_from_the_environment(tmp_path: Path):
    from enrichment_pipeline.api.config import ApiConfig
    from enrichment_pipeline.lib.settings import SettingsError

    base = {"WAREHOUSE_URL": f"duckdb:///{tmp_path / 'w.duckdb'}"}
    assert ApiConfig.from_env(base).prerender_mb == 512
    assert ApiConfig.from_env({**base, "API_PRERENDER_MB": "0"}).prerender_mb == 0
    with pytest.raises(SettingsError, match="API_PRERENDER_MB"):
        ApiConfig.from_env({**base, "API_PRERENDER_MB": "lots"})
