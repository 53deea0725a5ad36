"""The FastAPI application: wiring, error handling, health and readiness."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enrichment_pipeline.api import schemas
from enrichment_pipeline.api.body_cache import BodyCache
from enrichment_pipeline.api.config import ApiConfig
from enrichment_pipeline.api.lookup_path import CompanyLookupPath
from enrichment_pipeline.api.problems import CODES, ApiProblem, problem_response
from enrichment_pipeline.api.rendered_bodies import RenderedBodies
from enrichment_pipeline.api.routes_blueprint import router as blueprint_router
from enrichment_pipeline.api.routes_companies import router as companies_router
from enrichment_pipeline.api.routes_companies import row_body, row_item
from enrichment_pipeline.api.routes_enrichments import router as enrichments_router
from enrichment_pipeline.lib import company_queries
from enrichment_pipeline.lib.api_keys import KeyStore
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline.lib.listing_index import ListingIndex
from enrichment_pipeline.lib.rate_limits import MinuteLimiter
from enrichment_pipeline.lib.read_sources import ReadSource, SourceUnavailable, open_source

log = logging.getLogger("enrichment_pipeline.api")
access_log = logging.getLogger("enrichment_pipeline.api.access")


@dataclass
class ApiState:
    config: ApiConfig
    store: StateStore
    keys: KeyStore
    limiter: MinuteLimiter
    source: ReadSource
    bodies: BodyCache
    rendered: RenderedBodies
    extras: dict[str, Any] = field(default_factory=dict)


_STATUS_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class EdgeMiddleware:
    """Body-size cap, rate-limit headers on every answer, one access-log line per request (no key)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            response = problem_response(
                "payload_too_large",
                f"bodies are limited to {self.max_body_bytes} bytes",
                instance=scope["path"],
            )
            await response(scope, receive, send)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        status = 0
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = state.get("rate_headers") or {}
                if extra:
                    existing = {k.lower() for k, _ in message.get("headers", [])}
                    message["headers"] = list(message.get("headers", [])) + [
                        (k.lower().encode(), v.encode())
                        for k, v in extra.items()
                        if k.lower().encode() not in existing
                    ]
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except _BodyTooLarge:
            response = problem_response(
                "payload_too_large",
                f"bodies are limited to {self.max_body_bytes} bytes",
                instance=scope["path"],
            )
            await response(scope, receive, send)
            status = 413
        finally:
            access_log.info(
                "%s %s %s key=%s %.1fms",
                scope.get("method"),
                scope["path"],
                status,
                state.get("key_id", "-"),
                (time.perf_counter() - started) * 1000,
            )


class _BodyTooLarge(Exception):
    pass


def create_app(
    config: ApiConfig | None = None,
    *,
    source: ReadSource | None = None,
    runs: Any = None,
    **worker_options: Any,
) -> FastAPI:
    """The app. `source` and `runs` (Dagster) may be given by tests; by default from the config."""
    config = config or ApiConfig.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = StateStore(config.state_path)
        app.state.api = ApiState(
            config=config,
            store=store,
            keys=KeyStore(store),
            limiter=MinuteLimiter(store),
            source=source
            or open_source(
                config.warehouse_url,
                config.snapshot_path,
                pool_size=config.pool_size,
                change_check_s=config.pg_change_check_ms / 1000,
                listing_sql=company_queries.LISTING_SQL,
                listing_inputs=company_queries.LISTING_INPUTS,
                index_sql=company_queries.PROFILES_SQL,
                listing_pages=ListingIndex.build,
            ),
            bodies=BodyCache(config.cache_mb * 1024 * 1024),
            rendered=RenderedBodies(config.prerender_mb * 1024 * 1024, row_body, row_item),
        )
        from enrichment_pipeline.api.dagster_runs import DagsterRuns
        from enrichment_pipeline.api.enrichment_worker import EnrichmentWorker
        from enrichment_pipeline.api.leadership import Leadership
        from enrichment_pipeline.lib.enrichment_jobs import JobStore

        jobs = JobStore(store, ttl_days=config.job_ttl_days)
        jobs.purge_expired()
        dagster_runs = runs if runs is not None else DagsterRuns(start_daemon=config.start_daemon)
        worker = EnrichmentWorker(
            jobs,
            dagster_runs,
            app.state.api.source,
            leadership=Leadership(config.state_path),
            **worker_options,
        )
        app.state.api.extras.update(jobs=jobs, runs=dagster_runs, worker=worker)
        worker.start()
        try:
            yield
        finally:
            worker.shutdown()
            stop = getattr(dagster_runs, "stop_daemon", None)
            if stop is not None:
                stop()
            app.state.api.source.close()

    app = FastAPI(
        title="enrichment_pipeline read API",
        version="1.0.0",
        description=(
            "Company profiles, ICP scores and provenance from the enrichment warehouse; on-demand "
            "enrichment through Dagster. Authenticate with `Authorization: Bearer <key>` "
            "(`enrichment-pipeline api-keys create`). Errors are `application/problem+json` "
            "with a stable `code`."
        ),
        lifespan=lifespan,
    )

    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem):
        return problem_response(
            exc.code, exc.detail, instance=request.url.path, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(SourceUnavailable)
    async def on_unavailable(request: Request, exc: SourceUnavailable):
        return problem_response(
            "warehouse_unavailable", str(exc), instance=request.url.path, headers={"Retry-After": "5"}
        )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response("validation_error", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code)
        if code is None:
            return problem_response(
                "internal_error", str(exc.detail), instance=request.url.path, status=exc.status_code
            )
        return problem_response(code, str(exc.detail), instance=request.url.path, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            "internal_error", "unexpected error; it was logged", instance=request.url.path
        )

    @app.get("/health", response_model=schemas.Health, tags=["system"], summary="The process is up")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=schemas.Ready,
        tags=["system"],
        summary="The warehouse (snapshot or PostgreSQL) can be read",
        responses={503: {"model": schemas.Ready}},
    )
    def ready(request: Request) -> Any:
        from fastapi.responses import JSONResponse

        src = request.app.state.api.source
        try:
            with src.session() as s:
                s.rows("SELECT count(*) AS n FROM marts.company_profiles")
        except SourceUnavailable as exc:
            return JSONResponse(
                {"status": "unavailable", "source": src.kind, "detail": str(exc)}, status_code=503
            )
        return {"status": "ready", "source": src.kind, "detail": None}

    app.include_router(companies_router)
    app.include_router(enrichments_router)
    app.include_router(blueprint_router)
    app.add_middleware(CompanyLookupPath)
    app.add_middleware(EdgeMiddleware, max_body_bytes=config.max_body_bytes)  # the outer one
    assert set(_STATUS_CODES.values()) <= set(CODES)
    return app
