"""The lookup answered before FastAPI's routing answers exactly what the route answers."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.api.lookup_path import CompanyLookupPath
from enrichment_pipeline.lib.api_keys import KeyStore
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline_tests.api.conftest import LiveServer, api_config

COMPARED_HEADERS = (
    "content-type",
    "etag",
    "cache-control",
    "www-authenticate",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-policy",
)


def _route_only(app):
    """The app without the middleware: every lookup goes through FastAPI's route."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not CompanyLookupPath]
    return app


def _until_indexed(server: LiveServer, app) -> None:
    with server.client() as c:
        assert c.get("/ready").status_code == 200  # opens the snapshot, which builds the index
    deadline = time.monotonic() + 20
    while (index := app.state.api.source.row_index()) is None:
        assert time.monotonic() < deadline, "the row index was not built"
        time.sleep(0.02)
    while app.state.api.source.ranked_listing() is None:
        with server.client() as c:
            c.get("/health")
        assert time.monotonic() < deadline, "the listing was not ranked in memory"
        time.sleep(0.02)
    app.state.api.rendered.ensure(index)  # a no-op where rendering is off
    app.state.api.rendered.wait(20)


def _keys(state: Path) -> dict[str, str]:
    store = KeyStore(StateStore(state))
    return {
        "admin": store.create("admin", ("read",), "admin")[1],
        "standard": store.create("standard", ("read",), "standard")[1],
        "enrich-only": store.create("enrich", ("enrich",), "admin")[1],
    }


def _answer(r: httpx.Response) -> tuple:
    body = r.json() if r.content else None
    if isinstance(body, dict) and "freshness" in body:
        body["freshness"].pop("age_seconds")  # the clock's, compared apart
    headers = {h: r.headers.get(h) for h in COMPARED_HEADERS}
    # Seconds to the window's end move with the clock between the two requests.
    if headers["retry-after"] is not None:
        headers["retry-after"] = "set"
    text = re.sub(r"retry in \d+ s", "retry in N s", json.dumps(body, sort_keys=True))
    return r.status_code, text, headers


@pytest.fixture
def both(tmp_path: Path, snapshot_dir: Path):
    snapshot = snapshot_dir / "serving.duckdb"
    # The fast one answers from bodies rendered in the background; the route builds each one.
    fast_cfg = api_config(tmp_path / "fast", snapshot)
    route_cfg = api_config(tmp_path / "route", snapshot, prerender_mb=0)
    for cfg in (fast_cfg, route_cfg):
        cfg.state_path.parent.mkdir()
    fast_app, route_app = create_app(fast_cfg), _route_only(create_app(route_cfg))
    with LiveServer(fast_app) as fast, LiveServer(route_app) as route:
        _until_indexed(fast, fast_app)
        _until_indexed(route, route_app)
        assert (
            fast_app.state.api.rendered.get(
                fast_app.state.api.source.row_index().version, "company000003.com"
            )
            is not None
        )
        yield (fast, _keys(fast_cfg.state_path)), (route, _keys(route_cfg.state_path))


