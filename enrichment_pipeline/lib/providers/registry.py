"""The providers this build knows, configured from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from enrichment_pipeline.lib.providers.apollo import Apollo
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.providers.clearbit import Clearbit
from enrichment_pipeline.lib.providers.explorium import Explorium
from enrichment_pipeline.lib.providers.similarweb import SimilarWeb
from enrichment_pipeline.lib.providers.yahoo import Yahoo
from enrichment_pipeline.lib.settings import SettingsError, enrichment_mode

PROVIDER_NAMES = ("builtwith", "similarweb", "clearbit", "apollo", "explorium", "yahoo")


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a whole number, not {raw!r}") from None


def build_provider(name: str, environ: Mapping[str, str] | None = None) -> Provider:
    env = os.environ if environ is None else environ
    try:
        if name == "builtwith":
            api = env.get("BUILTWITH_API", "domain").strip().lower() or "domain"
            if api not in ("domain", "free"):
                raise SettingsError(f"BUILTWITH_API must be 'domain' or 'free', not {api!r}")
            days = _int(env, "BUILTWITH_DEAD_AFTER_DAYS", 365)
            if days < 1:
                raise SettingsError(f"BUILTWITH_DEAD_AFTER_DAYS must be at least 1, not {days}")
            return BuiltWith(api=api, dead_after=timedelta(days=days))  # type: ignore[arg-type]
        if name == "similarweb":
            return SimilarWeb(country=env.get("SIMILARWEB_COUNTRY", "world").strip().lower() or "world")
        if name == "clearbit":
            return Clearbit()
        if name == "apollo":
            endpoint = env.get("APOLLO_ENDPOINT", "bulk").strip().lower() or "bulk"
            if endpoint not in ("bulk", "single"):
                raise SettingsError(f"APOLLO_ENDPOINT must be 'bulk' or 'single', not {endpoint!r}")
            return Apollo(bulk=endpoint == "bulk")
        if name == "explorium":
            return Explorium(batch_size=_int(env, "EXPLORIUM_BATCH_SIZE", 50))
        if name == "yahoo":
            path = env.get("YAHOO_TICKERS_PATH", "").strip() or None
            if enrichment_mode(env) == "sandbox":
                from enrichment_pipeline.lib.sandbox.yahoo import SandboxFinanceSource

                return Yahoo(source=SandboxFinanceSource(tickers_path=path), tickers_path=path)
            return Yahoo(tickers_path=path)
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{name}: {exc}") from None
    raise SettingsError(f"unknown provider {name!r}; known: {', '.join(PROVIDER_NAMES)}")
