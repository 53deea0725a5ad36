"""Shared fakes for the HTTP policy, fetching and warehouse tests.

`FakeProvider` is a tiny provider (one GET `/v1/thing` per domain) whose key can
travel in a query parameter, a header or basic auth. `Script` is an
`httpx.MockTransport` handler that answers each call from a scripted list and
records every request it saw.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
import pytest

from enrichment_pipeline.lib.providers.base import Auth, Interpretation, Provider, ProviderRequest
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import ResponseRow, Warehouse

SENTINEL = "SENTINEL-KEY-8c1f2e"
BASE_URL = "https://fake.test"
THING_PATH = "/v1/thing"
KeyIn = Literal["query", "header", "basic"]


class FakeProvider(Provider):
    """One GET `/v1/thing?domain=<d>` per domain.

    Its own readings: HTTP 409 asks for one fallback call to `/v1/thing/alt`;
    HTTP 400 with a JSON `message` puts that message (which may echo the URL)
    into the detail, like real providers that quote the server's error.
    """

    name: ClassVar[str] = "fake"
    default_base_url: ClassVar[str] = BASE_URL
    default_rps: ClassVar[float] = 10.0

    def __init__(self, name: str = "fake", key_in: KeyIn = "query") -> None:
        self.name = name  # type: ignore[misc]  # per-instance name for multi-provider tests
        self.key_in = key_in

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        return [ProviderRequest("thing", "GET", THING_PATH, {"domain": domain})]

    def auth(self, api_key: str) -> Auth:
        if self.key_in == "header":
            return Auth(headers={"X-Api-Key": api_key})
        if self.key_in == "basic":
            return Auth(basic_user=api_key)
        return Auth(params={"key": api_key})

    def interpret(self, request: ProviderRequest, http_status: int, body: Any) -> Interpretation | None:
        if http_status == 409 and request.path == THING_PATH:
            return Interpretation(
                "error",
                detail=f"conflict, falling back: {body}",
                fallback=ProviderRequest("thing", "GET", f"{THING_PATH}/alt", dict(request.params)),
            )
        if http_status == 400 and isinstance(body, dict) and "message" in body:
            return Interpretation("error", body, detail=str(body["message"]))
        return None


def make_settings(**overrides: Any) -> ProviderSettings:
    """Fast settings: tiny backoff, no rate limit, no quota, unless overridden."""
    base = ProviderSettings(
        name="fake",
        base_url=BASE_URL,
        api_key=SENTINEL,
        rps=None,
        daily_quota=None,
        cost_per_call=0.0,
        concurrency=16,
        connect_timeout_s=1.0,
        read_timeout_s=1.0,
        max_attempts=3,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
        max_retry_after_s=60.0,
        max_response_bytes=1_000_000,
        breaker_failures=1000,
        breaker_cooldown_s=60.0,
    )
    return replace(base, **overrides)


Step = httpx.Response | Exception | Callable[[httpx.Request], Any]


def json_response(status: int = 200, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"ok": True} if body is None else body, headers=headers)


class Script:
    """A MockTransport handler answering call i with steps[i] (the last step repeats).

    A step is a ready `httpx.Response` (a fresh copy is served each time), an
    exception instance (raised, bound to the request), or a callable
    `request -> Response` (sync or async).
    """

    def __init__(self, *steps: Step) -> None:
        self.steps: list[Step] = list(steps) or [json_response()]
        self.requests: list[httpx.Request] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, Exception):
            if isinstance(step, httpx.RequestError):
                step = type(step)(str(step), request=request)
            raise step
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        result = step(request)
        if inspect.isawaitable(result):
            result = await result
        return result


async def fetch_many(client: Any, n: int, provider: Provider | None = None) -> list[Any]:
    """n concurrent fetches of distinct domains through an entered ProviderClient."""
    provider = provider or client.provider
    requests = [provider.requests_for(f"d{i}.example")[0] for i in range(n)]
    return await asyncio.gather(*(client.fetch(r) for r in requests))


def response_row(
    domain: str = "a.example",
    status: str = "ok",
    *,
    provider: str = "fake",
    endpoint: str = "thing",
    payload: Any = None,
    fetched_at: datetime | None = None,
    expires_at: datetime | None = None,
    mode: str = "sandbox",
) -> ResponseRow:
    fetched = fetched_at or datetime(2025, 1, 1, tzinfo=UTC)
    return ResponseRow(
        provider=provider,
        endpoint=endpoint,
        domain=domain,
        status=status,
        http_status=200 if status == "ok" else 500,
        payload=payload,
        detail=None if status == "ok" else f"{status} detail",
        fetched_at=fetched,
        expires_at=expires_at or fetched,
        attempts=1,
        latency_ms=1.0,
        cost_usd=0.0,
        mode=mode,
    )


def rows_by_domain(rows: Iterable[ResponseRow]) -> dict[str, list[ResponseRow]]:
    grouped: dict[str, list[ResponseRow]] = {}
    for row in rows:
        grouped.setdefault(row.domain, []).append(row)
    return grouped


@pytest.fixture
def warehouse_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'w.duckdb'}"


@pytest.fixture
def warehouse(warehouse_url: str):
    wh = Warehouse.open(warehouse_url)
    try:
        yield wh
    finally:
        wh.close()


# --- PostgreSQL warehouse (TEST_DATABASE_URL) ----------------------------------------------------------

POSTGRES_SKIP_REASON = "TEST_DATABASE_URL not set: PostgreSQL warehouse tests need a server"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The server named by TEST_DATABASE_URL (only its host, port and user are used); else skip."""
    import os

    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    return url


def postgres_admin(server_url: str):
    """An autocommit psycopg connection to the TEST_DATABASE_URL database, for CREATE/DROP DATABASE."""
    import psycopg

    from enrichment_pipeline.lib.warehouse.postgres_backend import PostgresTarget

    return psycopg.connect(PostgresTarget(server_url).conninfo, autocommit=True)


def with_database(server_url: str, name: str) -> str:
    """The same server URL naming another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterable[str]:
    """A fresh, empty database `ep_test_<random>` of its own; dropped (WITH FORCE) afterwards."""
    import secrets

    name = f"ep_test_{secrets.token_hex(6)}"
    with postgres_admin(postgres_server_url) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(postgres_server_url, name)
    finally:
        with postgres_admin(postgres_server_url) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
