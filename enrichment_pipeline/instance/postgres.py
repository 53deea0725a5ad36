"""Event-log storage for a PostgreSQL instance (deploy/dagster.yaml), with the project's settings.

Dagster's PostgreSQL storage already writes a batch of materializations with one INSERT; this
subclass adds the same switches as the sqlite one (`event_log.py`): one planned event per asset
per run (failed partitions still tracked) and `DAGSTER_EVENT_BATCH_SIZE` for every process that
loads the instance.

It also keeps one connection open between its queries. Dagster's storage opens a new connection
for every query (a pool-less engine), and a run's own bookkeeping (events, pool slots, partition
status) makes about 230 of them for a 1,000-domain CLI run: a PostgreSQL backend started and
torn down each time.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import Any

from dagster._config import Field
from dagster._core.storage.config import pg_config
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from enrichment_pipeline.instance.event_log import (
    DEFAULT_EVENT_BATCH_SIZE,
    SubsetPlannedEventsMixin,
    apply_daemon_settings,
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
        # The tables exist now (created above on a fresh database); from here on one connection
        # is kept for the next query. Queries at the same time (threads) still get their own,
        # closed after use as before, and a connection found dead is replaced (pre-ping).
        self._engine.dispose()
        self._engine = create_pg_engine(
            postgres_url,
            token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=-1,
            pool_pre_ping=True,
        )
        # A forked child must not share the parent's open connection.
        this = weakref.ref(self)
        os.register_at_fork(
            after_in_child=lambda: (storage := this()) and storage._engine.dispose(close=False)
        )

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()  # the connection kept between queries

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {**pg_config(), **bookkeeping_config()}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> ProjectPostgresEventLogStorage:
        apply_daemon_settings(config_value)
        return cls(
            pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
            event_batch_size=config_value.get("event_batch_size", DEFAULT_EVENT_BATCH_SIZE),
            partition_subset_in_planned_events=config_value.get("partition_subset_in_planned_events", True),
        )
