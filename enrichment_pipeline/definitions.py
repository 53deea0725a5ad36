"""The one Definitions object of the code location."""

from __future__ import annotations

import dagster as dg

from enrichment_pipeline.defs.dbt.assets import dbt_marts
from enrichment_pipeline.defs.dbt.resources import dbt_cli_resource
from enrichment_pipeline.defs.history import assets as history
from enrichment_pipeline.defs.normalized import assets as normalized
from enrichment_pipeline.defs.operations import freshness
from enrichment_pipeline.defs.operations.jobs import enrich_job, marts_after_enrichment, marts_job
from enrichment_pipeline.defs.operations.schedules import stale_reenrich_schedule
from enrichment_pipeline.defs.operations.sensors import domain_intake_sensor
from enrichment_pipeline.defs.profiles import assets as profiles
from enrichment_pipeline.defs.raw import assets as raw
from enrichment_pipeline.defs.raw import checks as raw_checks
from enrichment_pipeline.defs.resources import ProgressReporter, ProvidersResource, WarehouseResource
from enrichment_pipeline.defs.scoring import assets as scoring
from enrichment_pipeline.defs.serving.assets import marts_snapshot

_modules = (raw, normalized, profiles, scoring, history)

defs = dg.Definitions(
    assets=freshness.with_marts_freshness(
        [*dg.load_assets_from_modules(_modules), dbt_marts, marts_snapshot]
    ),
    asset_checks=[
        *dg.load_asset_checks_from_modules(_modules),
        raw_checks.every_domain_answered,
        freshness.answers_within_ttl,
    ],
    jobs=[enrich_job, marts_job],
    sensors=[marts_after_enrichment, domain_intake_sensor],
    schedules=[stale_reenrich_schedule],
    # Steps run inside the run worker (see defs/operations/jobs.py), for the UI's Materialize too.
    executor=dg.in_process_executor,
    resources={
        "warehouse": WarehouseResource(),
        "providers": ProvidersResource(),
        "progress": ProgressReporter(),
        "http_transport": dg.ResourceDefinition.none_resource(),
        "dbt": dbt_cli_resource(),
    },
)
