"""Helpers for end-to-end runs of the Dagster graph on an ephemeral instance.

`run_pipeline` materializes the whole `enrich_domains` job for a list of domains
in one run (a partition range), against a DuckDB file, in sandbox mode.
`Recorder` is an `httpx.MockTransport` handler that answers from the sandbox
simulators unless a test's override answers first, and records every request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import httpx
import polars as pl

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.lib.sandbox.transport import sandbox_handler
from enrichment_pipeline.lib.warehouse import Warehouse

Override = Callable[[httpx.Request], httpx.Response | None]


class Recorder:
    """MockTransport handler: the sandbox, unless `override` answers first; records every request."""

    def __init__(self, override: Override | None = None) -> None:
        self.override = override
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.override is not None:
            answer = self.override(request)
            if answer is not None:
                return answer
        return sandbox_handler(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def paths(self, prefix: str = "") -> list[str]:
        return [r.url.path for r in self.requests if r.url.path.startswith(prefix)]

    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def run_pipeline(
    instance: dg.DagsterInstance,
    warehouse_url: str,
    domains: Sequence[str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    force: bool = False,
    raise_on_error: bool = True,
    extra_resources: dict[str, Any] | None = None,
    providers: Sequence[str] | None = ("builtwith", "similarweb"),
) -> dg.ExecuteInProcessResult:
    """One run of the whole job for `domains` (registered as partitions in this order).

    By default only BuiltWith and SimilarWeb are called, so call counts are simple
    (1 + 6 per domain); `providers=None` runs every provider through the waterfall."""
    known = set(instance.get_dynamic_partitions(domains_partitions.name))
    new = [d for d in domains if d not in known]
    if new:
        instance.add_dynamic_partitions(domains_partitions.name, new)
    resources: dict[str, Any] = {
        "warehouse": WarehouseResource(url=warehouse_url),
        "providers": ProvidersResource(mode="sandbox", providers=list(providers) if providers else None),
        **(extra_resources or {}),
    }
    if transport is not None:
        resources["http_transport"] = transport
    run_config = {"ops": {"raw__provider_responses": {"config": {"force": force}}}}
    return defs.resolve_job_def(ENRICH_JOB_NAME).execute_in_process(
        run_config=run_config,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": domains[0],
            "dagster/asset_partition_range_end": domains[-1],
        },
        resources=resources,
        raise_on_error=raise_on_error,
    )


def raw_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The raw asset's materialization metadata (identical for every partition of the run)."""
    events = result.asset_materializations_for_node("raw__provider_responses")
    assert events, "the raw asset was not materialized"
    return {k: v.value for k, v in events[0].metadata.items()}


def read_table(warehouse_url: str, table: str) -> pl.DataFrame:
    with Warehouse.open(warehouse_url, read_only=True) as wh:
        return wh.table(table)


def sandbox_domains(n: int, *, builtwith: bool = True, similarweb: bool = True) -> list[str]:
    """The first n `companyN.com` domains the simulators do (or do not) have data for."""
    from enrichment_pipeline.lib.sandbox import builtwith as bw
    from enrichment_pipeline.lib.sandbox import similarweb as sw

    found = [
        d
        for d in (f"company{i}.com" for i in range(2000))
        if bw.is_known(d) == builtwith and sw.has_data(d) == similarweb
    ]
    assert len(found) >= n, "the simulators changed: not enough matching domains"
    return found[:n]
