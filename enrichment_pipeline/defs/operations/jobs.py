"""The enrichment job: raw answers for the selected domains, then every table downstream."""

import dagster as dg

from enrichment_pipeline.defs.partitions import domains_partitions

ENRICH_JOB_NAME = "enrich_domains"

enrich_job = dg.define_asset_job(
    ENRICH_JOB_NAME,
    selection=dg.AssetSelection.groups("raw", "normalized", "profiles", "scoring", "history"),
    partitions_def=domains_partitions,
    description="Fetch, validate, merge and score the run's domains (one run for any number of domains).",
)
