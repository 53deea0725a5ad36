"""Keep provider secrets out of everything we print, log or store.

Keys travel in query strings (BuiltWith, SimilarWeb), headers (Apollo) and
basic auth (Clearbit). Every string that leaves the HTTP policy — log lines,
exception text, stored payloads, Dagster metadata — passes through a Redactor
built from the secrets actually in use.
"""

from __future__ import annotations

import base64
import logging
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

# httpx logs every request URL (query string and key included) at INFO; httpcore
# and hpack log headers at DEBUG.
_NOISY_LOGGERS = ("httpx", "httpcore", "hpack")


def _forms(secret: str) -> set[str]:
    """A secret as written, URL-encoded (as httpx puts it in a query string or
    an echoing server quotes it back) and inside HTTP basic credentials."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        base64.b64encode(f"{secret}:".encode()).decode(),
    }


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            # Longest first so a key that contains another key is masked whole.
            self._secrets = sorted({*self._secrets, *_forms(secret)}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def obj(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (keys included)."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.obj(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value


class _HttpLogRedaction(logging.Filter):
    """Masks the keys of every live Redactor in the HTTP libraries' own records,
    should anyone turn their logging back on (a log config, a debugger)."""

    def __init__(self) -> None:
        super().__init__()
        self._redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()

    def watch(self, redactor: Redactor) -> None:
        self._redactors.add(redactor)

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = list(self._redactors)
        if redactors:
            try:
                message = clean = record.getMessage()
            except (TypeError, ValueError):  # a malformed record: leave it to the handler's error path
                return True
            for redactor in redactors:
                clean = redactor.text(clean)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_HTTP_LOG_FILTER = _HttpLogRedaction()


def silence_http_loggers(redactor: Redactor | None = None) -> None:
    """Quiet the HTTP libraries, and mask `redactor`'s secrets in whatever they still log.

    A logger's filters only see records created by that very logger, so the
    filter goes on each existing logger of those libraries, not just the parents.
    """
    if redactor is not None:
        _HTTP_LOG_FILTER.watch(redactor)
    names = {n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in _NOISY_LOGGERS}
    for name in sorted(names | set(_NOISY_LOGGERS)):
        logger = logging.getLogger(name)
        if name in _NOISY_LOGGERS:
            logger.setLevel(logging.WARNING)
        logger.addFilter(_HTTP_LOG_FILTER)
