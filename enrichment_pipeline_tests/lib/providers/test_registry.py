"""`lib/providers/registry.py`: which providers a run uses, built from the environment it is given."""

from __future__ import annotations

import re

import pytest

from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES, configured_providers
from enrichment_pipeline.lib.settings import SettingsError


def names(environ: dict[str, str], *wanted: str, mode: str = "sandbox") -> list[str]:
    active, _ = configured_providers(mode, list(wanted) or None, environ)  # type: ignore[arg-type]
    return [provider.name for provider, _ in active]


def test_every_known_provider_unless_enrichment_providers_narrows_them() -> None:
    assert names({}) == list(PROVIDER_NAMES)
    assert names({"ENRICHMENT_PROVIDERS": " Apollo, builtwith "}) == ["apollo", "builtwith"]


def test_names_given_by_the_caller_win_over_the_environment() -> None:
    assert names({"ENRICHMENT_PROVIDERS": "apollo"}, "clearbit") == ["clearbit"]


def test_live_mode_leaves_out_a_provider_without_its_key() -> None:
    environ = {"ENRICHMENT_PROVIDERS": "builtwith,clearbit,yahoo", "CLEARBIT_API_KEY": "k"}
    active, skipped = configured_providers("live", environ=environ)
    assert [p.name for p, _ in active] == ["clearbit", "yahoo"]  # Yahoo Finance needs no key
    assert skipped == {"builtwith": "no BUILTWITH_API_KEY set"}


def test_sandbox_mode_gives_every_provider_a_stand_in_key() -> None:
    active, skipped = configured_providers("sandbox", ["builtwith"], {})
    assert skipped == {} and active[0][1].api_key == "sandbox-builtwith-key"


def test_settings_come_from_the_given_environment() -> None:
    active, _ = configured_providers("sandbox", ["explorium"], {"EXPLORIUM_COST_PER_CALL": "0.5"})
    provider, settings = active[0]
    assert settings.cost_per_call == 0.5 and provider.batch_size == 50


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EXPLORIUM_BATCH_SIZE": "ten"}, "EXPLORIUM_BATCH_SIZE must be a whole number, not 'ten'"),
        ({"EXPLORIUM_BATCH_SIZE": "-1"}, "EXPLORIUM_BATCH_SIZE must not be negative, not '-1'"),
        ({"EXPLORIUM_BATCH_SIZE": "51"}, "Explorium batch_size must be a whole number from 1 to 50"),
        ({"BUILTWITH_DEAD_AFTER_DAYS": "1.5"}, "BUILTWITH_DEAD_AFTER_DAYS must be a whole number"),
        ({"BUILTWITH_DEAD_AFTER_DAYS": "-3"}, "BUILTWITH_DEAD_AFTER_DAYS must not be negative"),
        ({"BUILTWITH_DEAD_AFTER_DAYS": "0"}, "BUILTWITH_DEAD_AFTER_DAYS must be at least 1, not 0"),
        ({"BUILTWITH_CONCURRENCY": "many"}, "BUILTWITH_CONCURRENCY must be a whole number, not 'many'"),
        ({"ENRICHMENT_PROVIDERS": "builtwith,nobody"}, "unknown provider(s) nobody"),
    ],
)
def test_a_bad_value_is_a_settings_error_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        configured_providers("sandbox", environ={"ENRICHMENT_PROVIDERS": "builtwith,explorium", **environ})
