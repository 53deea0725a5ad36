"""Enrichment jobs asked for through the API: their records, allowances and lifetimes.

A job is created `accepted` by the request, then moved along by the worker:
`launching` (partitions registered, runs submitted) -> `running` (a Dagster run
started) -> `building_marts` -> `succeeded` or `failed`. Records expire after
`API_JOB_TTL_DAYS` (default 7) and are deleted then.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from enrichment_pipeline.lib.api_state import StateStore

ACTIVE = ("accepted", "launching", "running", "building_marts")
TERMINAL = ("succeeded", "failed")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RejectedItem(BaseModel):
    input: str
    reason: str


class Job(BaseModel):
    """A job as its owner sees it: the API's responses and the webhook's body. The key that owns
    it is a column of the store only (requests are filtered by it), never shown."""

    id: str
    status: str
    created_at: str
    updated_at: str
    expires_at: str
    domains: list[str]
    rejected: list[RejectedItem]
    force: bool
    webhook_url: str | None
    estimate: dict[str, Any] | None
    run_ids: list[str]
    results: list[dict[str, Any]] | None
    error: str | None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def public(self) -> dict[str, Any]:
        return self.model_dump()


# Stored as JSON text; every other column holds its value as it is.
_JSON_COLUMNS = frozenset({"domains", "rejected", "estimate", "run_ids", "results"})


def _encoded(column: str, value: Any) -> Any:
    return json.dumps(value) if column in _JSON_COLUMNS and value is not None else value


def _job(row: sqlite3.Row) -> Job:
    return Job(
        **{
            name: json.loads(row[name]) if name in _JSON_COLUMNS and row[name] is not None else row[name]
            for name in Job.model_fields
        }
    )


class JobStore:
    def __init__(self, store: StateStore, ttl_days: int = 7) -> None:
        self.store = store
        self.ttl = timedelta(days=ttl_days)

    def create(
        self,
        key_id: str,
        domains: list[str],
        rejected: list[dict[str, str]],
        *,
        force: bool,
        webhook_url: str | None,
        estimate: dict[str, Any] | None,
    ) -> Job:
        now = _now()
        job_id = secrets.token_hex(12)
        self.store.execute(
            "INSERT INTO enrichment_jobs (id, key_id, created_at, updated_at, expires_at, status, domains, "
            "rejected, force, webhook_url, estimate) VALUES (?, ?, ?, ?, ?, 'accepted', ?, ?, ?, ?, ?)",
            (
                job_id,
                key_id,
                _iso(now),
                _iso(now),
                _iso(now + self.ttl),
                _encoded("domains", domains),
                _encoded("rejected", rejected),
                int(force),
                webhook_url,
                _encoded("estimate", estimate),
            ),
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str, key_id: str | None = None) -> Job | None:
        sql = "SELECT * FROM enrichment_jobs WHERE id = ?"
        params: list[Any] = [job_id]
        if key_id is not None:
            sql += " AND key_id = ?"
            params.append(key_id)
        row = self.store.execute(sql, params).fetchone()
        return _job(row) if row else None

    def for_key(self, key_id: str, limit: int = 50) -> list[Job]:
        rows = self.store.execute(
            "SELECT * FROM enrichment_jobs WHERE key_id = ? ORDER BY created_at DESC, id LIMIT ?",
            (key_id, limit),
        ).fetchall()
        return [_job(r) for r in rows]

    def active(self) -> list[Job]:
        marks = ", ".join("?" for _ in ACTIVE)
        rows = self.store.execute(
            f"SELECT * FROM enrichment_jobs WHERE status IN ({marks})", ACTIVE
        ).fetchall()
        return [_job(r) for r in rows]

    def update(self, job_id: str, **fields: Any) -> None:
        encoded = {k: _encoded(k, v) for k, v in fields.items()}
        encoded["updated_at"] = _iso(_now())
        assignments = ", ".join(f"{k} = ?" for k in encoded)
        self.store.execute(
            f"UPDATE enrichment_jobs SET {assignments} WHERE id = ?", [*encoded.values(), job_id]
        )

    def domains_today(self, key_id: str) -> int:
        midnight = _now().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = self.store.execute(
            "SELECT domains FROM enrichment_jobs WHERE key_id = ? AND created_at >= ?",
            (key_id, _iso(midnight)),
        ).fetchall()
        return sum(len(json.loads(r["domains"])) for r in rows)

    def running_count(self, key_id: str) -> int:
        marks = ", ".join("?" for _ in ACTIVE)
        row = self.store.execute(
            f"SELECT count(*) AS n FROM enrichment_jobs WHERE key_id = ? AND status IN ({marks})",
            (key_id, *ACTIVE),
        ).fetchone()
        return int(row["n"])

    def purge_expired(self) -> int:
        now = _iso(_now())
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE job_id IN "
                "(SELECT id FROM enrichment_jobs WHERE expires_at < ?)",
                (now,),
            )
            return conn.execute("DELETE FROM enrichment_jobs WHERE expires_at < ?", (now,)).rowcount

    def record_delivery(self, job_id: str, url: str, attempt: Any) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO webhook_deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                attempt.attempt,
                _iso(datetime.fromtimestamp(attempt.attempted_at, UTC)),
                url,
                attempt.http_status,
                attempt.error,
                round(attempt.duration_ms, 1),
            ),
        )

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        rows = self.store.execute(
            "SELECT attempt, attempted_at, http_status, error, duration_ms FROM webhook_deliveries "
            "WHERE job_id = ? ORDER BY attempt",
            (job_id,),
        ).fetchall()
        return [dict(r) for r in rows]


def seconds_to_utc_midnight() -> int:
    now = _now()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))
