"""One partition per normalized company domain."""

import dagster as dg

from enrichment_pipeline.lib.partition_keys import DOMAINS_PARTITIONS

domains_partitions = dg.DynamicPartitionsDefinition(name=DOMAINS_PARTITIONS)
