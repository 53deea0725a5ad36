"""Event-log storage for the embedded (sqlite) instance, with the project's bookkeeping settings.

What a run over N domains costs Dagster, and what this storage changes:

* **Planned events.** Dagster writes one `ASSET_MATERIALIZATION_PLANNED` event per partition when
  a run is created, unless the storage accepts one event carrying the whole partition subset
  (`supports_partition_subset_in_asset_materialization_planned_events`). This storage does
  (`partition_subset_in_planned_events`, on by default): one event per asset per run.
* **Failed partitions.** Dagster derives "failed" and "in progress" partitions from per-partition
  planned events; with the subset event alone, a failed run's partitions would not show as
  failed. `get_latest_asset_partition_materialization_attempts_without_materializations` is
  extended to expand the subset events, so the partition bar still shows them failed.
* **Materialization events.** A run over N partitions writes N `ASSET_MATERIALIZATION` events.
  Dagster hands them to `store_event_batch` when `DAGSTER_EVENT_BATCH_SIZE` > 0; this storage sets
  that variable (`event_batch_size`, default 1000) for the process that loads the instance, and
  writes a batch in one transaction per sqlite file instead of Dagster's sqlite loop of three
  transactions per event.
* **A new run's planned events.** Dagster hands them over as one batch too: one per asset and one
  per asset check (76 for the marts job, whose checks are the dbt tests). They are written in one
  transaction per sqlite file as well: one at a time they took ~1 s of the daemon's run creation
  before a sensor's run could be launched.
* **Check results.** Each is written with one connection to the index file instead of two (the
  event row and the check's execution row in one transaction); a marts build has one per dbt test.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import cached_property
from typing import Any

import sqlalchemy as db
from dagster import AssetKey, DagsterEventType, EventLogEntry
from dagster._config import Field, IntSource, Noneable, StringSource
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData
from dagster_shared.serdes import deserialize_value

from enrichment_pipeline.instance.daemon_pace import (
    DEFAULT_BACKFILL_PASS_SECONDS,
    DEFAULT_SENSOR_PASS_SECONDS,
    apply_daemon_pace,
)

EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
DEFAULT_EVENT_BATCH_SIZE = 1000
# sqlite allows 32766 bound parameters per statement; an event row binds 7.
_SQLITE_ROWS_PER_INSERT = 500
_PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value
_MATERIALIZED = DagsterEventType.ASSET_MATERIALIZATION.value
_ASSET_PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED
_CHECK_PLANNED = DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
_PLANNED_KINDS = {_ASSET_PLANNED, _CHECK_PLANNED}
_CHECK_EVALUATED = DagsterEventType.ASSET_CHECK_EVALUATION


def bookkeeping_config() -> dict[str, Field]:
    return {
        "event_batch_size": Field(IntSource, is_required=False, default_value=DEFAULT_EVENT_BATCH_SIZE),
        "partition_subset_in_planned_events": Field(bool, is_required=False, default_value=True),
        # See daemon_pace.py; null keeps Dagster's 30 s / 5 s.
        "backfill_pass_seconds": Field(
            Noneable(float), is_required=False, default_value=DEFAULT_BACKFILL_PASS_SECONDS
        ),
        "sensor_pass_seconds": Field(
            Noneable(float), is_required=False, default_value=DEFAULT_SENSOR_PASS_SECONDS
        ),
    }


def apply_daemon_settings(config_value: Mapping[str, Any]) -> None:
    """The daemon's pace from a storage's config (the batch size is applied by the storage itself)."""
    apply_daemon_pace(
        config_value.get("backfill_pass_seconds", DEFAULT_BACKFILL_PASS_SECONDS),
        config_value.get("sensor_pass_seconds", DEFAULT_SENSOR_PASS_SECONDS),
    )


def apply_event_batch_size(size: int) -> None:
    """Turn Dagster's batched event writes on for this process (an explicit variable wins)."""
    if size > 0:
        os.environ.setdefault(EVENT_BATCH_SIZE_ENV, str(size))


