"""An httpx transport that answers every provider's paths from the simulators.

Plugging `sandbox_transport()` into the shared HTTP policy's client runs the
whole policy (auth, retries, cache, interpretation, storage) for real, with no
network and no keys worth anything. Routing looks at the URL path only, never
the host, because provider base URLs are configurable.

One routing rule: each simulator's `route` answers the paths it owns (checking
method and key as its provider does) and returns None for any other path.
Yahoo is not here: its simulator is a `FinanceSource`, not an HTTP service.

The sandbox stays faithful: it has no magic domains that fail on purpose.
Tests that need 429s, 5xx or timeouts wrap or replace it with their own
`httpx.MockTransport`.
"""

from __future__ import annotations

import functools

import httpx

from enrichment_pipeline.lib.sandbox import apollo, builtwith, clearbit, explorium, similarweb

_ROUTES = (builtwith.route, similarweb.route, clearbit.route, apollo.route, explorium.route)


def sandbox_handler(request: httpx.Request, *, epoch: int = 1) -> httpx.Response:
    """Answer one request like the real provider would (status, JSON body)."""
    for route in _ROUTES:
        response = route(request, epoch=epoch)
        if response is not None:
            return response
    return httpx.Response(404, json={"error": "Not Found", "path": request.url.path})


def sandbox_transport(epoch: int = 1) -> httpx.MockTransport:
    """A transport for `httpx.Client` and `httpx.AsyncClient` backed by `sandbox_handler`."""
    if epoch < 1:
        raise ValueError(f"epoch must be >= 1, not {epoch}")
    return httpx.MockTransport(functools.partial(sandbox_handler, epoch=epoch))
