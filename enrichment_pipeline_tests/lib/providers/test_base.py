"""`Provider.fetch_domains`: what every provider's fetch does before its own flow (`fetch_batch`)."""

from __future__ import annotations

from typing import Any, ClassVar

from enrichment_pipeline.lib.providers.base import (
    Auth,
    CallResult,
    Fetched,
    FetchJob,
    Provider,
    ProviderRequest,
)


class TwoCalls(Provider):
    """Two requests per domain, two domains per batch; records the batches it is handed."""

    name: ClassVar[str] = "two_calls"
    default_base_url: ClassVar[str] = "https://two.example"
    default_rps: ClassVar[float] = 1.0
    batch_size: ClassVar[int] = 2

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        return [ProviderRequest(e, "GET", f"/{e}", {"domain": domain}) for e in ("a", "b")]

    def auth(self, api_key: str) -> Auth:
        return Auth()

    async def fetch_batch(self, job: FetchJob, domains: list[str]) -> Fetched:
        self.batches.append(domains)
        return await super().fetch_batch(job, domains)


class Client:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def fetch(self, request: ProviderRequest) -> CallResult:
        self.sent.append((request.endpoint, request.params["domain"]))
        return CallResult("ok", 200, {}, None, attempts=1, latency_ms=1.0, cost=0.0)


async def test_cached_domains_are_listed_and_the_rest_batched_once_each() -> None:
    provider, client = TwoCalls(), Client()
    cached = {("a", "b.com"), ("b", "b.com"), ("a", "c.com")}
    told: list[tuple[str, str]] = []

    def tell(domain: str, endpoint: str, result: Any) -> None:
        told.append((endpoint, domain))

    domains = ["a.com", "b.com", "c.com", "a.com", "d.com"]
    fetched = await provider.fetch_domains(client, domains, lambda e, d: (e, d) not in cached, tell)

    assert provider.batches == [["a.com", "c.com"], ["d.com"]]
    assert client.sent == [("a", "a.com"), ("b", "a.com"), ("b", "c.com"), ("a", "d.com"), ("b", "d.com")]
    assert told == client.sent  # each answer handed over as soon as it is known
    assert fetched["b.com"] == [] and [e for e, _ in fetched["c.com"]] == ["b"]
    assert set(fetched) == set(domains)


def test_call_range_is_one_call_per_missing_endpoint() -> None:
    assert TwoCalls().call_range("a.com", ["a", "b"]) == (2, 2)