class SubsetPlannedEventsMixin:
    """One planned event per asset per run, with failed/in-progress partitions still tracked.

    Mixed into a `SqlEventLogStorage` subclass (sqlite or PostgreSQL).
    """

    _partition_subset_in_planned_events: bool = True

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return self._partition_subset_in_planned_events

    def get_latest_asset_partition_materialization_attempts_without_materializations(
        self, asset_key: AssetKey, after_storage_id: int | None = None
    ) -> Mapping[str, tuple[str, int]]:
        attempts = dict(
            super().get_latest_asset_partition_materialization_attempts_without_materializations(  # type: ignore[misc]
                asset_key, after_storage_id=after_storage_id
            )
        )
        planned = self._subset_planned_events(asset_key, after_storage_id)
        if not planned:
            return attempts
        latest: dict[str, tuple[str, int]] = {}
        for event_id, run_id, keys in planned:  # ascending ids: a later run's plan wins
            for key in keys:
                latest[key] = (run_id, event_id)
        materialized = self._last_materialization_ids(asset_key, min(p[0] for p in planned))
        for key, (run_id, event_id) in latest.items():
            current = attempts.get(key)
            if current is not None and current[1] > event_id:
                continue  # a newer per-partition plan (e.g. a single-partition run) is the latest
            if materialized.get(key, -1) > event_id:
                attempts.pop(key, None)  # planned, then materialized: neither failed nor running
            else:
                attempts[key] = (run_id, event_id)
        return attempts

    def _subset_planned_events(
        self, asset_key: AssetKey, after_storage_id: int | None
    ) -> list[tuple[int, str, list[str]]]:
        table = SqlEventLogStorageTable
        query = (
            db.select(table.c.id, table.c.run_id, table.c.event)
            .where(
                table.c.asset_key == asset_key.to_string(),
                table.c.dagster_event_type == _PLANNED,
                table.c.partition.is_(None),
            )
            .order_by(table.c.id.asc())
        )
        if after_storage_id:
            query = query.where(table.c.id > after_storage_id)
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(query).fetchall()
        planned = []
        for event_id, run_id, body in rows:
            entry = deserialize_value(body, EventLogEntry)
            data = entry.dagster_event.event_specific_data if entry.dagster_event else None
            subset = getattr(data, "partitions_subset", None)
            if subset is not None:
                planned.append((int(event_id), str(run_id), list(subset.get_partition_keys())))
        return planned

    def _last_materialization_ids(self, asset_key: AssetKey, after_id: int) -> dict[str, int]:
        table = SqlEventLogStorageTable
        query = (
            db.select(table.c.partition, db.func.max(table.c.id))
            .where(
                table.c.asset_key == asset_key.to_string(),
                table.c.dagster_event_type == _MATERIALIZED,
                table.c.partition.is_not(None),
                table.c.id > after_id,
            )
            .group_by(table.c.partition)
        )
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            return {str(p): int(i) for p, i in conn.execute(query).fetchall()}


