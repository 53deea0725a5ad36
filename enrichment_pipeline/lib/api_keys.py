"""API keys: random secrets shown once, stored only as digests, scoped, tiered, revocable.

A key looks like `epk_<id>_<secret>`: `epk_<id>` is the visible prefix (listed,
logged, used to find the row), `<secret>` is 32 random bytes. Only the SHA-256
digest of the whole key is stored; a high-entropy key needs no slow hash. The
digest is compared in constant time, and an unknown id costs the same compare.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from enrichment_pipeline.lib.api_state import StateStore

SCOPES = ("read", "enrich")
TIERS = ("standard", "power", "admin")
KEY_PREFIX = "epk_"
_KEY_RE = re.compile(r"^epk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_DIGEST = hashlib.sha256(b"no such key").hexdigest()
# A key's last use is written at most this often, so reads never queue on the state file.
LAST_USED_EVERY_S = 60.0
# Keys known good, kept until the state file changes: most requests then read no row.
_KNOWN_KEYS_MAX = 10_000
# How often the state file is asked whether another process committed (a revocation, say): a key
# revoked elsewhere stops working within this time. Asking on every request cost a busy server
# about a twentieth of its time, and other workers' rate-limit counts commit all the time.
CHANGES_CHECKED_EVERY_S = 0.1


class ApiKeyError(ValueError):
    """A bad `api-keys` argument (unknown scope, tier or id); the message says which."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    tier: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None

    @property
    def prefix(self) -> str:
        return f"{KEY_PREFIX}{self.id}"

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "scopes": list(self.scopes),
            "tier": self.tier,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    if not scopes:
        raise ApiKeyError("--scopes needs at least one of: " + ", ".join(SCOPES))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return scopes


def _row(row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"].split(",")),
        tier=row["tier"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


class KeyStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._last_written: dict[str, float] = {}
        # digest -> key, valid while this thread's connection sees no commit by another one
        # (a revocation by `api-keys revoke` is such a commit). Per thread, as connections are.
        self._known = threading.local()

    def create(
        self, name: str, scopes: tuple[str, ...] = ("read",), tier: str = "standard"
    ) -> tuple[ApiKey, str]:
        """A new key; returns its record and the token (shown once, never stored)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ApiKeyError("--name must be 1 to 100 characters")
        if tier not in TIERS:
            raise ApiKeyError(f"unknown tier {tier!r}; known: {', '.join(TIERS)}")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ApiKeyError(f"scopes must be among {', '.join(SCOPES)}")
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = _now()
        self.store.execute(
            "INSERT INTO api_keys (id, name, digest, scopes, tier, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, name, _digest(token), ",".join(scopes), tier, created),
        )
        return ApiKey(key_id, name, tuple(scopes), tier, created, None, None), token

    def list(self) -> list[ApiKey]:
        rows = self.store.execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        return [_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        key_id = key_id.strip().removeprefix(KEY_PREFIX)
        cursor = self.store.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), key_id)
        )
        row = self.store.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise ApiKeyError(f"no API key with id {key_id!r} (see `api-keys list`)")
        if cursor.rowcount == 0:
            raise ApiKeyError(f"API key {key_id} was already revoked at {row['revoked_at']}")
        # Other threads' connections see this commit; this one's own cache must be dropped.
        self._known.keys = None
        return _row(row)

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key for this token, or None (unknown, malformed, wrong secret or revoked)."""
        digest = _digest(token or "")
        known: dict[str, ApiKey] | None = getattr(self._known, "keys", None)
        now = time.monotonic()
        if known is None or now - self._known.checked >= CHANGES_CHECKED_EVERY_S:
            version = self.store.data_version()
            if known is None or self._known.version != version:
                known = self._known.keys = {}
                self._known.version = version
            self._known.checked = now
        key = known.get(digest)
        if key is None:
            key = self._look_up(token, digest)
            if key is None:
                return None
            if len(known) >= _KNOWN_KEYS_MAX:
                known.clear()
            known[digest] = key
        self._touch(key.id)
        return key

    def _look_up(self, token: str, digest: str) -> ApiKey | None:
        match = _KEY_RE.match(token or "")
        row = None
        if match:
            row = self.store.execute("SELECT * FROM api_keys WHERE id = ?", (match.group(1),)).fetchone()
        stored = row["digest"] if row is not None else _DUMMY_DIGEST
        ok = hmac.compare_digest(stored, digest)
        if row is None or not ok or row["revoked_at"] is not None:
            return None
        return _row(row)

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        if now - self._last_written.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._last_written[key_id] = now
        self.store.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (_now(), key_id))
