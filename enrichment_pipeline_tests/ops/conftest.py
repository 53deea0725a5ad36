"""Fixtures for the production-operation tests: fresh PostgreSQL databases, Dagster homes made
from `deploy/dagster.yaml`, and run workers in processes of their own.

Tests that need PostgreSQL skip without TEST_DATABASE_URL (see the root conftest)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enrichment_pipeline.instance import postgres_env
from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES
from enrichment_pipeline_tests.conftest import postgres_admin, with_database

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONFIG = ROOT / "deploy" / "dagster.yaml"
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
ENV_PREFIXES = (*(f"{p.upper()}_" for p in PROVIDER_NAMES), "ENRICHMENT_", "SANDBOX_", "DAGSTER_PG_")
ENV_NAMES = ("WAREHOUSE_URL", "ICP_MODEL", "WATERFALL_CONFIG", "DAGSTER_HOME", "DAGSTER_EVENT_BATCH_SIZE")
WORKER_TIMEOUT_S = 180
PROVIDER_POOL = "provider_calls"  # the raw fetch step's pool (deploy/README.md)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider, mode, warehouse or Dagster setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture
def new_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Makes fresh databases `ep_ops_<random>` on the TEST_DATABASE_URL server; drops them afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"ep_ops_{secrets.token_hex(6)}"
        with postgres_admin(postgres_server_url) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return with_database(postgres_server_url, name)

    yield make
    with postgres_admin(postgres_server_url) as admin:
        for name in made:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class DagsterHome:
    """A DAGSTER_HOME whose dagster.yaml points at a fresh PostgreSQL database."""

    path: Path
    env: dict[str, str]  # DAGSTER_HOME and DAGSTER_PG_*, also set in this process

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.path))


@pytest.fixture
def make_pg_home(
    tmp_path: Path, new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[], DagsterHome]:
    """`make_pg_home()`: a DAGSTER_HOME with deploy/dagster.yaml as it ships (queue, pools,
    retries) on a fresh database, after the deploy step of deploy/README.md."""

    def make() -> DagsterHome:
        home = tmp_path / f"dagster_home_{secrets.token_hex(3)}"
        home.mkdir()
        shutil.copy(DEPLOY_CONFIG, home / "dagster.yaml")
        env = {"DAGSTER_HOME": str(home), **postgres_env(new_database())}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = DagsterHome(home, env)
        # `dagster instance concurrency set provider_calls 1`. Left to `default_limit`, two runs
        # that first use the pool at the same moment race in Dagster's pool initialisation on
        # PostgreSQL (dagster-io/dagster#33552).
        with result.instance() as instance:
            instance.event_log_storage.set_concurrency_slots(PROVIDER_POOL, 1)
        return result

    return make


def subprocess_env(extra: Mapping[str, str] = ()) -> dict[str, str]:
    """This process's (cleaned) environment, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@dataclass
class Worker:
    """`python -m enrichment_pipeline_tests.ops.worker` in a child process."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        warehouse_url: str,
        domains: Sequence[str],
        *,
        env: Mapping[str, str] = (),
        latency_ms: float = 0.0,
        wait_for_go: bool = False,
        live: bool = False,
        providers: str | None = None,
        cwd: Path | None = None,
    ) -> Worker:
        args = [
            sys.executable,
            "-m",
            "enrichment_pipeline_tests.ops.worker",
            "--warehouse-url",
            warehouse_url,
        ]
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        if wait_for_go:
            args.append("--wait-for-go")
        if live:
            args.append("--live")
        if providers:
            args += ["--providers", providers]
        proc = subprocess.Popen(
            [*args, *domains],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(env),
            cwd=cwd or ROOT,
        )
        return cls(proc)

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.wait(timeout=WORKER_TIMEOUT_S)
            raise AssertionError(f"worker did not start: {line!r} {self.proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=WORKER_TIMEOUT_S)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"worker exited {self.proc.returncode} without a result: {err[-3000:]}"
        summary = json.loads(lines[-1])
        summary["returncode"] = self.proc.returncode
        summary["stderr_tail"] = err[-3000:]
        return summary

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers appended here are killed at teardown if a test left them running."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()
