"""End to end in sandbox mode: POST /v1/enrichments -> a queued Dagster run on the instance (the
daemon launches it) -> the marts rebuilt -> the company served -> a signed webhook at a local receiver."""

from __future__ import annotations

import json
from pathlib import Path

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.lib import webhooks
from enrichment_pipeline_tests.api.conftest import LiveServer, api_config
from enrichment_pipeline_tests.api.receiver import Receiver

SECRET = "e2e-secret"


def test_enrichment_runs_in_dagster_and_the_webhook_arrives_signed(tmp_path: Path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for name, value in {
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'sandbox.duckdb'}",
        "ENRICHMENT_MODE": "sandbox",
        "DOMAIN_DROP_DIR": str(tmp_path / "inbox"),
        webhooks.SECRET_ENV: SECRET,
        webhooks.ALLOW_PRIVATE_ENV: "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SERVING_DUCKDB", raising=False)
    monkeypatch.delenv("ENRICHMENT_MAX_COST_USD", raising=False)
    url = f"duckdb:///{tmp_path / 'sandbox.duckdb'}"
    config = api_config(tmp_path, tmp_path / "serving.duckdb", warehouse_url=url)
    from enrichment_pipeline.lib.api_keys import KeyStore
    from enrichment_pipeline.lib.api_state import StateStore

    key = KeyStore(StateStore(config.state_path)).create("e2e", ("read", "enrich"), "standard")[1]
    with Receiver() as receiver, LiveServer(create_app(config)) as server, server.client(key) as c:
        r = c.post(
            "/v1/enrichments",
            json={"domains": ["https://www.Shopify.com/", "stripe.com", "???"], "webhook_url": receiver.url},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert r.json()["rejected"][0]["input"] == "???"
        statuses = []
        with c.stream("GET", f"/v1/enrichments/{job_id}/events", timeout=600) as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "status":
                    statuses.append(json.loads(line.removeprefix("data: "))["status"])
                elif line.startswith("data: ") and event == "done":
                    done = json.loads(line.removeprefix("data: "))
        assert done["status"] == "succeeded", done
        # The stream reports the job's progress in order; a fast run may finish between two polls,
        # so "running" itself is not always seen.
        order = ["accepted", "launching", "running", "building_marts", "succeeded"]
        seen = [order.index(s) for s in statuses]
        assert seen == sorted(seen) and len(set(statuses)) >= 2 and statuses[-1] == "succeeded", statuses
        job = c.get(f"/v1/enrichments/{job_id}").json()
        assert {r["job"] for r in job["runs"]} == {"enrich_domains", "build_marts"}
        assert all(r["status"] == "SUCCESS" for r in job["runs"])
        outcome = {r["domain"]: r["status"] for r in job["results"]}
        assert outcome == {"shopify.com": "enriched", "stripe.com": "enriched"}
        assert receiver.arrived.wait(30)
        company = c.get("/v1/companies/shopify.com")
        assert company.status_code == 200 and company.json()["score"]["icp_tier"]

    headers, body = receiver.received[-1]
    assert webhooks.verify(body, headers["x-timestamp"], headers["x-signature"], SECRET)
    assert json.loads(body)["job"]["status"] == "succeeded"

    import dagster as dg

    instance = dg.DagsterInstance.get()
    run = instance.get_run_by_id(job["runs"][0]["run_id"])
    assert run.tags["enrichment/api_job"] == job_id and run.job_name == "enrich_domains"
    assert set(instance.get_dynamic_partitions("domains")) == {"shopify.com", "stripe.com"}
