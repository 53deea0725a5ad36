"""One partition per normalized company domain."""

import dagster as dg

domains_partitions = dg.DynamicPartitionsDefinition(name="domains")
