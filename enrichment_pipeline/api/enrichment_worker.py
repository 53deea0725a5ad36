"""Carries API enrichment jobs through Dagster: partitions, runs, marts, results, webhook.

One thread per job (a small pool); every step is written to the job record, so
a restarted API resumes the jobs it was watching instead of losing them. With
several API processes, only the leading one (see `leadership`) carries jobs: it
picks up, every `pickup_s`, the jobs the others accepted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from enrichment_pipeline.api.dagster_runs import ENRICH_JOB, FINISHED, MARTS_JOB, DagsterRuns
from enrichment_pipeline.api.leadership import Leadership
from enrichment_pipeline.lib import webhooks
from enrichment_pipeline.lib.enrichment_jobs import Job, JobStore
from enrichment_pipeline.lib.partition_keys import API_JOB_TAG, SOURCE_TAG, contiguous_ranges
from enrichment_pipeline.lib.read_sources import ReadSource, SourceUnavailable

log = logging.getLogger("enrichment_pipeline.api.jobs")

POLL_S = 1.0


# The jobs themselves run their steps in one process (in_process_executor): no execution config here.
class EnrichmentWorker:
    def __init__(
        self,
        jobs: JobStore,
        runs: DagsterRuns,
        source: ReadSource,
        *,
        max_jobs: int = 4,
        webhook_attempts: int = 5,
        webhook_backoff_s: float = 2.0,
        leadership: Leadership | None = None,
        pickup_s: float = 0.5,
    ) -> None:
        """`leadership`: shared with the other processes serving the same state file; None: this
        process is the only one."""
        self.jobs = jobs
        self.runs = runs
        self.source = source
        self.pool = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="enrichment-job")
        self.webhook_attempts = webhook_attempts
        self.webhook_backoff_s = webhook_backoff_s
        self.leadership = leadership
        self.pickup_s = pickup_s
        self._stopping = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    @property
    def leading(self) -> bool:
        return self.leadership is None or self.leadership.held

    def start(self) -> None:
        """Resume the jobs left running; with a leadership, keep trying to lead and picking up."""
        if self.leadership is None:
            self.resume()
            return
        self._take_over()
        threading.Thread(target=self._lead, name="enrichment-leader", daemon=True).start()

    def submit(self, job: Job) -> None:
        """Carry `job` here when leading; else the leading process picks it up from the store."""
        if not self.leading:
            return
        with self._lock:
            if job.id in self._in_flight:
                return
            self._in_flight.add(job.id)
        self.pool.submit(self._guarded, job.id)

    def resume(self) -> None:
        for job in self.jobs.active():
            with self._lock:
                if job.id in self._in_flight:
                    continue
            log.info("taking up enrichment job %s (%s)", job.id, job.status)
            self.submit(job)

    def shutdown(self) -> None:
        with self._lock:
            # Under the lock that `_take_over` holds: a pickup already past its wait must not take
            # the leadership back after it was released here.
            self._stopping = True
            self._stop.set()
            if self.leadership is not None:
                self.leadership.release()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------

    def _take_over(self) -> None:
        assert self.leadership is not None
        with self._lock:
            if self._stopping:
                return
            if not self.leadership.held and self.leadership.try_acquire():
                log.info("this API process carries the enrichment jobs (pid %s)", os.getpid())
            leading = self.leadership.held
        if leading:
            self.resume()

    def _lead(self) -> None:
        while not self._stop.wait(self.pickup_s):
            try:
                self._take_over()
            except Exception:
                log.exception("enrichment job pickup failed; trying again")

    def _guarded(self, job_id: str) -> None:
        try:
            self._process(job_id)
        except _Stopping:
            return
        except Exception as exc:
            log.exception("enrichment job %s failed", job_id)
            self.jobs.update(job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
            self._notify(job_id)
        finally:
            with self._lock:
                self._in_flight.discard(job_id)

    def _process(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.done:
            return
        if not job.run_ids:
            self.jobs.update(job_id, status="launching")
            self.runs.ensure_daemon()
            ordered = self.runs.register(job.domains)
            run_ids: list[str] = []
            for start, end in contiguous_ranges(ordered, job.domains):
                run_id = str(uuid.uuid4())
                tags = {
                    "dagster/asset_partition_range_start": start,
                    "dagster/asset_partition_range_end": end,
                    SOURCE_TAG: "api",
                    API_JOB_TAG: job.id,
                }
                config = {"ops": {"raw__provider_responses": {"config": {"force": job.force}}}}
                run_ids.append(run_id)
                # Recorded before launching: a crash mid-launch leaves a run id to look up, not a lost run.
                self.jobs.update(job_id, run_ids=run_ids)
                self.runs.launch(ENRICH_JOB, run_id, tags, config)
            job = self.jobs.get(job_id)
            assert job is not None
        else:
            self.runs.ensure_daemon()
        enrich_runs = [r for r in job.run_ids if not r.startswith("marts:")]
        statuses = self._wait(enrich_runs, on_start=lambda: self._set(job_id, "running", {"launching"}))
        failed = [r for r, s in statuses.items() if s != "SUCCESS"]
        if failed:
            self._finish(job_id, "failed", f"Dagster run(s) {', '.join(failed)} did not succeed; see the UI")
            return
        self._set(job_id, "building_marts", {"launching", "running"})
        marts_run = self._marts_run(job_id)
        marts_status = self._wait([marts_run])[marts_run]
        if marts_status != "SUCCESS":
            self._finish(
                job_id, "failed", f"the enrichment is stored, but the marts build {marts_run} failed"
            )
            return
        self._finish(job_id, "succeeded", None)

    def _set(self, job_id: str, status: str, only_from: set[str]) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.status in only_from:
            self.jobs.update(job_id, status=status)

    def _wait(self, run_ids: list[str], on_start=None) -> dict[str, str]:
        while True:
            if self._stopping:
                raise _Stopping
            statuses = {r: self.runs.status(r) or "NOT_FOUND" for r in run_ids}
            if on_start and any(s not in ("QUEUED", "NOT_STARTED", "NOT_FOUND") for s in statuses.values()):
                on_start()
                on_start = None
            if all(s in FINISHED or s == "NOT_FOUND" for s in statuses.values()):
                return statuses
            time.sleep(POLL_S)

    def _marts_run(self, job_id: str) -> str:
        """The marts rebuild after the job's runs (the marts sensor skips runs of API jobs)."""
        job = self.jobs.get(job_id)
        assert job is not None
        mine = [r.removeprefix("marts:") for r in job.run_ids if r.startswith("marts:")]
        if mine:
            return mine[0]
        run_id = str(uuid.uuid4())
        self.jobs.update(job_id, run_ids=[*job.run_ids, f"marts:{run_id}"])
        self.runs.launch(MARTS_JOB, run_id, {SOURCE_TAG: "api", API_JOB_TAG: job_id})
        return run_id

    def _finish(self, job_id: str, status: str, error: str | None) -> None:
        job = self.jobs.get(job_id)
        assert job is not None
        results = None
        try:
            results = self._results(job.domains)
        except SourceUnavailable as exc:
            error = f"{error + '; ' if error else ''}results unavailable: {exc}"
        self.jobs.update(job_id, status=status, error=error, results=results)
        self._notify(job_id)

    def _results(self, domains: list[str]) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in domains)
        with self.source.session() as s:
            rows = s.rows(
                "SELECT p.domain, p.status, s.icp_score, s.icp_tier, p.enriched_at "
                "FROM marts.company_profiles p LEFT JOIN marts.icp_scores s ON s.domain = p.domain "
                f"WHERE p.domain IN ({marks})",
                domains,
            )
        found = {r["domain"]: r for r in rows}
        out = []
        for d in domains:
            r = found.get(d)
            if r is None:
                out.append(
                    {
                        "domain": d,
                        "status": "missing",
                        "icp_score": None,
                        "icp_tier": None,
                        "enriched_at": None,
                    }
                )
            else:
                at = r["enriched_at"]
                out.append({**r, "enriched_at": at.isoformat() if at is not None else None})
        return out

    def _notify(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or not job.webhook_url:
            return
        key = webhooks.secret()
        if key is None:
            log.warning("job %s: no %s set, webhook not sent", job_id, webhooks.SECRET_ENV)
            return
        body = json.dumps(
            {"event": "enrichment.completed", "job": job.public()}, separators=(",", ":")
        ).encode()
        webhooks.deliver(
            job.webhook_url,
            body,
            key,
            record=lambda attempt: self.jobs.record_delivery(job_id, job.webhook_url, attempt),
            max_attempts=self.webhook_attempts,
            backoff_s=self.webhook_backoff_s,
        )


class _Stopping(Exception):
    pass
