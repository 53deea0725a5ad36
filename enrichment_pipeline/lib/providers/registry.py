"""The providers this build knows, configured from the environment, and which of them a run uses."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from enrichment_pipeline.lib.config_files import ConfigFileError
from enrichment_pipeline.lib.providers.apollo import Apollo
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.providers.clearbit import Clearbit
from enrichment_pipeline.lib.providers.explorium import Explorium
from enrichment_pipeline.lib.providers.similarweb import SimilarWeb
from enrichment_pipeline.lib.providers.yahoo import Yahoo
from enrichment_pipeline.lib.settings import (
    Mode,
    ProviderSettings,
    SettingsError,
    enabled_providers,
    enrichment_mode,
    env_int,
)

PROVIDER_NAMES = ("builtwith", "similarweb", "clearbit", "apollo", "explorium", "yahoo")


def build_provider(name: str, environ: Mapping[str, str] | None = None) -> Provider:
    env = os.environ if environ is None else environ
    try:
        if name == "builtwith":
            api = env.get("BUILTWITH_API", "domain").strip().lower() or "domain"
            if api not in ("domain", "free"):
                raise SettingsError(f"BUILTWITH_API must be 'domain' or 'free', not {api!r}")
            days = env_int(env, "BUILTWITH_DEAD_AFTER_DAYS", 365)
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
            return Explorium(batch_size=env_int(env, "EXPLORIUM_BATCH_SIZE", 50))
        if name == "yahoo":
            path = env.get("YAHOO_TICKERS_PATH", "").strip() or None
            if path is not None and not Path(path).is_file():
                raise SettingsError(f"YAHOO_TICKERS_PATH {path}: no such file (a domain,ticker CSV)")
            if enrichment_mode(env) == "sandbox":
                from enrichment_pipeline.lib.sandbox.yahoo import SandboxFinanceSource

                return Yahoo(source=SandboxFinanceSource(tickers_path=path), tickers_path=path)
            return Yahoo(tickers_path=path)
    except ConfigFileError as exc:
        raise SettingsError(f"{name}: {exc}") from None  # names the file (and YAHOO_TICKERS_PATH)
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{name}: {exc}") from None
    raise SettingsError(f"unknown provider {name!r}; known: {', '.join(PROVIDER_NAMES)}")


def configured_providers(
    mode: Mode, names: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[list[tuple[Provider, ProviderSettings]], dict[str, str]]:
    """The providers a run calls, with their settings, and the ones it leaves out with why.

    `names` default to `ENRICHMENT_PROVIDERS`, else every known provider. In live mode a
    provider that needs a key and has none is left out, not called to fail on every domain.
    """
    env = os.environ if environ is None else environ
    active: list[tuple[Provider, ProviderSettings]] = []
    skipped: dict[str, str] = {}
    for name in names or enabled_providers(PROVIDER_NAMES, env):
        provider = build_provider(name, env)
        provider_settings = ProviderSettings.from_env(provider, mode, env)
        if mode == "live" and provider.needs_key and not provider_settings.api_key:
            skipped[name] = f"no {name.upper()}_API_KEY set"
            continue
        active.append((provider, provider_settings))
    return active, skipped
