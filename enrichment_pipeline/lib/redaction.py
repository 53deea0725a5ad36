"""Keep provider secrets out of everything we print, log or store.

Keys travel in query strings (BuiltWith, SimilarWeb), headers (Apollo) and
basic auth (Clearbit). Every string that leaves the HTTP policy — log lines,
exception text, stored payloads, Dagster metadata — passes through a Redactor
built from the secrets actually in use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "***"

# httpx logs every request URL (query string and key included) at INFO.
_NOISY_LOGGERS = ("httpx", "httpcore", "hpack")


def silence_http_loggers() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first so a key that contains another key is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

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
