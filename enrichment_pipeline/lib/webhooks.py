"""Completion webhooks: where they may go, how they are signed, how they are delivered.

Signature: `X-Signature: sha256=<hex HMAC-SHA256 of "<X-Timestamp>.<raw body>">` with
`ENRICHMENT_WEBHOOK_SECRET`; receivers recompute it over the raw bytes and reject
old timestamps (replays). Targets are http(s) only, and never loopback, private,
link-local or otherwise non-public addresses unless `ENRICHMENT_WEBHOOK_ALLOW_PRIVATE=1`
(checked when the job is created and again before every attempt, since DNS may change).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

SECRET_ENV = "ENRICHMENT_WEBHOOK_SECRET"
ALLOW_PRIVATE_ENV = "ENRICHMENT_WEBHOOK_ALLOW_PRIVATE"
MAX_URL = 2048


class WebhookRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


def secret(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get(SECRET_ENV) or None


def allow_private(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


def sign(body: bytes, timestamp: int, key: str) -> str:
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(body: bytes, timestamp: str, signature: str, key: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver does (used by the tests and shown in the README)."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, int(timestamp), key), signature)


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise WebhookRefused(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_url(url: str, *, private_ok: bool | None = None) -> str:
    """The URL if it may receive webhooks, else `WebhookRefused`."""
    if private_ok is None:
        private_ok = allow_private()
    if len(url) > MAX_URL:
        raise WebhookRefused(f"webhook_url is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookRefused(f"webhook_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("webhook_url must use http or https")
    if not parts.hostname:
        raise WebhookRefused("webhook_url has no host")
    if parts.username or parts.password:
        raise WebhookRefused("webhook_url must not carry credentials")
    if private_ok:
        return url
    for address in _resolve(parts.hostname, port):
        if not address.is_global or address.is_multicast:
            raise WebhookRefused(
                f"webhook_url resolves to a non-public address ({address}); "
                f"set {ALLOW_PRIVATE_ENV}=1 to allow loopback and private targets"
            )
    return url


@dataclass(frozen=True)
class Attempt:
    attempt: int
    attempted_at: float
    http_status: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def deliver(
    url: str,
    body: bytes,
    key: str,
    *,
    record: Callable[[Attempt], None],
    max_attempts: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    private_ok: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> bool:
    """POST the body until a 2xx (at most `max_attempts`, exponential backoff); every attempt recorded.

    4xx other than 408/429 stop early: the receiver refused it and will again."""
    with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
        for attempt in range(1, max_attempts + 1):
            started = time.time()
            status: int | None = None
            error: str | None = None
            try:
                check_url(url, private_ok=private_ok)
                timestamp = int(time.time())
                response = client.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": "enrichment-pipeline-webhook/1",
                        "X-Timestamp": str(timestamp),
                        "X-Signature": sign(body, timestamp, key),
                    },
                )
                status = response.status_code
            except WebhookRefused as exc:
                error = str(exc)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            result = Attempt(attempt, started, status, error, (time.time() - started) * 1000)
            record(result)
            if result.ok:
                return True
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                return False
            if attempt < max_attempts:
                sleep(backoff_s * 2 ** (attempt - 1))
    return False
