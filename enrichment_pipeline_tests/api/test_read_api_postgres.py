"""The read endpoints over PostgreSQL (read-only pool), on a real uvicorn. Needs TEST_DATABASE_URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline_tests.api import marts_data
from enrichment_pipeline_tests.api.conftest import LiveServer, api_config

pytestmark = pytest.mark.postgres
N = 40


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    name = f"api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    marts_data.write_marts(url, marts_data.marts(N))
    yield url
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def pg_server(pg_url, tmp_path) -> Iterator[LiveServer]:
    config = api_config(tmp_path, tmp_path / "unused.duckdb", warehouse_url=pg_url)
    with LiveServer(create_app(config)) as live:
        live.state_path = config.state_path
        yield live


def _key(server) -> str:
    from enrichment_pipeline.lib.api_keys import KeyStore
    from enrichment_pipeline.lib.api_state import StateStore

    return KeyStore(StateStore(server.state_path)).create("pg", ("read",), "admin")[1]


def test_reads_over_postgres(pg_server):
    with pg_server.client(_key(pg_server)) as c:
        ready = c.get("/ready").json()
        assert ready == {"status": "ready", "source": "postgresql", "detail": None}
        company = c.get("/v1/companies/WWW.company000003.com").json()
        assert company["domain"] == "company000003.com" and company["score"]["reasons"]
        assert company["freshness"]["enriched_at"].endswith("Z")
        etag = c.get("/v1/companies/company000003.com").headers["etag"]
        assert c.get("/v1/companies/company000003.com", headers={"If-None-Match": etag}).status_code == 304
        seen, cursor = [], None
        while True:
            page = c.get(
                "/v1/companies", params={"limit": 9, **({"cursor": cursor} if cursor else {})}
            ).json()
            seen += [r["domain"] for r in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert len(seen) == len(set(seen)) == N
        filtered = c.get(
            "/v1/companies",
            params={
                "technology": "Algolia",
                "enriched_since": "2026-01-01T00:00:00Z",
                "sort": "-enriched_at",
            },
        ).json()["items"]
        assert filtered and all(r["enriched_at"] >= "2026-01-01" for r in filtered)
        tech = c.get("/v1/companies/company000003.com/technologies").json()
        assert tech["current"]
        stats = c.get("/v1/stats").json()
        assert stats["companies"] == N
        assert c.get("/v1/blueprint", params={"domain": "company000003.com"}).status_code == 200
        assert c.get("/v1/companies/unknown-co.io").status_code == 404


def test_the_pool_is_read_only(pg_url):
    from enrichment_pipeline.lib.read_sources import PostgresSource

    source = PostgresSource(pg_url, max_size=2)
    try:
        with source.session() as s, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            s.rows("DELETE FROM marts.company_profiles")
    finally:
        source.close()


def test_a_database_that_is_down_is_503_not_500(tmp_path):
    config = api_config(
        tmp_path, tmp_path / "x.duckdb", warehouse_url="postgresql://postgres@127.0.0.1:1/none"
    )
    with LiveServer(create_app(config)) as live, live.client() as c:
        r = c.get("/ready")
        assert r.status_code == 503
