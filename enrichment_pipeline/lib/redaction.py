"""Keep provider secrets out of everything we print, log or store.

Keys travel in query strings (BuiltWith, SimilarWeb), headers (Apollo) and
basic auth (Clearbit). Every string that leaves the HTTP policy — log lines,
exception text, stored payloads, Dagster metadata — passes through a Redactor
built from the secrets actually in use; what the intake quotes of outside
input goes through one built from every secret the environment configures.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
MIN_SECRET_LENGTH = 4
# What a log line or a report quotes of one outside entry (a refused domain, a file name).
QUOTE_LIMIT = 200

# httpx logs every request URL (query string and key included) at INFO; httpcore
# and hpack log headers at DEBUG.
_NOISY_LOGGERS = ("httpx", "httpcore", "hpack")


def _char_pattern(ch: str) -> str:
    """One character of a secret as it may appear: itself (any case), percent-encoded with upper- or
    lowercase hex, or `+` for a space (form encoding). A server that re-encodes only some characters
    (`abc%2Fdef`, `abc%2fdef`) is caught as well as a fully encoded or a plain copy."""
    encoded = "".join(f"%{b:02x}" for b in ch.encode())
    forms = [re.escape(ch), re.escape(encoded)]
    if ch == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(forms) + ")"


def _patterns(secret: str) -> list[str]:
    """A secret as written or URL-encoded in any mix (see `_char_pattern`), and inside HTTP basic
    credentials (`user:` base64-encoded, as Clearbit's key travels)."""
    basic = base64.b64encode(f"{secret}:".encode()).decode()
    return ["".join(_char_pattern(ch) for ch in secret), re.escape(basic)]


# Environment variables whose values are secrets, whatever the component that reads them.
_SECRET_NAME = re.compile(r"(API_?KEY|PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS?)$|^DBT_ENV_SECRET_", re.I)
# Variables that may hold a URL with a password in it (`scheme://user:password@host`).
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:([^@\s]+)@", re.I)


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret configured in the environment: the values of `*_API_KEY`, `*_PASSWORD`,
    `*_SECRET`, `*_TOKEN`, `DBT_ENV_SECRET_*` variables, and the password of any URL variable
    (`WAREHOUSE_URL=postgresql://user:password@...`), also percent-decoded."""
    env = os.environ if environ is None else environ
    found: list[str] = []
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name):
            found.append(value)
        match = _URL_PASSWORD.match(value.strip())
        if match:
            found += [match.group(1), unquote(match.group(1))]
    return found


def _plainly_written(secret: str) -> bool:
    """ASCII with nothing JSON escapes: such a secret inside a string appears verbatim in a dump."""
    return secret.isascii() and not any(ch in '"\\' or ord(ch) < 0x20 for ch in secret)


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        # Lowercased forms for `_plainly_clean`; None when a secret rules the shortcut out.
        self._folded: list[str] | None = []
        self._spaced = False
        for secret in secrets:
            self.add(secret)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """A redactor of every secret the environment configures (see `environment_secrets`)."""
        return cls(environment_secrets(environ))

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        self._secrets.add(secret)
        if self._folded is not None and _plainly_written(secret):
            basic = base64.b64encode(f"{secret}:".encode()).decode()
            self._folded += [secret.lower(), basic.lower()]
            self._spaced = self._spaced or " " in secret
        else:
            self._folded = None
        # Longest first so a key that contains another key is masked whole.
        patterns = sorted({p for s in self._secrets for p in _patterns(s)}, key=len, reverse=True)
        self._regex = re.compile("|".join(patterns), re.IGNORECASE)

    def text(self, value: str) -> str:
        if self._regex is None:
            return value
        return self._regex.sub(MASK, value)

    def obj(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (keys included); a number that spells a
        secret (an all-digit key echoed back as a JSON number) becomes the mask too."""
        if self._regex is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict | list) and self._plainly_clean(value):
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
            return MASK if self.text(text) != text else value
        return value

    def _plainly_clean(self, value: dict[Any, Any] | list[Any]) -> bool:
        """True only when no string, key or number inside `value` can hold a secret: one pass over
        its JSON text instead of the pattern on every string (a provider answer has hundreds).

        The pattern matches a secret in any case, with characters percent-encoded or `+` for a
        space, or inside base64 basic credentials. A text with no `%` (and no `+` when a secret
        has a space) can only hold the plain or the base64 form; an ASCII text is matched case-
        insensitively exactly as its lowercase is; and each string, key and number of `value` is
        in the dump verbatim, bar the characters JSON escapes, which no eligible secret has.
        Anything else (a non-ASCII answer, a `%`, a value JSON cannot write) takes the walk."""
        if self._folded is None:
            return False
        try:
            dumped = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return False
        if not dumped.isascii() or "%" in dumped or (self._spaced and "+" in dumped):
            return False
        lowered = dumped.lower()
        return not any(form in lowered for form in self._folded)


def shown(text: object, redactor: Redactor | None = None, limit: int = QUOTE_LIMIT) -> str:
    """Outside text as a log line or a report may quote it: secrets masked, control characters and
    undecodable bytes escaped (no forged lines), at most `limit` characters."""
    value = str(text)
    if redactor is not None:
        value = redactor.text(value)
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    value = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in value)
    if len(value) > limit:
        value = f"{value[:limit]}... ({len(value) - limit} more characters)"
    return value


def hide_header_values(names: Iterable[str]) -> None:
    """Make `repr()` of httpx headers (a request's, a client's) mask these headers' values, as it
    masks Authorization. httpx keeps that list in a module set with no public hook; if it moves,
    the redaction tests say so."""
    from httpx import _models

    sensitive = getattr(_models, "SENSITIVE_HEADERS", None)
    if isinstance(sensitive, set):
        sensitive.update(name.lower() for name in names)


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
