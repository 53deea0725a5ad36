"""Enrichment jobs asked for through the API: their records, allowances and lifetimes.

A job is created `accepted` by the request, then moved along by the worker:
`launching` (partitions registered, runs submitted) -> `running` (a Dagster run
started) -> `building_marts` -> `succeeded` or `failed`. Records expire after
`API_JOB_TTL_DAYS` (default 7) and are deleted then.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enrichment_pipeline.lib.api_state import StateStore

ACTIVE = ("accepted", "launching", "running", "building_marts")
TERMINAL = ("succeeded", "failed")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Job:
    id: str
    key_id: str
    created_at: str
    updated_at: str
    expires_at: str
    status: str
    domains: list[str]
    rejected: list[dict[str, str]]
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
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "domains": self.domains,
            "rejected": self.rejected,
            "force": self.force,
            "webhook_url": self.webhook_url,
            "estimate": self.estimate,
            "run_ids": self.run_ids,
            "results": self.results,
            "error": self.error,
        }


def _job(row) -> Job:
    return Job(
        id=row["id"],
        key_id=row["key_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        status=row["status"],
        domains=json.loads(row["domains"]),
        rejected=json.loads(row["rejected"]),
        force=bool(row["force"]),
        webhook_url=row["webhook_url"],
        estimate=json.loads(row["estimate"]) if row["estimate"] else None,
        run_ids=json.loads(row["run_ids"]),
        results=json.loads(row["results"]) if row["results"] else None,
        error=row["error"],
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
                json.dumps(domains),
                json.dumps(rejected),
                int(force),
                webhook_url,
                json.dumps(estimate) if estimate is not None else None,
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
        encoded = {
            k: json.dumps(v) if k in ("run_ids", "results", "estimate") and v is not None else v
            for k, v in fields.items()
        }
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
