"""An httpx transport that answers BuiltWith and SimilarWeb paths from the simulators.

Plugging `sandbox_transport()` into the shared HTTP policy's client runs the
whole policy (auth, retries, cache, interpretation, storage) for real, with no
network and no keys worth anything. Routing looks at the URL path only, never
the host, because provider base URLs are configurable.

The sandbox stays faithful: it has no magic domains that fail on purpose.
Tests that need 429s, 5xx or timeouts wrap or replace it with their own
`httpx.MockTransport`.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx

from enrichment_pipeline.lib.sandbox import apollo as sb_apollo
from enrichment_pipeline.lib.sandbox import builtwith as bw
from enrichment_pipeline.lib.sandbox import clearbit as sb_clearbit
from enrichment_pipeline.lib.sandbox import explorium as sb_explorium
from enrichment_pipeline.lib.sandbox import similarweb as sw

BUILTWITH_DOMAIN_PATH = "/v22/api.json"
BUILTWITH_FREE_PATH = "/free1/api.json"
SIMILARWEB_PREFIX = "/v1/website/"


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


# Providers whose simulators route themselves; each returns None for paths it does not own.
_ROUTES = (sb_clearbit.route, sb_apollo.route, sb_explorium.route)


def sandbox_handler(request: httpx.Request, *, epoch: int = 1) -> httpx.Response:
    """Answer one request like the real provider would (status, JSON body)."""
    path = request.url.path
    if path in (BUILTWITH_DOMAIN_PATH, BUILTWITH_FREE_PATH):
        return _builtwith(request, path, epoch)
    if path.startswith(SIMILARWEB_PREFIX):
        return _similarweb(request, path)
    for route in _ROUTES:
        response = route(request, epoch=epoch)
        if response is not None:
            return response
    return _json(404, {"error": "Not Found", "path": path})


def _builtwith(request: httpx.Request, path: str, epoch: int) -> httpx.Response:
    """BuiltWith: a missing key is a 401; lookup problems are HTTP 200 with ``Errors``."""
    if request.method != "GET":
        return _json(405, {"Errors": [{"Lookup": None, "Message": "Method not allowed", "Code": -1}]})
    params = request.url.params
    lookup = (params.get("LOOKUP") or "").strip()
    if not (params.get("KEY") or "").strip():
        error = {"Lookup": lookup or None, "Message": "API key is missing or invalid", "Code": -4}
        return _json(401, {"Results": [], "Errors": [error], "Trust": None, "NextOffset": None})
    if not lookup:
        error = {"Lookup": None, "Message": "LOOKUP parameter is required", "Code": -3}
        return _json(200, {"Results": [], "Errors": [error], "Trust": None, "NextOffset": None})
    if path == BUILTWITH_FREE_PATH:
        return _json(*bw.free_api_response(lookup, epoch))
    return _json(*bw.domain_api_response(lookup, epoch))


def _similarweb(request: httpx.Request, path: str) -> httpx.Response:
    """SimilarWeb: ``/v1/website/{domain}/{group}/{metric}``; a missing api_key is a 401."""
    parts = path[len(SIMILARWEB_PREFIX) :].strip("/").split("/")
    if len(parts) != 3 or not parts[0]:
        return _json(404, {"error": "Not Found", "path": path})
    domain, metric = parts[0], f"{parts[1]}/{parts[2]}"
    if metric not in sw.METRICS:
        return _json(404, {"error": "Not Found", "path": path})
    if request.method != "GET":
        return _json(
            405, {"meta": {"status": "Error", "error_code": 405, "error_message": "Method not allowed"}}
        )
    params = request.url.params
    if not (params.get("api_key") or "").strip():
        return _json(
            401, {"meta": {"status": "Error", "error_code": 401, "error_message": "Invalid API key"}}
        )
    query = {k: params.get(k) or "" for k in params}
    return _json(*sw.similarweb_response(domain, metric, query))


def sandbox_transport(epoch: int = 1) -> httpx.MockTransport:
    """A transport for `httpx.Client` and `httpx.AsyncClient` backed by `sandbox_handler`."""
    if epoch < 1:
        raise ValueError(f"epoch must be >= 1, not {epoch}")
    return httpx.MockTransport(functools.partial(sandbox_handler, epoch=epoch))