def test_every_kind_of_lookup_answer_is_the_routes_answer(both):
    requests = [
        ("admin", "/v1/companies/company000003.com", {}),
        ("admin", "/v1/companies/HTTPS://WWW.Company000003.COM/about?x=1", {}),
        ("admin", "/v1/companies/company000003.com?unused=1", {}),
        ("admin", "/v1/companies/unknown-co.io", {}),
        ("admin", "/v1/companies/not a domain", {}),
        ("admin", "/v1/companies/" + "a" * 2049 + ".com", {}),
        ("admin", "/v1/companies/company000003.com", {"If-None-Match": '"stale"'}),
        ("enrich-only", "/v1/companies/company000003.com", {}),
        (None, "/v1/companies/company000003.com", {}),
        (None, "/v1/companies/company000003.com", {"Authorization": "Basic abc"}),
        (None, "/v1/companies/company000003.com", {"Authorization": "Bearer ep_wrong_key"}),
    ]
    (fast, fast_keys), (route, route_keys) = both
    for who, path, headers in requests:
        answers = []
        for server, keys in ((fast, fast_keys), (route, route_keys)):
            with server.client(keys[who] if who else None) as c:
                answers.append(_answer(c.get(path, headers=headers)))
        assert answers[0] == answers[1], (who, path, headers)

    # Repeated headers: both read the first one.
    repeated = []
    for server, keys in ((fast, fast_keys), (route, route_keys)):
        with server.client() as c:
            r = c.get(
                "/v1/companies/company000003.com",
                headers=[("authorization", f"Bearer {keys['admin']}"), ("authorization", "Bearer wrong")],
            )
            repeated.append(_answer(r))
    assert repeated[0] == repeated[1] and repeated[0][0] == 200

    etags = []
    for server, keys in ((fast, fast_keys), (route, route_keys)):
        with server.client(keys["admin"]) as c:
            first = c.get("/v1/companies/company000004.com")
            again = c.get("/v1/companies/company000004.com", headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
            assert first.json()["freshness"]["age_seconds"] >= 0
            etags.append(first.headers["etag"])
    assert etags[0] == etags[1]


def test_rate_limits_are_counted_once_and_answered_alike(both):
    (fast, fast_keys), (route, route_keys) = both
    # 204 requests take a second or two: start them early in a minute, so one window holds them.
    if time.time() % 60 > 45:
        time.sleep(60 - time.time() % 60 + 0.2)
    answers = []
    for server, keys in ((fast, fast_keys), (route, route_keys)):
        with server.client(keys["standard"]) as c:
            statuses = [c.get("/v1/companies/company000001.com").status_code for _ in range(101)]
            answers.append((statuses, _answer(c.get("/v1/companies/company000001.com"))))
    assert all(s[:100] == [200] * 100 for s, _ in answers)
    assert answers[0][0][100] == answers[1][0][100] == 429
    assert answers[0][1] == answers[1][1] and answers[0][1][0] == 429


async def test_the_middleware_answers_only_indexed_lookups_and_passes_everything_else_on(both):
    (fast, fast_keys), _ = both
    app = fast.server.config.app
    passed: list[str] = []

    async def inner(scope, receive, send) -> None:
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = CompanyLookupPath(inner)

    async def with_app(scope, receive, send) -> None:
        scope["app"] = app  # what Starlette sets before its middleware runs
        await middleware(scope, receive, send)

    auth = {"Authorization": f"Bearer {fast_keys['admin']}"}
    transport = httpx.ASGITransport(app=with_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=auth) as c:
        assert (await c.get("/v1/companies/company000002.com")).status_code == 200
        assert (await c.get("/v1/companies/nowhere-co.io")).status_code == 404
        for path in (
            "/v1/companies/company000002.com/technologies",
            "/v1/companies",
            "/v1/companies/",
            "/v1/stats",
            "/v1/companies/" + "b" * 2049,
        ):
            assert (await c.get(path)).status_code == 299, path
        assert (await c.head("/v1/companies/company000002.com")).status_code == 299
        assert passed == [
            "/v1/companies/company000002.com/technologies",
            "/v1/companies",
            "/v1/companies/",
            "/v1/stats",
            "/v1/companies/" + "b" * 2049,
            "/v1/companies/company000002.com",
        ]

        # Before the index is built the route answers (it reads the warehouse in a thread).
        source = app.state.api.source
        real = source.row_index
        source.row_index = lambda: None
        try:
            assert (await c.get("/v1/companies/company000002.com")).status_code == 299
        finally:
            source.row_index = real


def test_pages_joined_from_rendered_items_are_the_routes_validated_pages(both):
    (fast, fast_keys), (route, route_keys) = both
    paths = [
        "/v1/companies?limit=5",
        "/v1/companies?limit=3&sort=domain&tier=hot&tier=warm",
        "/v1/companies?technology=Algolia&sort=-monthly_visits&limit=4",
        "/v1/companies?without_technology=shopify&min_score=20&sort=-enriched_at&limit=6",
        "/v1/companies?country=gb&industry=51&sort=employees",
        "/v1/companies?status=partial&sort=-revenue_usd&limit=2",
        "/v1/companies?cursor=not-a-cursor",
    ]
    for path in paths:
        url = path
        for _ in range(3):  # the first pages, through their cursors
            answers = []
            for server, keys in ((fast, fast_keys), (route, route_keys)):
                with server.client(keys["admin"]) as c:
                    r = c.get(url)
                    answers.append((r.status_code, r.content, r.headers.get("content-type")))
            assert answers[0] == answers[1], url
            if answers[0][0] != 200:
                break
            cursor = json.loads(answers[0][1])["next_cursor"]
            if cursor is None:
                break
            url = f"{path}&cursor={cursor}"
