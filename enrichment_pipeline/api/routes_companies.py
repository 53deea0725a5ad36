"""Companies, technologies and stats: reads of the marts."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from enrichment_pipeline.api import schemas
from enrichment_pipeline.api.body_cache import Body
from enrichment_pipeline.api.problems import ApiProblem, problem_doc
from enrichment_pipeline.api.security import reader
from enrichment_pipeline.lib import company_queries as q
from enrichment_pipeline.lib.api_keys import ApiKey
from enrichment_pipeline.lib.domains import InvalidDomain, normalize_domain
from enrichment_pipeline.lib.read_sources import RowIndex, Session

router = APIRouter(prefix="/v1", tags=["companies"])
ERRORS = problem_doc(401, 403, 422, 429, 503)
DOMAIN_MAX_LENGTH = 2048

DomainParam = Annotated[
    str,
    Path(
        description="the company's domain in any form: URL, `www.` host, upper case, Unicode",
        max_length=DOMAIN_MAX_LENGTH,
    ),
]


def normalized_domain(raw: str) -> str:
    try:
        return normalize_domain(raw)
    except InvalidDomain as exc:
        raise ApiProblem("invalid_domain", f"{raw!r}: {exc.reason}", field="domain") from None


def _company_document(
    request: Request, raw_domain: str, question: Callable[[Session, str], dict[str, Any] | None]
) -> dict[str, Any]:
    """`question` asked about one company, or a 404 that says how to get it enriched."""
    domain = normalized_domain(raw_domain)
    with request.app.state.api.source.session() as s:
        document = question(s, domain)
    if document is None:
        not_found(domain)
    return document


def not_found(domain: str) -> NoReturn:
    raise ApiProblem(
        "company_not_found",
        f'{domain} has not been enriched yet: POST /v1/enrichments with {{"domains": ["{domain}"]}} '
        f"(or `enrichment-pipeline enrich {domain}`), then ask again",
        domain=domain,
    )


_AGE = b'"__age_seconds__"'


def _company_body(document: dict[str, Any]) -> Body:
    """The document's JSON, cut where `age_seconds` goes; its ETag is weak, over everything but
    the age, so it changes with the data and not with the clock."""
    freshness = document["freshness"]
    enriched_at = freshness["enriched_at"]
    if freshness["age_seconds"] is None or not isinstance(enriched_at, str):
        text = orjson.dumps(document, default=str)
        return Body(text, 'W/"' + hashlib.sha256(text).hexdigest()[:32] + '"')
    freshness["age_seconds"] = _AGE.strip(b'"').decode()
    text = orjson.dumps(document, default=str)
    head, _, tail = text.rpartition(_AGE)  # freshness comes last: the last occurrence is ours
    return Body(
        head,
        'W/"' + hashlib.sha256(head + b"\0" + tail).hexdigest()[:32] + '"',
        tail,
        datetime.fromisoformat(enriched_at.replace("Z", "+00:00")).timestamp(),
    )


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def respond(if_none_match: str | None, body: Body) -> Response:
    """200 with the body (and its ETag), or 304 when `if_none_match` names that ETag."""
    if body.etag is None:
        return Response(body.content, media_type="application/json")
    headers = {"ETag": body.etag, "Cache-Control": "private, no-cache"}
    if _matches(if_none_match, body.etag):
        return Response(status_code=304, headers=headers)
    content = body.content
    if body.enriched_at is not None:
        age = max(0, int(time.time() - body.enriched_at))
        content = b"%b%d%b" % (content, age, body.tail)
    return Response(content, media_type="application/json", headers=headers)


def _kept(api: Any, version: str, key: Hashable, build: Callable[[], Body | None]) -> Body | None:
    """The body for `key` in `version`, built (and kept) when not cached."""
    body = api.bodies.get(version, key)
    if body is None:
        body = build()
        if body is not None:
            api.bodies.put(version, key, body)
    return body


def _cached(request: Request, key: Hashable, build: Callable[[], Body | None]) -> Body | None:
    """The body for `key` in the current data version. `build` reads after the version was seen,
    so a kept body is of that version or newer, never older."""
    api = request.app.state.api
    return _kept(api, api.source.version(), key, build)


def _cached_now(request: Request, key: Hashable) -> Body | None:
    """The cached body for `key` when the data version is known without I/O; on the event loop."""
    api = request.app.state.api
    version = api.source.known_version()
    return None if version is None else api.bodies.get(version, key)


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
async def get_company(request: Request, domain: DomainParam, key: ApiKey = Depends(reader)) -> Response:
    # Answered on the event loop when the source's row index is ready (no I/O), else in a worker
    # thread that asks the warehouse. `CompanyLookupPath` answers the first case before routing.
    normalized = normalized_domain(domain)
    api = request.app.state.api
    index = api.source.row_index()
    if index is not None:
        body = indexed_company_body(api, index, normalized)
    else:

        def build() -> Body | None:
            with api.source.session() as s:
                document = q.company(s, normalized)
            return None if document is None else _company_body(document)

        body = await run_in_threadpool(_cached, request, ("company", normalized), build)
    if body is None:
        not_found(normalized)
    return respond(request.headers.get("if-none-match"), body)


def row_body(row: dict[str, Any]) -> Body:
    """A company's lookup body from its row-index row."""
    return _company_body(q.profile_document(row, datetime.now(UTC)))


