"""On-demand enrichment: POST a list of domains, follow the Dagster run, get a signed webhook."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from enrichment_pipeline.api.problems import ApiProblem, problem_doc
from enrichment_pipeline.api.security import enrich_reader, enricher
from enrichment_pipeline.lib import cost, enrichment_jobs, settings, webhooks
from enrichment_pipeline.lib.api_keys import ApiKey
from enrichment_pipeline.lib.domains import normalize_domains
from enrichment_pipeline.lib.enrichment_jobs import TERMINAL, seconds_to_utc_midnight
from enrichment_pipeline.lib.rate_limits import TIER_LIMITS
from enrichment_pipeline.lib.warehouse import Warehouse

router = APIRouter(prefix="/v1", tags=["enrichments"])
ERRORS = problem_doc(401, 403, 422, 429, 503)
SSE_HEARTBEAT_S = 15.0


class EnrichmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domains: list[Any] = Field(
        min_length=1, description="domains in any pasted form (URL, www., Unicode); junk is refused per item"
    )
    force: bool = Field(False, description="ignore cached provider answers and call again")
    webhook_url: str | None = Field(
        None, description="http(s) URL that receives the signed completion webhook"
    )


class Job(enrichment_jobs.Job):
    """A job as the API shows it; a single job also lists its runs and webhook attempts."""

    runs: list[dict[str, Any]] | None = None
    webhook_deliveries: list[dict[str, Any]] | None = None


class JobList(BaseModel):
    items: list[Job]


def _estimate(url: str, domains: list[str], force: bool) -> cost.Estimate:
    mode = settings.enrichment_mode()
    now = datetime.now(UTC)
    if url.strip().lower().startswith("postgres"):
        with Warehouse.open(url, read_only=True, lock_wait_s=1) as wh:
            return cost.estimate(wh, domains, now, mode, force=force)
    # Never open the DuckDB warehouse from the API (that would block the pipeline's writer):
    # without the cache the estimate is an upper bound, which is what a budget guard wants.
    return cost.estimate(None, domains, now, mode, force=force)


@router.post(
    "/enrichments",
    status_code=202,
    response_model=Job,
    responses={**ERRORS, **problem_doc(402, 413)},
    summary="Enrich domains through a Dagster run; answers at once with the job id",
)
def create_enrichment(
    request: Request, body: EnrichmentRequest, key: ApiKey = Depends(enricher)
) -> JSONResponse:
    api = request.app.state.api
    cap = api.config.max_domains_per_request
    if len(body.domains) > cap:
        raise ApiProblem(
            "too_many_domains", f"at most {cap} domains per request; split the list", field="domains"
        )
    valid, rejected = normalize_domains(body.domains)
    refused = [{"input": r.raw, "reason": r.reason} for r in rejected]
    if not valid:
        raise ApiProblem("no_valid_domains", "every entry was refused; see `rejected`", rejected=refused)
    if body.webhook_url is not None:
        if webhooks.secret() is None:
            raise ApiProblem(
                "webhook_url_refused",
                f"this server has no {webhooks.SECRET_ENV}, so it cannot sign webhooks",
                field="webhook_url",
            )
        try:
            webhooks.check_url(body.webhook_url)
        except webhooks.WebhookRefused as exc:
            raise ApiProblem("webhook_url_refused", str(exc), field="webhook_url") from None
    jobs = api.extras["jobs"]
    limits = TIER_LIMITS.get(key.tier, TIER_LIMITS["standard"])
    if limits.enrichments_per_day is not None:
        used = jobs.domains_today(key.id)
        if used + len(valid) > limits.enrichments_per_day:
            left = max(0, limits.enrichments_per_day - used)
            raise ApiProblem(
                "quota_exceeded",
                f"the {key.tier} tier allows {limits.enrichments_per_day} domains a day; {left} left today",
                headers={"Retry-After": str(seconds_to_utc_midnight())},
                remaining=left,
            )
    if limits.concurrent_jobs is not None and jobs.running_count(key.id) >= limits.concurrent_jobs:
        raise ApiProblem(
            "too_many_jobs",
            f"the {key.tier} tier allows {limits.concurrent_jobs} enrichment jobs at once; "
            "wait for one to end",
            headers={"Retry-After": "30"},
        )
    try:
        estimate = _estimate(api.config.warehouse_url, valid, body.force)
        cost.enforce_budget(estimate)
    except cost.BudgetExceeded as exc:
        raise ApiProblem(
            "cost_limit_exceeded",
            str(exc).replace("--dry-run", "the estimate below"),
            estimate=estimate.summary(),
        ) from None
    job = jobs.create(
        key.id, valid, refused, force=body.force, webhook_url=body.webhook_url, estimate=estimate.summary()
    )
    api.extras["worker"].submit(job)
    location = f"/v1/enrichments/{job.id}"
    return JSONResponse(job.public(), status_code=202, headers={"Location": location})


def _job_or_404(request: Request, job_id: str, key: ApiKey):
    if len(job_id) > 64:
        raise ApiProblem("job_not_found", "no such job")
    job = request.app.state.api.extras["jobs"].get(job_id, key.id)
    if job is None:
        raise ApiProblem(
            "job_not_found", f"no enrichment job {job_id} for this key (jobs expire after a while)"
        )
    return job


@router.get("/enrichments", response_model=JobList, responses=ERRORS, summary="The key's recent jobs")
def list_enrichments(
    request: Request, key: ApiKey = Depends(enrich_reader), limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    jobs = request.app.state.api.extras["jobs"]
    jobs.purge_expired()
    return {"items": [j.public() for j in jobs.for_key(key.id, limit)]}


@router.get(
    "/enrichments/{job_id}",
    response_model=Job,
    responses={**ERRORS, **problem_doc(404)},
    summary="A job: status from its Dagster runs, per-domain results when done, webhook attempts",
)
def get_enrichment(request: Request, job_id: str, key: ApiKey = Depends(enrich_reader)) -> dict[str, Any]:
    api = request.app.state.api
    job = _job_or_404(request, job_id, key)
    runs = []
    for run_id in job.run_ids:
        job_name = "build_marts" if run_id.startswith("marts:") else "enrich_domains"
        clean = run_id.removeprefix("marts:")
        try:
            status = api.extras["runs"].status(clean)
        except Exception:
            status = None
        runs.append({"run_id": clean, "job": job_name, "status": status})
    return {**job.public(), "runs": runs, "webhook_deliveries": api.extras["jobs"].deliveries(job.id)}


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@router.get(
    "/enrichments/{job_id}/events",
    responses={**ERRORS, **problem_doc(404), 200: {"content": {"text/event-stream": {}}}},
    summary="Progress as Server-Sent Events (status, Dagster events) until the job ends",
)
def enrichment_events(
    request: Request, job_id: str, key: ApiKey = Depends(enrich_reader)
) -> StreamingResponse:
    api = request.app.state.api
    job = _job_or_404(request, job_id, key)
    jobs, runs = api.extras["jobs"], api.extras["runs"]

    def stream() -> Iterator[bytes]:
        cursors: dict[str, str | None] = {}
        last_status = None
        last_beat = time.monotonic()
        while True:
            current = jobs.get(job.id)
            if current is None:
                return
            if current.status != last_status:
                last_status = current.status
                yield _sse("status", {"status": current.status, "run_ids": current.run_ids})
            for run_id in [r.removeprefix("marts:") for r in current.run_ids]:
                try:
                    events, cursors[run_id] = runs.events(run_id, cursors.get(run_id))
                except Exception:
                    events = []
                for e in events:
                    yield _sse("dagster", e)
            if current.status in TERMINAL:
                yield _sse("done", current.public())
                return
            if time.monotonic() - last_beat > SSE_HEARTBEAT_S:
                last_beat = time.monotonic()
                yield b": keep-alive\n\n"
            time.sleep(0.5)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
