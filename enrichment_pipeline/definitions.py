"""The one Definitions object of the code location: the enrichment plus the dbt marts."""

from __future__ import annotations

from enrichment_pipeline.lib.gc_policy import collector_paused_while_loading

# Every run worker and the code server load this module first: see lib/gc_policy.py.
with collector_paused_while_loading():
    import dagster as dg

    from enrichment_pipeline.defs import enrichment
    from enrichment_pipeline.defs.dbt.assets import dbt_marts
    from enrichment_pipeline.defs.dbt.resources import dbt_cli_resource
    from enrichment_pipeline.defs.operations.jobs import marts_job
    from enrichment_pipeline.defs.operations.marts_sensor import marts_after_enrichment
    from enrichment_pipeline.defs.serving.assets import marts_snapshot

    # `enrichment.enrichment_defs`, not imported by name: Dagster loads the one Definitions object
    # it finds at this module's top level.
    defs = dg.Definitions.merge(
        enrichment.enrichment_defs,
        dg.Definitions(
            assets=[dbt_marts, marts_snapshot],
            jobs=[marts_job],
            sensors=[marts_after_enrichment],
            resources={"dbt": dbt_cli_resource()},
        ),
    )
