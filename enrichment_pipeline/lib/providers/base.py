"""What every provider module supplies to the shared HTTP policy.

A provider describes *what* to ask (requests per domain), *how* its key is
attached and *what an answer means*. Everything about *how* to call — retries,
rate limits, quota, circuit breaker, cache, redaction, accounting — lives in
`lib/http_policy.py` and is never repeated here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from enrichment_pipeline.lib.redaction import MASK, hide_header_values

if TYPE_CHECKING:
    from enrichment_pipeline.lib.http_policy import CallResult, ProviderClient

# An answer: the provider found the domain, or knows it has nothing. Only an answer replaces a
# stored answer, is served from cache within its TTL, and counts a domain as answered.
Answered = Literal["ok", "not_found"]
Status = Literal[
    Answered,
    "pending",
    "rate_limited",
    "quota_exhausted",
    "provider_unavailable",
    "auth_failed",
    "parse_error",
    "error",
    "skipped",
]
ANSWERED: tuple[str, ...] = get_args(Answered)


@dataclass(frozen=True)
class ProviderRequest:
    """One HTTP call a provider needs for one domain (or one batch)."""

    endpoint: str  # stable name, stored as raw.provider_responses.endpoint
    method: str
    path: str  # appended to the provider's base URL
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    # A library call instead of HTTP (yfinance): run in a thread under the same
    # policy (pacing, quota, retries, breaker, accounting); its return value is
    # read like a JSON body. Raise `Transient` for a failure worth retrying.
    call: Callable[[], Any] | None = field(default=None, compare=False, repr=False)


class Transient(Exception):
    """A library call failed in a way worth retrying (rate limited, empty answer, bad crumb)."""


# What a provider's fetch gives back: per domain, (endpoint, result) pairs.
Fetched = dict[str, list[tuple[str, "CallResult"]]]
# Told each final (domain, endpoint, result) as soon as it is known, so the fetcher can make
# it durable before the provider's other calls for the domain are done.
Emit = Callable[[str, str, "CallResult"], None]


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
    """Where a provider wants its key. Its repr shows where, never the key."""

    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    basic_user: str | None = None

    def __post_init__(self) -> None:
        # httpx shows header values in `repr(headers)` except Authorization's: mask ours too.
        hide_header_values(self.headers)

    def __repr__(self) -> str:
        params = {k: MASK for k in self.params}
        headers = {k: MASK for k in self.headers}
        basic = MASK if self.basic_user else None
        return f"Auth(params={params}, headers={headers}, basic_user={basic})"


class Provider(ABC):
    """A provider's protocol knowledge; stateless, safe to share across tasks."""

    name: ClassVar[str]  # "builtwith", "similarweb", ... (lower case; env prefix is name.upper())
    default_base_url: ClassVar[str]
    default_rps: ClassVar[float]
    default_daily_quota: ClassVar[int | None] = None
    default_cost_per_call: ClassVar[float] = 0.0
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)
    # False for providers that need no key (Yahoo Finance): live mode calls them anyway.
    needs_key: ClassVar[bool] = True
    # Domains per call for providers with bulk endpoints; >1 makes the fetcher
    # hand `fetch_domains` that many domains at a time.
    batch_size: ClassVar[int] = 1

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

    def fillable_groups(self) -> frozenset[str]:
        """The field groups this provider's calls can fill at all; the waterfall never
        waits on a provider for a group outside this set. Default: every group."""
        from enrichment_pipeline.lib.fields import GROUPS

        return frozenset(GROUPS)

    def endpoints(self, domain: str) -> list[str]:
        """The stored answers (raw.provider_responses rows) one domain needs."""
        return [r.endpoint for r in self.requests_for(domain)]

    async def fetch_domains(
        self,
        client: ProviderClient,
        domains: list[str],
        missing: Callable[[str, str], bool],
        emit: Emit | None = None,
    ) -> Fetched:
        """Fetch what `missing(endpoint, domain)` says is not cached.

        The default makes one call per request; bulk providers override this to
        put many domains in one call (each call still goes through `client`).
        Each final result may also be given to `emit` as soon as it is known (it
        must then be the one returned for that domain and endpoint).
        """
        fetched: Fetched = {}
        for domain in domains:
            results = fetched[domain] = []
            for request in self.requests_for(domain):
                if missing(request.endpoint, domain):
                    result = await client.fetch(request)
                    results.append((request.endpoint, result))
                    if emit is not None:
                        emit(domain, request.endpoint, result)
        return fetched

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        """Standard profile fields (see `lib/fields.py`) from this provider's answers.

        `payloads` maps endpoint -> stored payload of the `ok` answers. Fields
        the provider does not know are left out. Used for the waterfall (which
        field groups are filled) and for the merged profile.
        """
        return {}

    def pause_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds to hold all calls after an answer, from rate-limit headers (None: no hint)."""
        return None

    def classify_exception(self, error: Exception) -> Status:
        """Final status for an exception a library call raised (`Transient` is retried instead)."""
        return "error"