class ProjectSqliteEventLogStorage(SubsetPlannedEventsMixin, SqliteEventLogStorage):
    """`SqliteEventLogStorage` (same files, same layout) with the project's bookkeeping settings.

    `base_dir` defaults to where Dagster's default sqlite storage keeps event logs
    (`<instance root>/history/runs`), so switching an existing home to it keeps its history.
    """

    def __init__(
        self,
        base_dir: str | None,
        inst_data: ConfigurableClassData | None = None,
        *,
        event_batch_size: int = DEFAULT_EVENT_BATCH_SIZE,
        partition_subset_in_planned_events: bool = True,
    ) -> None:
        self._partition_subset_in_planned_events = partition_subset_in_planned_events
        self._event_batch_size = event_batch_size
        self._pending_inst_data = inst_data
        self._inst_data = inst_data
        apply_event_batch_size(event_batch_size)
        if base_dir is not None:
            super().__init__(base_dir, inst_data=inst_data)
        # else: the instance's own directory, known once it registers (see register_instance)

    def register_instance(self, instance: Any) -> None:
        if not hasattr(self, "_base_dir"):
            # Dagster's default place for sqlite event logs, under the instance's root directory
            # (DAGSTER_HOME, or the directory given to `DagsterInstance.from_config`).
            base_dir = os.path.join(instance.root_directory, "history", "runs", "")
            super().__init__(base_dir, inst_data=self._pending_inst_data)
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False), **bookkeeping_config()}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> ProjectSqliteEventLogStorage:
        apply_daemon_settings(config_value)
        return cls(
            config_value.get("base_dir"),
            inst_data=inst_data,
            event_batch_size=config_value.get("event_batch_size", DEFAULT_EVENT_BATCH_SIZE),
            partition_subset_in_planned_events=config_value.get("partition_subset_in_planned_events", True),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A batch of materializations, observations or a new run's planned events, in one
        transaction per sqlite file (Dagster's sqlite storage opens two to three per event)."""
        events = [
            e for e in events if not (e.dagster_event and e.dagster_event.is_asset_failed_to_materialize)
        ]
        if not events:
            return
        kinds = {e.dagster_event_type for e in events}
        if kinds in ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION}):
            self._store_run_rows(events)
            with self.index_transaction() as conn:
                ids = self._insert_index_rows(conn, events)
                self._store_asset_event_tags(conn, events, ids)
                last: dict[AssetKey, tuple[EventLogEntry, int]] = {}
                for event, event_id in zip(events, ids, strict=True):
                    if event.dagster_event and event.dagster_event.asset_key:
                        last[event.dagster_event.asset_key] = (event, event_id)
                for event, event_id in last.values():
                    self._store_asset_event(conn, event, event_id)
        elif kinds <= _PLANNED_KINDS:
            self._store_planned_events(events)
        else:
            for event in events:
                self.store_event(event)

    def _store_planned_events(self, events: Sequence[EventLogEntry]) -> None:
        """What `store_event` does for each planned event (a new run writes one per asset and one
        per check: 76 for the marts job), with one connection to the run's file and one to the index.

        Dagster's own check-execution write opens its own index connection; it is handed the
        open one instead, as the index statements of `store_event` already are."""
        self._store_run_rows(events)
        with self.index_transaction() as conn:
            ids = self._insert_index_rows(conn, events)
            assets = [
                (e, i) for e, i in zip(events, ids, strict=True) if e.dagster_event_type == _ASSET_PLANNED
            ]
            self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
            for event, event_id in assets:
                self._store_asset_event(conn, event, event_id)
            with self._index_shared(conn):
                for event, event_id in zip(events, ids, strict=True):
                    if event.dagster_event_type == _CHECK_PLANNED:
                        self.store_asset_check_event(event, event_id)

    def store_event(self, event: EventLogEntry) -> None:
        """A check's result as Dagster's sqlite storage stores it, with one index connection
        instead of two (a dbt build yields one result per dbt test: 63 here)."""
        if event.dagster_event_type != _CHECK_EVALUATED:
            super().store_event(event)
            return
        insert = self.prepare_insert_event(event)
        with self.run_connection(event.run_id) as conn:
            conn.execute(insert)
        with self.index_transaction() as conn:
            event_id = conn.execute(insert).inserted_primary_key[0]
            with self._index_shared(conn):
                self.store_asset_check_event(event, event_id)

    @contextmanager
    def _index_shared(self, conn: Any) -> Iterator[None]:
        """Dagster's index writes called meanwhile in this thread use `conn` (its open transaction)."""
        self._shared_index.conn = conn
        try:
            yield
        finally:
            self._shared_index.conn = None

    def index_connection(self) -> Any:
        conn = getattr(self._shared_index, "conn", None)
        return nullcontext(conn) if conn is not None else super().index_connection()

    @cached_property
    def _shared_index(self) -> threading.local:
        return threading.local()

    def _store_run_rows(self, events: Sequence[EventLogEntry]) -> None:
        by_run: dict[str, list[EventLogEntry]] = {}
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
        for run_id, run_events in by_run.items():
            with self.run_connection(run_id) as conn:
                for chunk in _chunks(run_events):
                    conn.execute(self.prepare_insert_event_batch(chunk))

    def _insert_index_rows(self, conn: Any, events: Sequence[EventLogEntry]) -> list[int]:
        ids: list[int] = []
        for chunk in _chunks(events):
            result = conn.execute(
                self.prepare_insert_event_batch(chunk).returning(SqlEventLogStorageTable.c.id)
            )
            # One statement assigns ascending rowids in row order.
            ids.extend(sorted(int(row[0]) for row in result.fetchall()))
        return ids


def _chunks(events: Sequence[EventLogEntry]) -> list[Sequence[EventLogEntry]]:
    return [events[i : i + _SQLITE_ROWS_PER_INSERT] for i in range(0, len(events), _SQLITE_ROWS_PER_INSERT)]
