"""POST /v1/enrichments and what follows, on a real uvicorn, with Dagster replaced by a recorder.

The real Dagster path (a run on the project's instance) is in `test_enrichment_e2e.py`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.lib import webhooks
from enrichment_pipeline_tests.api.conftest import LiveServer
from enrichment_pipeline_tests.api.receiver import Receiver

SECRET = "test-webhook-secret"


class FakeRuns:
    """Stands in for `DagsterRuns`: records launches; a run succeeds once `release` is set."""

    def __init__(self, *, hold: bool = False) -> None:
        self.launched: list[tuple[str, str, dict, dict | None]] = []
        self.partitions: list[str] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.statuses: dict[str, str] = {}

    def ensure_daemon(self) -> None:
        pass

    def daemon_alive(self) -> bool:
        return False

    def stop_daemon(self) -> None:
        pass

    def register(self, domains: list[str]) -> list[str]:
        self.partitions += [d for d in domains if d not in self.partitions]
        return list(self.partitions)

    def launch(self, job: str, run_id: str, tags: dict, run_config: dict | None = None) -> None:
        self.launched.append((job, run_id, tags, run_config))
        self.statuses[run_id] = "QUEUED"

    def status(self, run_id: str) -> str | None:
        if run_id not in self.statuses:
            return None
        return "SUCCESS" if self.release.is_set() else "STARTED"

    def find_runs(self, tags: dict) -> list[str]:
        return []

    def events(self, run_id: str, cursor: str | None, limit: int = 200):
        if cursor:
            return [], cursor
        return [{"run_id": run_id, "type": "RUN_START", "step_key": None, "message": "", "timestamp": 0}], "1"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv(webhooks.SECRET_ENV, SECRET)
    monkeypatch.setenv("ENRICHMENT_MODE", "sandbox")
    monkeypatch.delenv("ENRICHMENT_MAX_COST_USD", raising=False)
    monkeypatch.delenv(webhooks.ALLOW_PRIVATE_ENV, raising=False)


def _serve(config, runs) -> LiveServer:
    return LiveServer(create_app(config, runs=runs, webhook_backoff_s=0.05))


@pytest.fixture
def held(config, env) -> Iterator[tuple[LiveServer, FakeRuns]]:
    runs = FakeRuns(hold=True)
    with _serve(config, runs) as live:
        yield live, runs
        runs.release.set()


def test_202_with_location_and_per_item_refusals_before_the_run_starts(held, make_key):
    server, runs = held
    domains = [
        "https://www.Company000001.com/pricing",
        "company000001.com",
        "not a domain",
        "localhost",
        42,
        *[f"new-company-{i}.com" for i in range(300)],
    ]
    with server.client(make_key(("enrich",), tier="admin")) as c:
        r = c.post("/v1/enrichments", json={"domains": domains, "force": True})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/v1/enrichments/{job['id']}"
        assert job["status"] in ("accepted", "launching")
        assert job["domains"][0] == "company000001.com" and len(job["domains"]) == 301  # duplicate folded
        reasons = {item["input"]: item["reason"] for item in job["rejected"]}
        assert set(reasons) == {"not a domain", "localhost", "42"}
        assert "whitespace" in reasons["not a domain"]
        # The runs are still held: the answer came without waiting for Dagster.
        assert not runs.release.is_set()
        got = c.get(r.headers["location"]).json()
        assert got["id"] == job["id"] and got["status"] in ("accepted", "launching", "running")
        listed = c.get("/v1/enrichments").json()["items"]
        assert [j["id"] for j in listed] == [job["id"]]
    deadline = time.monotonic() + 10
    while not runs.launched:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    name, _, tags, run_config = runs.launched[0]
    assert name == "enrich_domains"
    assert tags["enrichment/api_job"] == job["id"] and tags["dagster/asset_partition_range_start"]
    assert run_config["ops"] == {"raw__provider_responses": {"config": {"force": True}}}
    assert "execution" not in run_config  # the jobs themselves run in process


def test_all_junk_is_422_with_every_reason(held, make_key):
    server, _ = held
    with server.client(make_key(("enrich",))) as c:
        r = c.post("/v1/enrichments", json={"domains": ["", "http://", "a b"]})
        assert r.status_code == 422 and r.json()["code"] == "no_valid_domains"
        assert len(r.json()["rejected"]) == 3
        assert c.post("/v1/enrichments", json={"domains": []}).json()["code"] == "validation_error"
        assert c.post("/v1/enrichments", json={"domain": ["x.com"]}).status_code == 422
        bad_json = c.post("/v1/enrichments", content=b"{", headers={"content-type": "application/json"})
        assert bad_json.status_code == 422


def test_cost_guard_refuses_with_the_estimate(held, make_key, monkeypatch):
    server, runs = held
    monkeypatch.setenv("ENRICHMENT_MAX_COST_USD", "0.001")
    with server.client(make_key(("enrich",))) as c:
        r = c.post("/v1/enrichments", json={"domains": ["company000001.com", "brand-new.io"]})
        assert r.status_code == 402, r.text
        body = r.json()
        assert body["code"] == "cost_limit_exceeded" and "ENRICHMENT_MAX_COST_USD" in body["detail"]
        assert body["estimate"]["domains"] == 2 and body["estimate"]["cost_usd"][1] > 0.001
        assert c.get("/v1/enrichments").json()["items"] == []
    assert runs.launched == []


def test_webhook_targets_are_checked(held, make_key, monkeypatch):
    server, _ = held
    with server.client(make_key(("enrich",), tier="admin")) as c:
        for url in (
            "http://127.0.0.1:9/x",
            "http://10.1.2.3/x",
            "http://[::1]/x",
            "http://169.254.169.254/x",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "http://user:pw@example.com/x",
        ):
            r = c.post("/v1/enrichments", json={"domains": ["company000001.com"], "webhook_url": url})
            assert r.status_code == 422 and r.json()["code"] == "webhook_url_refused", url
        monkeypatch.setenv(webhooks.ALLOW_PRIVATE_ENV, "1")
        ok = c.post(
            "/v1/enrichments", json={"domains": ["company000001.com"], "webhook_url": "http://127.0.0.1:9/x"}
        )
        assert ok.status_code == 202
        monkeypatch.delenv(webhooks.SECRET_ENV)
        unsigned = c.post(
            "/v1/enrichments", json={"domains": ["x.com"], "webhook_url": "http://127.0.0.1:9/x"}
        )
        assert unsigned.status_code == 422 and webhooks.SECRET_ENV in unsigned.json()["detail"]


def test_daily_allowance_and_concurrent_jobs_per_key(held, make_key):
    server, _ = held
    with server.client(make_key(("enrich",), tier="standard")) as c:
        too_many = c.post("/v1/enrichments", json={"domains": [f"d{i}.com" for i in range(51)]})
        assert too_many.status_code == 429 and too_many.json()["code"] == "quota_exceeded"
        assert int(too_many.headers["retry-after"]) > 0
        assert c.post("/v1/enrichments", json={"domains": ["a1.com"]}).status_code == 202
        assert c.post("/v1/enrichments", json={"domains": ["a2.com"]}).status_code == 202
        third = c.post("/v1/enrichments", json={"domains": ["a3.com"]})
        assert third.status_code == 429 and third.json()["code"] == "too_many_jobs"
    with server.client(make_key(("enrich",), tier="standard")) as other:
        assert other.post("/v1/enrichments", json={"domains": ["a3.com"]}).status_code == 202
        assert other.get("/v1/enrichments").json()["items"][0]["domains"] == ["a3.com"]


def test_jobs_of_other_keys_are_404(held, make_key):
    server, _ = held
    with server.client(make_key(("enrich",))) as a, server.client(make_key(("enrich",))) as b:
        job = a.post("/v1/enrichments", json={"domains": ["company000002.com"]}).json()
        r = b.get(f"/v1/enrichments/{job['id']}")
        assert r.status_code == 404 and r.json()["code"] == "job_not_found"
        assert b.get(f"/v1/enrichments/{job['id']}/events").status_code == 404


def test_completion_sse_and_signed_webhook_retried_until_accepted(config, env, make_key, monkeypatch):
    monkeypatch.setenv(webhooks.ALLOW_PRIVATE_ENV, "1")
    runs = FakeRuns()
    key = make_key(("enrich",))
    with Receiver(statuses=[500, 503]) as receiver, _serve(config, runs) as server, server.client(key) as c:
        r = c.post(
            "/v1/enrichments",
            json={"domains": ["company000001.com", "unknown-co.io"], "webhook_url": receiver.url},
        )
        job_id = r.json()["id"]
        events: list[tuple[str, dict]] = []
        with c.stream("GET", f"/v1/enrichments/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))
        assert events[0][0] == "status" and events[-1][0] == "done"
        assert any(n == "dagster" for n, _ in events)
        assert events[-1][1]["status"] == "succeeded"
        assert receiver.arrived.wait(10)
        job = c.get(f"/v1/enrichments/{job_id}").json()
    assert [j for j, *_ in runs.launched] == ["enrich_domains", "build_marts"]
    results = {r["domain"]: r for r in job["results"]}
    assert results["company000001.com"]["status"] == "enriched"
    assert results["unknown-co.io"]["status"] == "missing"
    assert [d["http_status"] for d in job["webhook_deliveries"]] == [500, 503, 204]
    assert len(receiver.received) == 3
    headers, body = receiver.received[-1]
    assert webhooks.verify(body, headers["x-timestamp"], headers["x-signature"], SECRET)
    assert not webhooks.verify(body + b" ", headers["x-timestamp"], headers["x-signature"], SECRET)
    payload = json.loads(body)
    assert payload["event"] == "enrichment.completed" and payload["job"]["id"] == job_id


def test_signature_format():
    body = b'{"a":1}'
    sig = webhooks.sign(body, 1700000000, "k")
    import hashlib
    import hmac

    assert sig == "sha256=" + hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
