"""The providers this build knows, configured from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.providers.similarweb import SimilarWeb
from enrichment_pipeline.lib.settings import SettingsError

PROVIDER_NAMES = ("builtwith", "similarweb")


def build_provider(name: str, environ: Mapping[str, str] | None = None) -> Provider:
    env = os.environ if environ is None else environ
    if name == "builtwith":
        api = env.get("BUILTWITH_API", "domain").strip().lower() or "domain"
        if api not in ("domain", "free"):
            raise SettingsError(f"BUILTWITH_API must be 'domain' or 'free', not {api!r}")
        return BuiltWith(api=api)  # type: ignore[arg-type]
    if name == "similarweb":
        return SimilarWeb(country=env.get("SIMILARWEB_COUNTRY", "world").strip().lower() or "world")
    raise SettingsError(f"unknown provider {name!r}; known: {', '.join(PROVIDER_NAMES)}")
