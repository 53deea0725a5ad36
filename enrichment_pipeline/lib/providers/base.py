"""What every provider module supplies to the shared HTTP policy, and what it gets back.

A provider describes *what* to ask (requests per domain), *how* its key is
attached and *what an answer means*. Everything about *how* to call — retries,
rate limits, quota, circuit breaker, cache, redaction, accounting — lives in
`lib/http_policy.py` and is never repeated here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal, Protocol, get_args

from enrichment_pipeline.lib.redaction import MASK, hide_header_values

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


@dataclass(frozen=True)
class Interpretation:
    """What a provider makes of one HTTP answer."""

    status: Status
    payload: Any = None  # JSON-serialisable; stored (redacted) in raw.provider_responses
    detail: str | None = None  # short human-readable reason, never containing a secret
    # One follow-up call instead of this answer (e.g. SimilarWeb country=world after a 403).
    fallback: ProviderRequest | None = None


@dataclass(frozen=True)
class CallResult:
    """The final word on one provider request, after retries and fallbacks."""

    status: Status
    http_status: int | None
    payload: Any
    detail: str | None
    attempts: int
    latency_ms: float  # the HTTP round trips of the attempts sent, nothing else
    cost: float
    wait_ms: float = 0.0  # waited for a rate-limit slot or a provider's pause before sending


# What a provider's fetch gives back: per domain, (endpoint, result) pairs.
Fetched = dict[str, list[tuple[str, CallResult]]]
# Told each final (domain, endpoint, result) as soon as it is known, so the fetcher can make
# it durable before the provider's other calls for the domain are done.
Emit = Callable[[str, str, CallResult], None]


class Caller(Protocol):
    """Sends one request under the shared HTTP policy (`http_policy.ProviderClient`)."""

    async def fetch(self, request: ProviderRequest) -> CallResult: ...


@dataclass(frozen=True)
class FetchJob:
    """One `fetch_domains` call as a provider's flow sees it: the client every call goes
    through, which (endpoint, domain) answers the cache lacks, and who is told each answer."""

    client: Caller
    missing: Callable[[str, str], bool]
    emit: Emit | None = None

    def wanted(self, domain: str, endpoints: Iterable[str]) -> list[str]:
        """The endpoints of `domain` the cache lacks, in the given order."""
        return [e for e in endpoints if self.missing(e, domain)]

    def tell(self, domain: str, endpoint: str, result: CallResult) -> None:
        """Hand a final answer over as soon as it is known (it must also be the one returned)."""
        if self.emit is not None:
            self.emit(domain, endpoint, result)


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

    def call_range(self, domain: str, missing: Sequence[str]) -> tuple[int, int]:
        """(fewest, most) calls for a domain whose `missing` endpoints the cache lacks.

        One call per missing endpoint; a flow that decides its calls from answers says
        otherwise. Only the cost estimate asks (`lib/cost.py`); bulk providers are counted
        per batch there instead.
        """
        return len(missing), len(missing)

    async def fetch_domains(
        self,
        client: Caller,
        domains: list[str],
        missing: Callable[[str, str], bool],
        emit: Emit | None = None,
    ) -> Fetched:
        """Fetch what `missing(endpoint, domain)` says is not cached.

        Every domain gets an entry (empty when the cache answers it all); the others go
        to `fetch_batch`, `batch_size` at a time. Each final result may also be given to
        `emit` as soon as it is known (it must then be the one returned for that domain
        and endpoint).
        """
        job = FetchJob(client, missing, emit)
        fetched: Fetched = {domain: [] for domain in domains}
        needy = [d for d in dict.fromkeys(domains) if job.wanted(d, self.endpoints(d))]
        for start in range(0, len(needy), self.batch_size):
            fetched.update(await self.fetch_batch(job, needy[start : start + self.batch_size]))
        return fetched

    async def fetch_batch(self, job: FetchJob, domains: list[str]) -> Fetched:
        """Up to `batch_size` domains, each lacking some answer.

        The default makes one call per request the cache lacks; bulk providers override
        this to put many domains in one call (each call still goes through `job.client`).
        """
        fetched: Fetched = {}
        for domain in domains:
            results = fetched[domain] = []
            for request in self.requests_for(domain):
                if job.missing(request.endpoint, domain):
                    result = await job.client.fetch(request)
                    results.append((request.endpoint, result))
                    job.tell(domain, request.endpoint, result)
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
