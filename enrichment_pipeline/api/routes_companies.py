"""Companies, technologies and stats: reads of the marts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from enrichment_pipeline.api import schemas
from enrichment_pipeline.api.problems import ApiProblem, problem_doc
from enrichment_pipeline.api.security import reader
from enrichment_pipeline.lib import company_queries as q
from enrichment_pipeline.lib.api_keys import ApiKey
from enrichment_pipeline.lib.domains import InvalidDomain, normalize_domain
from enrichment_pipeline.lib.read_sources import Session

router = APIRouter(prefix="/v1", tags=["companies"])
ERRORS = problem_doc(401, 403, 422, 429, 503)

DomainParam = Annotated[
    str,
    Path(
        description="the company's domain in any form: URL, `www.` host, upper case, Unicode", max_length=2048
    ),
]


def _normalized(raw: str) -> str:
    try:
        return normalize_domain(raw)
    except InvalidDomain as exc:
        raise ApiProblem("invalid_domain", f"{raw!r}: {exc.reason}", field="domain") from None


def _company_document(
    request: Request, raw_domain: str, question: Callable[[Session, str], dict[str, Any] | None]
) -> dict[str, Any]:
    """`question` asked about one company, or a 404 that says how to get it enriched."""
    domain = _normalized(raw_domain)
    with request.app.state.api.source.session() as s:
        document = question(s, domain)
    if document is None:
        raise ApiProblem(
            "company_not_found",
            f'{domain} has not been enriched yet: POST /v1/enrichments with {{"domains": ["{domain}"]}} '
            f"(or `enrichment-pipeline enrich {domain}`), then ask again",
            domain=domain,
        )
    return document


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _cached_json(request: Request, document: Any) -> Response:
    body = json.dumps(document, separators=(",", ":"), default=str).encode()
    etag = _etag(body)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get(
    "/companies/{domain:path}/technologies",
    response_model=schemas.Technologies,
    responses={**ERRORS, **problem_doc(404)},
    summary="Current technology stack and its history (first/last detected, added/removed)",
)
def get_technologies(request: Request, domain: DomainParam, key: ApiKey = Depends(reader)) -> Any:
    return _company_document(request, domain, q.technologies)


@router.get(
    "/companies/{domain:path}",
    response_model=schemas.Company,
    responses={**ERRORS, **problem_doc(404), 304: {"description": "not modified (If-None-Match)"}},
    summary="One company: profile, score, per-field provenance, confidence, freshness",
)
def get_company(request: Request, domain: DomainParam, key: ApiKey = Depends(reader)) -> Response:
    return _cached_json(request, _company_document(request, domain, q.company))


@router.get(
    "/companies",
    response_model=schemas.CompanyPage,
    responses={**ERRORS, **problem_doc(400)},
    summary="Filtered, sorted list of companies with score reasons; cursor pagination",
)
def list_companies(
    request: Request,
    key: ApiKey = Depends(reader),
    tier: Annotated[list[schemas.Tier] | None, Query(description="repeat for several tiers")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=100)] = None,
    max_score: Annotated[float | None, Query(ge=0, le=100)] = None,
    industry: Annotated[str | None, Query(max_length=20, description="NAICS sector code, e.g. 31-33")] = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2, description="ISO 3166 alpha-2")] = None,
    technology: Annotated[
        list[str] | None, Query(description="technology present (repeat: all of them)")
    ] = None,
    without_technology: Annotated[
        list[str] | None, Query(description="technology absent (repeat: none)")
    ] = None,
    search_vendor: Annotated[str | None, Query(max_length=200)] = None,
    ecommerce_platform: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[list[schemas.Status] | None, Query()] = None,
    enriched_since: Annotated[datetime | None, Query(description="ISO 8601 date-time")] = None,
    sort: Annotated[
        q.SortChoice, Query(description="sort key; a leading `-` sorts descending")
    ] = q.DEFAULT_SORT,
    limit: Annotated[int, Query(ge=1, le=q.MAX_LIMIT)] = q.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> dict[str, Any]:
    for name, values in (("technology", technology), ("without_technology", without_technology)):
        if values and (len(values) > 20 or any(not v.strip() or len(v) > 200 for v in values)):
            raise ApiProblem(
                "validation_error",
                f"{name}: up to 20 non-empty names of at most 200 characters",
                errors=[{"field": f"query.{name}", "message": "invalid technology name"}],
            )
    if enriched_since is not None and enriched_since.tzinfo is None:
        from datetime import UTC

        enriched_since = enriched_since.replace(tzinfo=UTC)
    flt = q.CompanyFilter(
        tiers=tier or (),
        min_score=min_score,
        max_score=max_score,
        industry=industry,
        country=country,
        technologies=technology or (),
        without_technologies=without_technology or (),
        search_vendor=search_vendor,
        ecommerce_platform=ecommerce_platform,
        statuses=status or (),
        enriched_since=enriched_since,
    )
    try:
        with request.app.state.api.source.session() as s:
            return q.list_companies(s, flt, sort=sort, limit=limit, cursor=cursor)
    except q.BadCursor as exc:
        raise ApiProblem("invalid_cursor", str(exc), field="cursor") from None


@router.get(
    "/stats",
    response_model=schemas.Stats,
    responses=ERRORS,
    summary="Counts by tier and status, coverage and cost per provider, freshness",
)
def get_stats(request: Request, key: ApiKey = Depends(reader)) -> Any:
    with request.app.state.api.source.session() as s:
        return q.stats(s)
