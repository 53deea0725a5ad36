"""`GET /v1/companies/{domain}` answered before FastAPI's routing, when the row index is ready.

A lookup answered from the row index costs ~60 µs of our own work; FastAPI's routing,
parameter validation, dependency solving and exception layers around it cost about as much
again, which caps one worker below the lookup rate the API is sized for. This middleware
answers exactly what the route answers (same key check and limits, same body, ETag, 304,
404 and problem documents, all through the functions the route uses) for the one case
that needs no I/O. Everything else (the index not built yet, a path FastAPI must
validate, any other method or route) goes on to FastAPI untouched, before anything is
counted, so no request is counted twice. The route stays the documented operation.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from enrichment_pipeline.api.problems import ApiProblem, problem_response
from enrichment_pipeline.api.routes_companies import (
    DOMAIN_MAX_LENGTH,
    indexed_company_body,
    normalized_domain,
    not_found,
    respond,
)
from enrichment_pipeline.api.security import authorize
from enrichment_pipeline.lib.read_sources import SourceUnavailable

PREFIX = "/v1/companies/"


class CompanyLookupPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = _lookup_domain(scope)
        index = None
        if raw is not None:
            try:
                index = scope["app"].state.api.source.row_index()
            except SourceUnavailable:
                index = None  # the route answers 503 with the reason
        if index is None:
            await self.app(scope, receive, send)
            return
        # The first of repeated headers, as the route's `request.headers.get` reads them.
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
        try:
            authorize(scope, authorization or "", "read", "read")
            domain = normalized_domain(raw)
            body = indexed_company_body(scope["app"].state.api, index, domain)
            if body is None:
                not_found(domain)
            response = respond(if_none_match, body)
        except ApiProblem as exc:
            response = problem_response(
                exc.code, exc.detail, instance=scope["path"], headers=exc.headers, **exc.extra
            )
        await response(scope, receive, send)


def _lookup_domain(scope: Scope) -> str | None:
    """The `{domain}` of a lookup this middleware may answer, else None."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not path.startswith(PREFIX) or path.endswith("/technologies"):
        return None
    raw = path[len(PREFIX) :]
    # Empty or over-long: FastAPI's validation answers, with its field-naming 422.
    return raw if 0 < len(raw) <= DOMAIN_MAX_LENGTH else None
