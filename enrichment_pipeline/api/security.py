"""Bearer-key authentication, scopes and per-key rate limits, as FastAPI dependencies.

They are `async` so that FastAPI runs them on the event loop instead of handing each
request to a worker thread: a known key is checked in memory (see `KeyStore`), and
the limiter only counts.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request

from enrichment_pipeline.api.problems import ApiProblem
from enrichment_pipeline.lib.api_keys import ApiKey
from enrichment_pipeline.lib.rate_limits import Kind

log = logging.getLogger("enrichment_pipeline.api.access")


def authorize(asgi_scope: dict[str, Any], header: str, scope: str, kind: Kind) -> ApiKey:
    """The key behind `header` (an `Authorization` value) if it has `scope` and its `kind`
    allowance is not spent; else an ApiProblem (401, 403, 429). Counts the request, and leaves the
    key's id and the rate-limit headers in the request's state for the access log and the answer."""
    state = asgi_scope["app"].state.api
    request_state = asgi_scope.setdefault("state", {})
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="enrichment-pipeline"'}
    if not header:
        raise ApiProblem("unauthorized", "send `Authorization: Bearer <key>`", headers=challenge)
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem("unauthorized", "the Authorization header must be `Bearer <key>`", headers=challenge)
    key = state.keys.authenticate(token.strip())
    if key is None:
        raise ApiProblem(
            "unauthorized",
            "the API key is unknown or revoked",
            headers={
                **challenge,
                "WWW-Authenticate": challenge["WWW-Authenticate"] + ', error="invalid_token"',
            },
        )
    request_state["key_id"] = key.id
    if scope not in key.scopes:
        raise ApiProblem(
            "forbidden", f"this operation needs the `{scope}` scope; the key has {', '.join(key.scopes)}"
        )
    decision = state.limiter.hit(key.id, key.tier, kind)
    request_state["rate_headers"] = decision.headers()
    if not decision.allowed:
        raise ApiProblem(
            "rate_limited",
            f"over the {key.tier} tier's {decision.limit} {kind}s per minute; retry in {decision.reset_s} s",
            headers=decision.headers(),
        )
    return key


def _authorize(request: Request, scope: str, kind: Kind) -> ApiKey:
    return authorize(request.scope, request.headers.get("authorization", ""), scope, kind)


async def reader(request: Request) -> ApiKey:
    return _authorize(request, "read", "read")


async def read_writer(request: Request) -> ApiKey:
    """A POST that only computes (blueprint): needs `read`, counted as a write."""
    return _authorize(request, "read", "write")


async def enricher(request: Request) -> ApiKey:
    return _authorize(request, "enrich", "write")


async def enrich_reader(request: Request) -> ApiKey:
    return _authorize(request, "enrich", "read")
