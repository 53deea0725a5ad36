"""A real uvicorn serving the API on 127.0.0.1 (ephemeral port), over a snapshot made for the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.api.config import ApiConfig
from enrichment_pipeline.lib.api_keys import KeyStore
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline_tests.api import marts_data

N_COMPANIES = 60


class LiveServer:
    def __init__(self, app) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def snapshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("api-snapshot")
    marts_data.write_snapshot(base / "serving.duckdb", marts_data.marts(N_COMPANIES), base / "work")
    return base


def api_config(tmp: Path, snapshot: Path, **overrides) -> ApiConfig:
    values = dict(
        host="127.0.0.1",
        port=0,
        warehouse_url=f"duckdb:///{tmp / 'warehouse.duckdb'}",
        snapshot_path=snapshot,
        state_path=tmp / "api_state.sqlite3",
    )
    return ApiConfig(**{**values, **overrides})


@pytest.fixture
def config(tmp_path: Path, snapshot_dir: Path) -> ApiConfig:
    return api_config(tmp_path, snapshot_dir / "serving.duckdb")


@pytest.fixture
def server(config: ApiConfig) -> Iterator[LiveServer]:
    with LiveServer(create_app(config)) as live:
        yield live


@pytest.fixture
def make_key(config: ApiConfig) -> Callable[..., str]:
    def make(scopes: tuple[str, ...] = ("read",), tier: str = "standard", name: str = "test") -> str:
        return KeyStore(StateStore(config.state_path)).create(name, scopes, tier)[1]

    return make