def row_item(row: dict[str, Any]) -> bytes:
    """A company's item of a page from its row-index row, as the page's validation encodes it."""
    item = q.list_item({name: row.get(name) for name in q.LIST_NAMES})
    return schemas.CompanySummary.model_validate(item).model_dump_json().encode()


def indexed_company_body(api: Any, index: RowIndex, domain: str) -> Body | None:
    """A company's body from the row index: rendered in the background, else built (and kept
    per data version); None if it is unknown. No I/O: for the event loop."""
    body = api.rendered.get(index.version, domain)
    if body is not None:
        return body
    api.rendered.ensure(index)

    def build() -> Body | None:
        row = index.get(domain)
        return None if row is None else row_body(row)

    return _kept(api, index.version, ("company", domain), build)


@router.get(
    "/companies",
    response_model=schemas.CompanyPage,
    responses={**ERRORS, **problem_doc(400)},
    summary="Filtered, sorted list of companies with score reasons; cursor pagination",
)
async def list_companies(
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
) -> Response:
    for name, values in (("technology", technology), ("without_technology", without_technology)):
        if values and (len(values) > 20 or any(not v.strip() or len(v) > 200 for v in values)):
            raise ApiProblem(
                "validation_error",
                f"{name}: up to 20 non-empty names of at most 200 characters",
                errors=[{"field": f"query.{name}", "message": "invalid technology name"}],
            )
    if enriched_since is not None and enriched_since.tzinfo is None:
        enriched_since = enriched_since.replace(tzinfo=UTC)
    # Repeated values in a canonical order: the same question gets the same cache key.
    flt = q.CompanyFilter(
        tiers=sorted(set(tier or ())),
        min_score=min_score,
        max_score=max_score,
        industry=industry,
        country=country.upper() if country else None,
        technologies=sorted({t.lower() for t in technology or ()}),
        without_technologies=sorted({t.lower() for t in without_technology or ()}),
        search_vendor=search_vendor.lower() if search_vendor else None,
        ecommerce_platform=ecommerce_platform.lower() if ecommerce_platform else None,
        statuses=sorted(set(status or ())),
        enriched_since=enriched_since,
    )

    def build() -> Body:
        try:
            with request.app.state.api.source.listing_session() as s:
                page = q.list_companies(s, flt, sort=sort, limit=limit, cursor=cursor)
        except q.BadCursor as exc:
            raise _invalid_cursor(exc) from None
        # Validated once, when built: what is served conforms to the documented schema.
        return Body(schemas.CompanyPage.model_validate(page).model_dump_json().encode())

    cache_key = ("page", sort, limit, cursor, repr(flt))
    body = (
        _cached_now(request, cache_key)
        or _ranked_page_body(request.app.state.api, cache_key, flt, sort, limit, cursor)
        or await run_in_threadpool(_cached, request, cache_key, build)
    )
    assert body is not None
    return respond(request.headers.get("if-none-match"), body)


def _invalid_cursor(exc: q.BadCursor) -> ApiProblem:
    return ApiProblem("invalid_cursor", str(exc), field="cursor")


# Above this many companies a page's vectorized ranking (~0.3 ms at 100,000, linear in the
# count) would hold the event loop too long for the other requests.
RANKED_ON_LOOP_MAX = 250_000


def _ranked_page_body(
    api: Any, cache_key: Hashable, flt: q.CompanyFilter, sort: str, limit: int, cursor: str | None
) -> Body | None:
    """The page from the listing ranked in memory and its items rendered in the background,
    on the event loop (no I/O, well under a millisecond); None where the SQL must answer or an
    item is not rendered yet. The same bytes as `build`'s validated page (a test compares)."""
    ranked_listing = api.source.ranked_listing()
    if ranked_listing is None:
        return None
    index, pages = ranked_listing
    if not api.rendered.complete(index.version):
        # Not ranked here only to be ranked again in the thread. Pages alone start a new
        # version's render, as lookups do.
        api.rendered.ensure(index)
        return None
    if len(pages) > RANKED_ON_LOOP_MAX:
        return None  # ranked in a worker thread instead (`build`): the loop is not held that long
    try:
        decoded = q.decode_cursor(cursor, sort) if cursor else None
    except q.BadCursor as exc:
        raise _invalid_cursor(exc) from None
    ranked = q.ranked_page(pages, flt, sort, limit, decoded)
    if ranked is None:
        return None
    domains, next_cursor = ranked
    items = api.rendered.items(index.version, domains)
    if items is None:
        return None
    body = Body(
        b'{"items":[%b],"next_cursor":%b,"limit":%d,"sort":%b}'
        % (b",".join(items), orjson.dumps(next_cursor), limit, orjson.dumps(sort))
    )
    api.bodies.put(index.version, cache_key, body)
    return body


@router.get(
    "/stats",
    response_model=schemas.Stats,
    responses=ERRORS,
    summary="Counts by tier and status, coverage and cost per provider, freshness",
)
def get_stats(request: Request, key: ApiKey = Depends(reader)) -> Any:
    with request.app.state.api.source.session() as s:
        return q.stats(s)
