"""Pages ranked in memory are the pages the SQL answers, over random filters, sorts and cursors."""

from __future__ import annotations

import base64
import json
import random
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from enrichment_pipeline.lib import company_queries as q
from enrichment_pipeline.lib.listing_index import ListingIndex
from enrichment_pipeline.lib.read_sources import SnapshotSource
from enrichment_pipeline_tests.api import marts_data
from enrichment_pipeline_tests.api.test_row_index import wait_for_index

N = 150
SORTS = list(q.SORT_CHOICES)


def awkward_marts(n: int) -> dict[str, pl.DataFrame]:
    """The test marts with what ranking must get right: NULLs in every sort key and filter column,
    ties, mixed case, companies without a score or without technologies."""
    frames = marts_data.marts(n)
    i = pl.int_range(pl.len())
    profiles = frames["marts.company_profiles"].with_columns(
        country=pl.when(i % 13 == 0)
        .then(None)
        .when(i % 7 == 0)
        .then(pl.col("country").str.to_lowercase())
        .otherwise(pl.col("country")),
        search_vendor=pl.when(i % 5 == 0)
        .then(pl.col("search_vendor").str.to_uppercase())
        .otherwise(pl.col("search_vendor")),
        employees=pl.when(i % 17 == 0).then(None).when(i % 4 == 0).then(500).otherwise(pl.col("employees")),
        enriched_at=pl.when(i % 19 == 0).then(None).otherwise(pl.col("enriched_at")),
        status=pl.when(i % 23 == 0).then(None).otherwise(pl.col("status")),
        industry_naics=pl.when(i % 29 == 0).then(None).otherwise(pl.col("industry_naics")),
    )
    scores = (
        frames["marts.icp_scores"]
        .with_columns(icp_score=pl.when(i % 8 == 0).then(None).otherwise(pl.col("icp_score")))
        .filter(i % 31 != 5)  # no score row at all: LEFT JOIN gives NULL tier and score
    )
    without_techs = {marts_data.company_domain(k) for k in range(0, n, 37)}
    techs = frames["marts.fct_company_technology"].filter(~pl.col("domain").is_in(list(without_techs)))
    return {
        **frames,
        "marts.company_profiles": profiles,
        "marts.icp_scores": scores,
        "marts.fct_company_technology": techs,
    }


def wait_for_pages(source: SnapshotSource) -> None:
    wait_for_index(source)  # the in-memory ranking is built right after the row index
    deadline = time.monotonic() + 30
    while True:
        with source.listing_session() as s:
            if s.listing_index is not None:
                return
        assert time.monotonic() < deadline, "the listing was never ranked in memory"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("listing-index")
    path = marts_data.write_snapshot(base / "serving.duckdb", awkward_marts(N), base / "w")
    ranked = SnapshotSource(path, q.LISTING_SQL, q.PROFILES_SQL, listing_pages=ListingIndex.build)
    plain = SnapshotSource(path)
    try:
        wait_for_pages(ranked)
        yield ranked, plain
    finally:
        ranked.close()
        plain.close()


def random_filter(rnd: random.Random) -> q.CompanyFilter:
    values: dict = {}
    if rnd.random() < 0.3:
        values["tiers"] = sorted(
            set(rnd.sample(["hot", "warm", "cool", "cold", "lukewarm"], rnd.randint(1, 3)))
        )
    if rnd.random() < 0.3:
        values["min_score"] = rnd.choice([0.0, 10.0, 25.5, 40.0, 70.0])
    if rnd.random() < 0.2:
        values["max_score"] = rnd.choice([30.0, 50.0, 99.0, 100.0])
    if rnd.random() < 0.2:
        values["industry"] = rnd.choice([s[0] for s in marts_data.SECTORS] + ["99"])
    if rnd.random() < 0.25:
        values["country"] = rnd.choice([*marts_data.COUNTRIES, "zz"]).upper()
    if rnd.random() < 0.3:
        values["technologies"] = sorted({t.lower() for t in rnd.sample(marts_data.TECHS, rnd.randint(1, 2))})
    if rnd.random() < 0.3:
        values["without_technologies"] = sorted({rnd.choice(marts_data.TECHS).lower(), "nothing-like-it"})
    if rnd.random() < 0.15:
        values["search_vendor"] = rnd.choice(["algolia", "klevu", "elasticsearch", "none"])
    if rnd.random() < 0.15:
        values["ecommerce_platform"] = rnd.choice(["shopify", "magento", "salesforce commerce cloud"])
    if rnd.random() < 0.2:
        values["statuses"] = sorted(set(rnd.sample(["enriched", "partial", "failed"], rnd.randint(1, 2))))
    if rnd.random() < 0.2:
        values["enriched_since"] = marts_data.T0 + timedelta(hours=rnd.randint(0, 520))
    return q.CompanyFilter(**values)


