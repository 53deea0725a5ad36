"""Resources: one per outside system (the warehouse, the providers)."""

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
import httpx

from enrichment_pipeline.lib import settings
from enrichment_pipeline.lib.http_policy import ProviderStats
from enrichment_pipeline.lib.providers.base import Provider
from enrichment_pipeline.lib.providers.registry import configured_providers
from enrichment_pipeline.lib.sandbox.transport import sandbox_transport
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.warehouse import Warehouse

FETCH_LOCK = "enrichment_pipeline/fetch"
DERIVED_LOCK = "enrichment_pipeline/derived"


class WarehouseResource(dg.ConfigurableResource):
    """DuckDB file or PostgreSQL database named by `WAREHOUSE_URL`.

    Left empty, the URL is read when a run starts (never at import time), so a
    password in it never appears in the UI's resource config.
    """

    url: str | None = None

    def resolved_url(self) -> str:
        return self.url or settings.warehouse_url()

    def open(self, *, read_only: bool = False, lock: str | None = DERIVED_LOCK) -> Warehouse:
        """The warehouse; a writing step also holds `lock` until it closes it.

        Derived steps read tables, compute, and replace a table: holding one lock from the read
        to the write means two runs' rebuilds never interleave, so the last rebuild of each
        table always reads the last state of its inputs (no stale table left behind by a run
        that finished out of order). The raw step holds `FETCH_LOCK` instead: one fetch at a
        time across all runs, so each provider's per-process rate limit holds across runs, and
        a fetch never waits for a rebuild."""
        wh = Warehouse.open(self.resolved_url(), read_only=read_only)
        if lock and not read_only:
            try:
                wh.hold_lock(lock)
            except BaseException:
                wh.close()
                raise
        return wh


@dataclass(frozen=True)
class ProviderSetup:
    mode: settings.Mode
    active: list[tuple[Provider, ProviderSettings]]
    skipped: dict[str, str]
    transport: httpx.AsyncBaseTransport | None


class ProvidersResource(dg.ConfigurableResource):
    """Which providers a run calls and how. Keys come from `<P>_API_KEY` at run time."""

    mode: str | None = None  # None: ENRICHMENT_MODE
    providers: list[str] | None = None  # None: ENRICHMENT_PROVIDERS, else every known provider
    # The simulator's "clock" (None: SANDBOX_EPOCH, else 1): a later epoch changes some stacks.
    sandbox_epoch: int | None = None

    def setup(self, transport: httpx.AsyncBaseTransport | None = None) -> ProviderSetup:
        mode = settings.enrichment_mode({"ENRICHMENT_MODE": self.mode} if self.mode else None)
        active, skipped = configured_providers(mode, self.providers)
        if transport is None and mode == "sandbox":
            transport = sandbox_transport(epoch=self.sandbox_epoch or settings.sandbox_epoch())
        return ProviderSetup(mode=mode, active=active, skipped=skipped, transport=transport)


class ProgressReporter:
    """Told how far a long fetch has come; the CLI swaps in a progress bar."""

    def watch(self, stats: Mapping[str, ProviderStats]) -> None:
        """The run's per-provider accounting, updated live while the fetch goes on."""
        return None

    def update(self, done: int, total: int) -> None:
        return None
