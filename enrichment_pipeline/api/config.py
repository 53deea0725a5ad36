"""The API's settings, from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from enrichment_pipeline.lib import api_state, serving, settings


@dataclass(frozen=True)
class ApiConfig:
    host: str
    port: int
    warehouse_url: str
    snapshot_path: Path
    state_path: Path
    pool_size: int = 10
    max_body_bytes: int = 1_000_000
    max_domains_per_request: int = 1000
    job_ttl_days: int = 7
    start_daemon: bool = True
    cache_mb: int = 64  # serialized answers per data version; 0: no cache
    prerender_mb: int = 512  # every company's lookup body and list item, per data version; 0: none
    pg_change_check_ms: int = 500  # how stale a PostgreSQL marts marker may be; 0: asked every time
    # uvicorn worker processes on one port. One serves about one CPU; more pay off where the
    # clients are not on the same CPUs (on 2 CPUs shared with the benchmark client, one is faster).
    workers: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiConfig:
        env = os.environ if environ is None else environ
        url = settings.warehouse_url(env)
        port_text = env.get("API_PORT", "8000").strip() or "8000"
        if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
            raise settings.SettingsError(f"API_PORT must be a port number, not {port_text!r}")

        def number(name: str, default: int, minimum: int = 1) -> int:
            text = env.get(name, "").strip()
            if not text:
                return default
            if not text.isdigit() or int(text) < minimum:
                kind = "positive" if minimum else "non-negative"
                raise settings.SettingsError(f"{name} must be a {kind} whole number, not {text!r}")
            return int(text)

        return cls(
            host=env.get("API_HOST", "127.0.0.1").strip() or "127.0.0.1",
            port=int(port_text),
            warehouse_url=url,
            snapshot_path=serving.serving_path(url, env),
            state_path=api_state.state_path(env),
            pool_size=number("API_PG_POOL_SIZE", 10),
            max_body_bytes=number("API_MAX_BODY_BYTES", 1_000_000),
            max_domains_per_request=number("API_MAX_DOMAINS_PER_REQUEST", 1000),
            job_ttl_days=number("API_JOB_TTL_DAYS", 7),
            cache_mb=number("API_CACHE_MB", 64, minimum=0),
            prerender_mb=number("API_PRERENDER_MB", 512, minimum=0),
            pg_change_check_ms=number("API_PG_CHANGE_CHECK_MS", 500, minimum=0),
            workers=number("API_WORKERS", 1),
            start_daemon=env.get("API_START_DAEMON", "1").strip().lower() not in ("0", "false", "no"),
        )