def test_random_questions_are_answered_in_memory_exactly_as_the_sql_answers(sources):
    ranked, plain = sources
    rnd = random.Random(11)
    answered_in_memory = pages_compared = 0
    for _ in range(250):
        flt, sort, limit = random_filter(rnd), rnd.choice(SORTS), rnd.choice([1, 3, 7, 25, 200])
        cursor = None
        for _ in range(6):
            with ranked.listing_session() as s:
                assert s.listing_index is not None and s.row_index is not None
                decoded = q.decode_cursor(cursor, sort) if cursor else None
                answered_in_memory += s.listing_index.page(flt, sort, limit, decoded) is not None
                page = q.list_companies(s, flt, sort=sort, limit=limit, cursor=cursor)
            with plain.session() as s:
                assert q.list_companies(s, flt, sort=sort, limit=limit, cursor=cursor) == page, (flt, sort)
            pages_compared += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert answered_in_memory == pages_compared  # none of these needed the SQL
    assert pages_compared > 400


def _cursor(sort: str, value, domain: str) -> str:
    raw = json.dumps({"s": sort, "v": value, "d": domain}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "value", "domain"),
    [
        ("-icp_score", float("nan"), "company000010.com"),
        ("-icp_score", float("inf"), "company000010.com"),
        ("icp_score", 10**30, "company000010.com"),
        ("-monthly_visits", 5000, "compañía.com"),
        ("-enriched_at", "2026-01-01", "company000010.com"),
        ("enriched_at", "2026-01-01T00:00:00.000000+00:00", "company000010.com"),
        ("domain", "x", "company000010.com"),
    ],
)
def test_cursors_this_api_would_not_issue_are_left_to_the_sql(sources, sort, value, domain):
    ranked, plain = sources
    cursor = _cursor(sort, value, domain)
    with ranked.listing_session() as s:
        decoded = q.decode_cursor(cursor, sort)
        if sort != "domain":
            assert s.listing_index.page(q.CompanyFilter(), sort, 5, decoded) is None
        page = q.list_companies(s, q.CompanyFilter(), sort=sort, limit=5, cursor=cursor)
    with plain.session() as s:
        assert q.list_companies(s, q.CompanyFilter(), sort=sort, limit=5, cursor=cursor) == page


def test_a_column_with_nan_is_ranked_by_the_sql(tmp_path: Path):
    frames = marts_data.marts(30)
    i = pl.int_range(pl.len())
    frames["marts.company_profiles"] = frames["marts.company_profiles"].with_columns(
        monthly_visits=pl.when(i == 4).then(float("nan")).otherwise(pl.col("monthly_visits"))
    )
    path = marts_data.write_snapshot(tmp_path / "serving.duckdb", frames, tmp_path / "w")
    source = SnapshotSource(path, q.LISTING_SQL, q.PROFILES_SQL, listing_pages=ListingIndex.build)
    plain = SnapshotSource(path)
    try:
        wait_for_pages(source)
        with source.listing_session() as s:
            pages = s.listing_index
            assert pages is not None and "monthly_visits" in pages.inexact
            assert pages.page(q.CompanyFilter(), "-monthly_visits", 10, None) is None
            assert pages.page(q.CompanyFilter(), "-icp_score", 10, None) is not None
            page = q.list_companies(s, q.CompanyFilter(), sort="-monthly_visits", limit=10)
        with plain.session() as s:
            asked = q.list_companies(s, q.CompanyFilter(), sort="-monthly_visits", limit=10)
        # Compared as JSON: NaN is not equal to itself.
        assert json.dumps(asked) == json.dumps(page)
        assert page["items"][0]["domain"] == marts_data.company_domain(4)  # NaN first, as DuckDB orders
    finally:
        source.close()
        plain.close()


def test_an_empty_listing_has_empty_pages():
    frame = pl.DataFrame(
        schema={
            "domain": pl.String,
            "icp_score": pl.Float64,
            "icp_tier": pl.String,
            "status": pl.String,
            "industry_naics": pl.String,
            "country_cmp": pl.String,
            "search_vendor_cmp": pl.String,
            "ecommerce_platform_cmp": pl.String,
            "employees": pl.Float64,
            "revenue_usd": pl.Float64,
            "monthly_visits": pl.Float64,
            "enriched_at_us": pl.Int64,
            "current_technologies": pl.List(pl.String),
        }
    )
    pages = ListingIndex(frame)
    page = pages.page(q.CompanyFilter(technologies=["algolia"]), "-icp_score", 10, None)
    assert page is not None and page.domains == [] and page.last_value is None


