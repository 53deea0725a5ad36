"""Errors as RFC 9457 problem details (`application/problem+json`) with a stable `code`.

Clients branch on `code`, never on `title` or `detail` (wording may improve).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

MEDIA_TYPE = "application/problem+json"

# code -> (HTTP status, title). The README lists them with what each means.
CODES: dict[str, tuple[int, str]] = {
    "unauthorized": (401, "Missing or invalid API key"),
    "forbidden": (403, "The API key lacks the scope this operation needs"),
    "not_found": (404, "No such resource"),
    "company_not_found": (404, "The company is not in the warehouse"),
    "job_not_found": (404, "No such enrichment job for this key"),
    "invalid_domain": (422, "Not a company domain"),
    "invalid_cursor": (400, "The pagination cursor is not valid"),
    "validation_error": (422, "The request is not valid"),
    "no_valid_domains": (422, "No valid domain in the request"),
    "too_many_domains": (422, "Too many domains in one request"),
    "cost_limit_exceeded": (402, "The enrichment would cost more than allowed"),
    "quota_exceeded": (429, "The key's daily enrichment allowance is used up"),
    "too_many_jobs": (429, "The key has too many enrichment jobs running"),
    "rate_limited": (429, "Too many requests for this key"),
    "webhook_url_refused": (422, "The webhook URL is not allowed"),
    "payload_too_large": (413, "The request body is too large"),
    "method_not_allowed": (405, "Method not allowed"),
    "not_acceptable": (406, "Not acceptable"),
    "unsupported_media_type": (415, "The request body must be JSON"),
    "invalid_model": (422, "The ICP model is not valid"),
    "warehouse_unavailable": (503, "The warehouse cannot be read right now"),
    "internal_error": (500, "Internal error"),
}


class Problem(BaseModel):
    type: str = Field(description="URI naming the problem type")
    title: str
    status: int
    detail: str | None = None
    code: str = Field(description="stable machine-readable code")
    instance: str | None = None


class ApiProblem(Exception):
    def __init__(
        self, code: str, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
    ):
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail or code)


def problem_response(
    code: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
    **extra: Any,
) -> JSONResponse:
    default_status, title = CODES[code]
    body = {
        "type": f"urn:enrichment-pipeline:problem:{code}",
        "title": title,
        "status": status or default_status,
        "detail": detail,
        "code": code,
        "instance": instance,
        **extra,
    }
    return JSONResponse(body, status_code=status or default_status, headers=headers, media_type=MEDIA_TYPE)


def problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses."""
    return {
        s: {"model": Problem, "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for s in statuses
    }
