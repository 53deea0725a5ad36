"""Event-log storage for a PostgreSQL instance (deploy/dagster.yaml), with the project's settings.

Dagster's PostgreSQL storage already writes a batch of materializations with one INSERT; this
subclass adds the same switches as the sqlite one (`event_log.py`): one planned event per asset
per run (failed partitions still tracked) and `DAGSTER_EVENT_BATCH_SIZE` for every process that
loads the instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._config import Field
from dagster._core.storage.config import pg_config
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from enrichment_pipeline.instance.event_log import (
    DEFAULT_EVENT_BATCH_SIZE,
    SubsetPlannedEventsMixin,
    apply_event_batch_size,
    bookkeeping_config,
)


class ProjectPostgresEventLogStorage(SubsetPlannedEventsMixin, PostgresEventLogStorage):
    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
        *,
        event_batch_size: int = DEFAULT_EVENT_BATCH_SIZE,
        partition_subset_in_planned_events: bool = True,
    ) -> None:
        super().__init__(
            postgres_url,
            should_autocreate_tables=should_autocreate_tables,
            inst_data=inst_data,
            token_provider=token_provider,
        )
        self._partition_subset_in_planned_events = partition_subset_in_planned_events
        apply_event_batch_size(event_batch_size)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {**pg_config(), **bookkeeping_config()}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> ProjectPostgresEventLogStorage:
        return cls(
            pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
            event_batch_size=config_value.get("event_batch_size", DEFAULT_EVENT_BATCH_SIZE),
            partition_subset_in_planned_events=config_value.get("partition_subset_in_planned_events", True),
        )
