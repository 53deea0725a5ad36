"""Run-time settings read from the environment (never at import time).

One place turns `ENRICHMENT_MODE`, `WAREHOUSE_URL` and the `<P>_*` variables
into typed values, and turns bad values into one clear message.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from enrichment_pipeline.lib.providers.base import Provider

Mode = Literal["sandbox", "live"]
_Default = TypeVar("_Default")
_Number = TypeVar("_Number", int, float)

# Sandbox providers answer in microseconds; a high default keeps `make run`
# quick while still sending every call through the limiter.
SANDBOX_DEFAULT_RPS = 200.0


class SettingsError(ValueError):
    """A bad environment value; the message names the variable."""


def enrichment_mode(environ: Mapping[str, str] | None = None) -> Mode:
    env = os.environ if environ is None else environ
    mode = env.get("ENRICHMENT_MODE", "sandbox").strip().lower() or "sandbox"
    if mode not in ("sandbox", "live"):
        raise SettingsError(f"ENRICHMENT_MODE must be 'sandbox' or 'live', not {mode!r}")
    return mode  # type: ignore[return-value]


def sandbox_epoch(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    epoch = env_int(env, "SANDBOX_EPOCH", 1)
    if epoch < 1:
        raise SettingsError("SANDBOX_EPOCH must be 1 or more")
    return epoch


def enabled_providers(known: tuple[str, ...], environ: Mapping[str, str] | None = None) -> list[str]:
    """`ENRICHMENT_PROVIDERS` (comma-separated) narrows the providers a run calls."""
    env = os.environ if environ is None else environ
    raw = env.get("ENRICHMENT_PROVIDERS", "").strip()
    if not raw:
        return list(known)
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SettingsError(
            f"ENRICHMENT_PROVIDERS names unknown provider(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return names


def warehouse_url(environ: Mapping[str, str] | None = None, base_dir: Path | None = None) -> str:
    """`WAREHOUSE_URL`, else a DuckDB file per mode so sandbox rows never mix with live ones."""
    env = os.environ if environ is None else environ
    url = env.get("WAREHOUSE_URL", "").strip()
    if url:
        return url
    name = "sandbox.duckdb" if enrichment_mode(env) == "sandbox" else "warehouse.duckdb"
    return f"duckdb:///{(base_dir or Path.cwd()) / 'data' / name}"


def env_int(env: Mapping[str, str], key: str, default: _Default) -> int | _Default:
    """`key` as a whole number of 0 or more; `default` when unset or blank."""
    return _env_number(env, key, default, int, "a whole number")


def env_float(env: Mapping[str, str], key: str, default: _Default) -> float | _Default:
    """`key` as a number of 0 or more; `default` when unset or blank."""
    return _env_number(env, key, default, float, "a number")


def _env_number(
    env: Mapping[str, str], key: str, default: _Default, parse: Callable[[str], _Number], kind: str
) -> _Number | _Default:
    # Every numeric variable is read by this one rule: junk, NaN, infinity and negatives are a
    # SettingsError naming the variable.
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{key} must be {kind}, not {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{key} must be {kind}, not {raw!r}")
    if value < 0:
        raise SettingsError(f"{key} must not be negative, not {raw!r}")
    return value


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    value = env_float(env, key, default)
    if value == 0:
        raise SettingsError(f"{key} must be more than 0")
    return value


@dataclass(frozen=True)
class ProviderSettings:
    """How the shared HTTP policy treats one provider in one run."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    rps: float | None = None  # None or 0: no limit
    daily_quota: int | None = None
    cost_per_call: float = 0.0
    concurrency: int = 16
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0  # between two bytes of the answer
    pool_timeout_s: float = 10.0  # waiting for a free connection of the client's pool
    # One attempt, from asking for a connection to the last byte of the body: a server
    # that drips bytes never trips the read timeout, but always this.
    attempt_deadline_s: float = 30.0
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0
    max_response_bytes: int = 5_000_000  # after decompression
    breaker_failures: int = 5  # failed attempts in a row (retries included) that open the breaker
    breaker_cooldown_s: float = 60.0

    @classmethod
    def from_env(
        cls, provider: Provider, mode: Mode, environ: Mapping[str, str] | None = None
    ) -> ProviderSettings:
        env = os.environ if environ is None else environ
        p = provider.name.upper()
        default_rps = SANDBOX_DEFAULT_RPS if mode == "sandbox" else provider.default_rps
        key = env.get(f"{p}_API_KEY", "").strip() or None
        if mode == "sandbox" and key is None:
            # The simulator checks that a key is sent, like the real APIs do.
            key = f"sandbox-{provider.name}-key"
        rps = env_float(env, f"{p}_RPS", default_rps)
        return cls(
            name=provider.name,
            base_url=(env.get(f"{p}_BASE_URL", "").strip() or provider.default_base_url).rstrip("/"),
            api_key=key,
            rps=rps or None,
            daily_quota=env_int(env, f"{p}_DAILY_QUOTA", provider.default_daily_quota),
            cost_per_call=env_float(env, f"{p}_COST_PER_CALL", provider.default_cost_per_call),
            concurrency=max(1, env_int(env, f"{p}_CONCURRENCY", 16)),
            max_attempts=max(1, env_int(env, f"{p}_MAX_ATTEMPTS", 4)),
            connect_timeout_s=_positive(env, f"{p}_CONNECT_TIMEOUT_S", cls.connect_timeout_s),
            read_timeout_s=_positive(env, f"{p}_READ_TIMEOUT_S", cls.read_timeout_s),
            pool_timeout_s=_positive(env, f"{p}_POOL_TIMEOUT_S", cls.pool_timeout_s),
            attempt_deadline_s=_positive(env, f"{p}_ATTEMPT_DEADLINE_S", cls.attempt_deadline_s),
            max_response_bytes=int(_positive(env, f"{p}_MAX_RESPONSE_BYTES", cls.max_response_bytes)),
            breaker_failures=max(1, env_int(env, f"{p}_BREAKER_FAILURES", cls.breaker_failures)),
            breaker_cooldown_s=env_float(env, f"{p}_BREAKER_COOLDOWN_S", cls.breaker_cooldown_s),
        )