def test_pages_joined_from_rendered_items_are_the_validated_pages_of_the_sql(sources):
    from types import SimpleNamespace

    from enrichment_pipeline.api import schemas
    from enrichment_pipeline.api.body_cache import BodyCache
    from enrichment_pipeline.api.rendered_bodies import RenderedBodies
    from enrichment_pipeline.api.routes_companies import _ranked_page_body, row_body, row_item

    ranked, plain = sources
    api = SimpleNamespace(
        source=ranked, rendered=RenderedBodies(64 * 2**20, row_body, row_item), bodies=BodyCache(2**20)
    )
    listing = ranked.ranked_listing()
    assert listing is not None
    api.rendered.ensure(listing[0])
    api.rendered.wait(30)
    rnd = random.Random(23)
    joined = 0
    for n in range(120):
        flt, sort, limit = random_filter(rnd), rnd.choice(SORTS), rnd.choice([1, 7, 50])
        cursor = None
        for _ in range(4):
            body = _ranked_page_body(api, ("page", n, cursor), flt, sort, limit, cursor)
            assert body is not None, (flt, sort)  # answered from memory
            with plain.session() as s:
                page = q.list_companies(s, flt, sort=sort, limit=limit, cursor=cursor)
            assert body.content == schemas.CompanyPage.model_validate(page).model_dump_json().encode()
            joined += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert joined > 200


def test_a_page_asked_before_any_lookup_starts_the_render(sources):
    from types import SimpleNamespace

    from enrichment_pipeline.api.body_cache import BodyCache
    from enrichment_pipeline.api.rendered_bodies import RenderedBodies
    from enrichment_pipeline.api.routes_companies import _ranked_page_body, row_body, row_item

    ranked, _ = sources
    api = SimpleNamespace(
        source=ranked, rendered=RenderedBodies(64 * 2**20, row_body, row_item), bodies=BodyCache(2**20)
    )
    flt = q.CompanyFilter(tiers=["hot"])
    assert _ranked_page_body(api, ("page", 1), flt, "-icp_score", 10, None) is None  # not rendered yet
    api.rendered.wait(30)
    assert _ranked_page_body(api, ("page", 2), flt, "-icp_score", 10, None) is not None


def test_a_listing_too_large_for_the_event_loop_is_ranked_in_a_thread(sources, monkeypatch):
    from types import SimpleNamespace

    from enrichment_pipeline.api import routes_companies
    from enrichment_pipeline.api.body_cache import BodyCache
    from enrichment_pipeline.api.rendered_bodies import RenderedBodies

    ranked, _ = sources
    api = SimpleNamespace(
        source=ranked,
        rendered=RenderedBodies(64 * 2**20, routes_companies.row_body, routes_companies.row_item),
        bodies=BodyCache(2**20),
    )
    api.rendered.ensure(ranked.ranked_listing()[0])
    api.rendered.wait(30)
    flt = q.CompanyFilter()
    assert routes_companies._ranked_page_body(api, ("p", 1), flt, "domain", 5, None) is not None
    monkeypatch.setattr(routes_companies, "RANKED_ON_LOOP_MAX", N - 1)
    assert routes_companies._ranked_page_body(api, ("p", 2), flt, "domain", 5, None) is None


def test_with_rendering_off_a_page_is_not_ranked_on_the_loop_only_to_be_ranked_again(sources):
    from types import SimpleNamespace

    from enrichment_pipeline.api.body_cache import BodyCache
    from enrichment_pipeline.api.rendered_bodies import RenderedBodies
    from enrichment_pipeline.api.routes_companies import _ranked_page_body, row_body, row_item

    ranked, _ = sources
    index, _ = ranked.ranked_listing()

    class Unranked:
        def __len__(self) -> int:
            return N

        def page(self, *args):
            raise AssertionError("ranked on the event loop although its items are not rendered")

    api = SimpleNamespace(
        source=SimpleNamespace(ranked_listing=lambda: (index, Unranked())),
        rendered=RenderedBodies(0, row_body, row_item),
        bodies=BodyCache(2**20),
    )
    assert _ranked_page_body(api, ("p", 1), q.CompanyFilter(), "domain", 5, None) is None
