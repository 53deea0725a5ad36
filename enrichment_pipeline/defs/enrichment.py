"""Everything but the dbt marts: what an enrichment run needs, without importing dbt.

`enrichment_pipeline.definitions` merges this with the dbt marts into the code location's one
Definitions. The CLI runs `enrich_domains` from this part alone, so an enrichment pays neither
the `dagster_dbt` import nor building the dbt assets from the manifest (about 40% of loading
the code location); the marts job loads the whole code location when it runs.
"""

from __future__ import annotations

import dagster as dg

from enrichment_pipeline.defs.history import assets as history
from enrichment_pipeline.defs.operations import freshness
from enrichment_pipeline.defs.operations.jobs import enrich_job
from enrichment_pipeline.defs.operations.schedules import stale_reenrich_schedule
from enrichment_pipeline.defs.operations.sensors import domain_intake_sensor
from enrichment_pipeline.defs.profiles import assets as profiles
from enrichment_pipeline.defs.raw import assets as raw
from enrichment_pipeline.defs.raw import checks as raw_checks
from enrichment_pipeline.defs.resources import ProgressReporter, ProvidersResource, WarehouseResource
from enrichment_pipeline.defs.scoring import assets as scoring
from enrichment_pipeline.defs.staging import assets as staging

_modules = (raw, staging, profiles, scoring, history)

enrichment_defs = dg.Definitions(
    assets=freshness.with_marts_freshness(dg.load_assets_from_modules(_modules)),
    asset_checks=[
        *dg.load_asset_checks_from_modules(_modules),
        raw_checks.every_domain_answered,
        freshness.answers_within_ttl,
    ],
    jobs=[enrich_job],
    sensors=[domain_intake_sensor],
    schedules=[stale_reenrich_schedule],
    # Steps run inside the run worker (see defs/operations/jobs.py), for the UI's Materialize too.
    executor=dg.in_process_executor,
    resources={
        "warehouse": WarehouseResource(),
        "providers": ProvidersResource(),
        "progress": ProgressReporter(),
        "http_transport": dg.ResourceDefinition.none_resource(),
    },
)
