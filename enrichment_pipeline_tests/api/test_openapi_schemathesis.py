"""Schemathesis over every operation of the OpenAPI document, against a real uvicorn.

Bounded examples per operation; every answer must be below 500 and conform to the
schema (status code documented, content type, headers, body); invalid input must be
refused. Dagster is replaced by the recorder of `test_enrichments`, so POST /v1/enrichments
launches nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.lib.api_keys import KeyStore
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline_tests.api.conftest import LiveServer, api_config
from enrichment_pipeline_tests.api.test_enrichments import FakeRuns

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def live(snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    config = api_config(tmp, snapshot_dir / "serving.duckdb")
    with LiveServer(create_app(config, runs=FakeRuns(hold=True))) as server:
        server.key = KeyStore(StateStore(config.state_path)).create("fuzz", ("read", "enrich"), "admin")[1]
        yield server


# The document as the app serves it (built without starting the app), loaded once at collection.
# Operations are parametrized here rather than with schemathesis' pytest plugin, whose collection
# hooks do not work with the pytest this project pins.
SCHEMA = schemathesis.openapi.from_dict(create_app(api_config(Path("."), Path("unused.duckdb"))).openapi())
OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_conforms(label: str, live: LiveServer, monkeypatch):
    monkeypatch.delenv("ENRICHMENT_MAX_COST_USD", raising=False)
    operation = OPERATIONS[label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case) -> None:
        if case.path.endswith("/events"):
            # An SSE stream lasts until its job ends: the stream itself is tested in test_enrichments.
            case.path_parameters = {"job_id": "no-such-job"}
        case.call_and_validate(
            base_url=live.url,
            headers={"Authorization": f"Bearer {live.key}"},
            # A schema-valid string may still not be a company domain (or a valid model): refusing
            # it with a 422 problem is the contract, so that check does not apply.
            excluded_checks=[positive_data_acceptance],
        )

    check()
