"""The read endpoints over PostgreSQL (read-only pool), on a real uvicorn. Needs TEST_DATABASE_URL."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.lib.listing_index import ListingIndex
from enrichment_pipeline_tests.api import marts_data
from enrichment_pipeline_tests.api.conftest import LiveServer, api_config
from enrichment_pipeline_tests.api.test_listing_index import random_filter

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


def _names(c, params) -> list[str]:
    return [r["company_name"] for r in c.get("/v1/companies", params=params).json()["items"]]


def test_a_rebuild_of_the_marts_is_served_within_the_check_interval(pg_url, tmp_path):
    import time

    params = {"tier": "hot", "sort": "domain", "limit": 5}
    for check_ms in (0, 300):
        config = api_config(
            tmp_path / str(check_ms),
            tmp_path / "unused.duckdb",
            warehouse_url=pg_url,
            pg_change_check_ms=check_ms,
        )
        with LiveServer(create_app(config)) as live:
            live.state_path = config.state_path
            with live.client(_key(live)) as c:
                for _ in range(3):  # cached after the first
                    assert c.get("/v1/companies/company000003.com").json()["company_name"] == "Company 3"
                    before = _names(c, params)
                try:
                    marts_data.write_marts(pg_url, marts_data.marts(N, tag=" v2"))
                    time.sleep(check_ms / 1000 * 1.2)
                    assert c.get("/v1/companies/company000003.com").json()["company_name"] == "Company 3 v2"
                    assert _names(c, params) == [n + " v2" for n in before]
                finally:
                    marts_data.write_marts(pg_url, marts_data.marts(N))
                time.sleep(check_ms / 1000 * 1.2)
                assert _names(c, params) == before


def _listing_source(pg_url: str, change_check_s: float):
    """A source with the listing, its ranking and the row index built in memory."""
    from enrichment_pipeline.lib import company_queries as q
    from enrichment_pipeline.lib.read_sources import PostgresSource

    return PostgresSource(
        pg_url,
        max_size=2,
        change_check_s=change_check_s,
        listing_sql=q.LISTING_SQL,
        listing_inputs=q.LISTING_INPUTS,
        index_sql=q.PROFILES_SQL,
        listing_pages=ListingIndex.build,
    )


def test_the_in_memory_listing_answers_as_postgres_does_and_only_for_its_marker(pg_url):
    import time

    from enrichment_pipeline.lib import company_queries as q

    source = _listing_source(pg_url, change_check_s=0)
    rnd = random.Random(5)
    questions = [
        (q.CompanyFilter(), "-icp_score"),
        (q.CompanyFilter(tiers=["hot", "warm"], country="gb"), "domain"),
        (q.CompanyFilter(technologies=["algolia"], statuses=["enriched"]), "-monthly_visits"),
        (q.CompanyFilter(without_technologies=["shopify"], min_score=20, max_score=80), "enriched_at"),
        (q.CompanyFilter(industry="51", search_vendor="klevu"), "-revenue_usd"),
        *((random_filter(rnd), rnd.choice(q.SORT_CHOICES)) for _ in range(30)),
    ]

    def listing_ready() -> bool:
        with source.listing_session() as s:
            return (
                getattr(s, "company_listing", None) is not None
                and s.row_index is not None
                and s.listing_index is not None
            )

    try:
        deadline = time.monotonic() + 30
        while not listing_ready():
            assert time.monotonic() < deadline, "the listing was never built"
            time.sleep(0.05)
        for n, (flt, sort) in enumerate(questions):
            cursor = None
            for _ in range(3):  # and the pages after, through the cursors
                with source.listing_session() as s:
                    assert s.company_listing is not None and s.row_index is not None
                    decoded = q.decode_cursor(cursor, sort) if cursor else None
                    assert s.listing_index.page(flt, sort, 7, decoded) is not None  # ranked in memory
                    from_listing = q.list_companies(s, flt, sort=sort, limit=7, cursor=cursor)
                with source.session() as s:
                    from_postgres = q.list_companies(s, flt, sort=sort, limit=7, cursor=cursor)
                assert from_listing == from_postgres, (flt, sort, cursor)
                if n < 5 and cursor is None:
                    assert from_listing["items"] or flt.industry  # the questions select something
                cursor = from_listing["next_cursor"]
                if cursor is None:
                    break
        assert source.ranked_listing() is None  # markers asked on every request: none known
        marts_data.write_marts(pg_url, marts_data.marts(N, tag=" v2"))
        with source.listing_session() as s:  # the old listing is not this marker's: never used
            page = q.list_companies(s, q.CompanyFilter(), sort="domain", limit=3)
        assert all(r["company_name"].endswith(" v2") for r in page["items"])
    finally:
        marts_data.write_marts(pg_url, marts_data.marts(N))
        source.close()


def test_the_row_index_answers_as_postgres_does_and_only_for_its_marker(pg_url, monkeypatch):
    from enrichment_pipeline.lib import company_queries as q
    from enrichment_pipeline.lib import read_sources
    from enrichment_pipeline.lib.read_sources import PostgresSource

    monkeypatch.setattr(read_sources, "_CHUNK_ROWS", 7)  # read in several chunks, as at scale
    from enrichment_pipeline_tests.api.test_row_index import (
        assert_index_answers_as_the_query,
        wait_for_index,
    )

    source = PostgresSource(pg_url, max_size=2, change_check_s=60, index_sql=q.PROFILES_SQL)
    try:
        assert source.row_index() is None  # no marker known yet: it is not asked on this path
        first = wait_for_index(source, source.version())
        assert_index_answers_as_the_query(source, first, N)
        marts_data.write_marts(pg_url, marts_data.marts(N, tag=" v2"))
        source.change_check_s = 0  # the marker is asked again: the rebuild is seen
        new_marker = source.version()
        assert new_marker != first.version
        source.change_check_s = 60
        second = wait_for_index(source, new_marker)
        row = second.get(marts_data.company_domain(0))
        assert row is not None and row["company_name"].endswith(" v2")
        assert_index_answers_as_the_query(source, second, N)
    finally:
        marts_data.write_marts(pg_url, marts_data.marts(N))
        source.close()


def test_a_stale_marker_is_asked_again_in_the_background(pg_url):
    import time

    from enrichment_pipeline.lib.read_sources import PostgresSource

    source = PostgresSource(pg_url, max_size=2, change_check_s=0.2)
    try:
        marker = source.version()
        assert source.known_version() == marker  # fresh: known without asking
        time.sleep(0.3)
        assert source.known_version() is None  # stale: not waited for on this path ...
        deadline = time.monotonic() + 10
        while source.known_version() is None:  # ... but asked in the background
            assert time.monotonic() < deadline, "the marker was never asked again"
            time.sleep(0.01)
        assert source.known_version() == marker
    finally:
        source.close()


def test_a_marker_past_half_its_age_is_renewed_before_it_goes_stale(pg_url, monkeypatch):
    """Under steady traffic requests never find the marker stale (they would all fall back to
    PostgreSQL together): from half its age on, a request has it asked again in the background."""
    import time

    from enrichment_pipeline.lib import read_sources
    from enrichment_pipeline.lib.read_sources import PostgresSource

    now = [1000.0]
    monkeypatch.setattr(read_sources.time, "monotonic", lambda: now[0])
    source = PostgresSource(pg_url, max_size=2, change_check_s=10)
    try:
        marker = source.version()
        now[0] += 6  # past half its trusted age, still fresh
        assert source.known_version() == marker
        deadline = time.time() + 10
        while source._marker[0] != now[0]:  # renewed in the background
            assert time.time() < deadline, "the marker was not asked again at half its age"
            time.sleep(0.01)
        now[0] += 6  # 12 s after the first ask: stale, had it not been renewed
        assert source.known_version() == marker
    finally:
        source.close()


def test_the_ranked_listing_is_offered_for_its_marker_only(pg_url):
    import time

    source = _listing_source(pg_url, change_check_s=0.2)

    def offered(deadline_s: float = 30):
        deadline = time.monotonic() + deadline_s
        while (ranked := source.ranked_listing()) is None or ranked[0].version != source.known_version():
            with source.listing_session():  # starts the builds of the current marker
                pass
            assert time.monotonic() < deadline, "the listing was never ranked"
            time.sleep(0.05)
        return ranked

    try:
        first = offered()
        assert len(first[1]) == N
        marts_data.write_marts(pg_url, marts_data.marts(N, tag=" v2"))
        deadline = time.monotonic() + 10
        while (marker := source.known_version()) in (None, first[0].version):
            assert time.monotonic() < deadline, "the new marker was never seen"
            time.sleep(0.05)
        ranked = source.ranked_listing()
        assert ranked is None or ranked[0].version == marker  # never the old marker's
        second = offered()
        assert second[0].version == marker and second[1] is not first[1]
        row = second[0].get(marts_data.company_domain(0))
        assert row is not None and row["company_name"].endswith(" v2")
    finally:
        marts_data.write_marts(pg_url, marts_data.marts(N))
        source.close()
