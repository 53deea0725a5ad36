"""Fixtures for the end-to-end pipeline tests (helpers live in `helpers.py`)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import dagster as dg
import pytest

ENV_PREFIXES = (
    "BUILTWITH_", "SIMILARWEB_", "CLEARBIT_", "APOLLO_", "EXPLORIUM_", "YAHOO_", "ENRICHMENT_", "SANDBOX_",
)  # fmt: skip
ENV_NAMES = ("WAREHOUSE_URL", "ICP_MODEL", "WATERFALL_CONFIG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider, mode or warehouse setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    # Earlier tests' instances dispose when collected, resetting Dagster's "current defs state
    # storage" (a ContextVar) to whatever was current when they were made; collect them now, not
    # in the middle of this test, where that would leave a dead instance's storage current.
    gc.collect()
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst
