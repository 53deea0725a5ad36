"""What every provider module supplies to the shared HTTP policy.

A provider describes *what* to ask (requests per domain), *how* its key is
attached and *what an answer means*. Everything about *how* to call — retries,
rate limits, quota, circuit breaker, cache, redaction, accounting — lives in
`lib/http_policy.py` and is never repeated here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

Status = Literal[
    "ok",
    "not_found",
    "pending",
    "rate_limited",
    "quota_exhausted",
    "provider_unavailable",
    "auth_failed",
    "parse_error",
    "error",
    "skipped",
]
STATUSES: tuple[Status, ...] = (
    "ok",
    "not_found",
    "pending",
    "rate_limited",
    "quota_exhausted",
    "provider_unavailable",
    "auth_failed",
    "parse_error",
    "error",
    "skipped",
)


@dataclass(frozen=True)
class ProviderRequest:
    """One HTTP call a provider needs for one domain (or one batch)."""

    endpoint: str  # stable name, stored as raw.provider_responses.endpoint
    method: str
    path: str  # appended to the provider's base URL
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class Interpretation:
    """What a provider makes of one HTTP answer."""

    status: Status
    payload: Any = None  # JSON-serialisable; stored (redacted) in raw.provider_responses
    detail: str | None = None  # short human-readable reason, never containing a secret
    # One follow-up call instead of this answer (e.g. SimilarWeb country=world after a 403).
    fallback: ProviderRequest | None = None


@dataclass(frozen=True)
class Auth:
    """Where a provider wants its key."""

    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    basic_user: str | None = None


class Provider(ABC):
    """A provider's protocol knowledge; stateless, safe to share across tasks."""

    name: ClassVar[str]  # "builtwith", "similarweb", ... (lower case; env prefix is name.upper())
    default_base_url: ClassVar[str]
    default_rps: ClassVar[float]
    default_daily_quota: ClassVar[int | None] = None
    default_cost_per_call: ClassVar[float] = 0.0
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)

    @abstractmethod
    def requests_for(self, domain: str) -> list[ProviderRequest]:
        """The calls that together enrich one domain."""

    @abstractmethod
    def auth(self, api_key: str) -> Auth:
        """Attach the key (the policy redacts it everywhere)."""

    def interpret(self, request: ProviderRequest, http_status: int, body: Any) -> Interpretation | None:
        """Provider-specific meaning of an answer; None = the policy's default reading.

        Called for every final answer (2xx and non-retryable 4xx). `body` is parsed
        JSON (or None when the body was empty or not JSON on an error status).
        """
        return None
