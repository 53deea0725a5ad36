"""The `marts/icp_scores` asset: re-scoring from the warehouse alone, with another model,
makes no provider call; recent technology changes reach the score; a bad model fails
the run with the file and line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import polars as pl
import pytest
import yaml

from enrichment_pipeline.defs.history.assets import CHANGES_TABLE
from enrichment_pipeline.defs.profiles.assets import PROFILES_TABLE
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.defs.scoring.assets import SCORES_TABLE, icp_scores
from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.scoring.engine import SCORE_SCHEMA
from enrichment_pipeline.lib.scoring.loader import ModelLoader, default_model_path, load_model
from enrichment_pipeline.lib.tech_history import CHANGES_SCHEMA
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.defs.helpers import Recorder, read_table, run_pipeline, sandbox_domains

DOMAINS = sandbox_domains(3) + sandbox_domains(1, builtwith=False)
RAW = "raw.provider_responses"


class NoCalls:
    """An HTTP transport (and a patch for every httpx client) that fails the test on any request."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        pytest.fail(f"re-scoring made a provider call: {request.method} {request.url}")

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def refuse_all_http(monkeypatch: pytest.MonkeyPatch, guard: NoCalls) -> None:
    """Every httpx client, sync or async, refuses to send (not only the injected transport)."""

    def refuse(self, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        return guard(request)

    async def refuse_async(self, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        return guard(request)

    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(httpx.AsyncClient, "send", refuse_async)


@pytest.fixture
def no_calls(monkeypatch: pytest.MonkeyPatch) -> NoCalls:
    guard = NoCalls()
    refuse_all_http(monkeypatch, guard)
    return guard


def _bundled() -> dict[str, Any]:
    return yaml.load(default_model_path().read_text(), Loader=ModelLoader)


class _NoAliases(yaml.SafeDumper):
    """Shared sub-objects written out in full: the model loader refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _write(tmp_path: Path, data: dict[str, Any] | str, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.dump(data, Dumper=_NoAliases, sort_keys=False))
    return path


def _strict_model(tmp_path: Path) -> Path:
    """Another model: new version, much higher tiers, traffic worth more."""
    data = _bundled()
    data["version"] = "rescore-2"
    data["tiers"] = {"hot": 95, "warm": 90, "cool": 85}
    traffic = next(c for c in data["criteria"] if c["id"] == "traffic_scale")
    traffic["bands"][0]["points"] = 40
    return _write(tmp_path, data, "strict.yaml")


def _materialize_scores(
    instance: dg.DagsterInstance,
    warehouse_url: str,
    *,
    model_path: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    config = {"model": model_path.name} if model_path else {}
    return dg.materialize(
        [icp_scores],
        instance=instance,
        resources={"warehouse": WarehouseResource(url=warehouse_url), "http_transport": transport},
        run_config={"ops": {"marts__icp_scores": {"config": config}}},
        raise_on_error=raise_on_error,
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.asset_materializations_for_node("marts__icp_scores")
    return {k: v.value for k, v in event.metadata.items()}


@pytest.mark.parametrize("how", ["config", "env"])
def test_rescoring_with_another_model_makes_no_provider_call(
    instance, warehouse_url, tmp_path, monkeypatch, how
):
    # The whole pipeline once (sandbox providers, through a recorder).
    recorder = Recorder()
    assert run_pipeline(instance, warehouse_url, DOMAINS, transport=recorder.transport()).success
    calls = len(recorder.requests)
    assert calls > 0
    raw_before = read_table(warehouse_url, RAW).sort("provider", "endpoint", "domain")
    profiles_before = read_table(warehouse_url, PROFILES_TABLE).sort("domain")
    first = read_table(warehouse_url, SCORES_TABLE).sort("domain")
    bundled = load_model()
    assert set(first["model_version"]) == {bundled.version}

    # Re-score only, with another model, with every HTTP path refusing to work.
    no_calls = NoCalls()
    refuse_all_http(monkeypatch, no_calls)
    model_path = _strict_model(tmp_path)
    if how == "env":
        monkeypatch.setenv("ICP_MODEL", str(model_path))
    else:
        monkeypatch.setenv("ICP_MODELS_DIR", str(tmp_path))
    result = _materialize_scores(
        instance,
        warehouse_url,
        model_path=model_path if how == "config" else None,
        transport=no_calls.transport(),
    )
    assert result.success
    assert no_calls.requests == []
    assert len(recorder.requests) == calls
    # Only the scores changed.
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert steps == {"marts__icp_scores"}
    assert read_table(warehouse_url, RAW).sort("provider", "endpoint", "domain").equals(raw_before)
    assert read_table(warehouse_url, PROFILES_TABLE).sort("domain").equals(profiles_before)

    strict = load_model(model_path)
    second = read_table(warehouse_url, SCORES_TABLE).sort("domain")
    assert second["domain"].to_list() == first["domain"].to_list()
    assert set(second["model_version"]) == {"rescore-2"}
    assert set(second["model_hash"]) == {strict.file_hash} != {bundled.file_hash}
    assert (second["scored_at"] > first["scored_at"]).all()
    for row in second.iter_rows(named=True):
        t = strict.tiers
        s = row["icp_score"]
        expected = "hot" if s >= t.hot else "warm" if s >= t.warm else "cool" if s >= t.cool else "cold"
        assert row["icp_tier"] == expected
    meta = _metadata(result)
    assert meta["model_version"] == "rescore-2"
    assert meta["model_hash"] == strict.file_hash
    assert meta["rows"] == len(DOMAINS)


def test_the_scoring_asset_needs_no_provider_or_http_resource():
    assert icp_scores.required_resource_keys - {"io_manager"} == {"warehouse"}


NOW = datetime.now(UTC)


def _profile(domain: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(PROFILE_SCHEMA)
    row.update(domain=domain, status="enriched", mode="sandbox", enriched_at=NOW, **values)
    if isinstance(row["technologies"], list):
        row["technologies"] = json.dumps(row["technologies"])
    return row


def _seed(warehouse_url: str, profiles: list[dict[str, Any]], changes: list[dict[str, Any]]) -> None:
    with Warehouse.open(warehouse_url) as wh:
        wh.replace_table(
            PROFILES_TABLE, pl.DataFrame(profiles, schema=PROFILE_SCHEMA), PROFILE_SCHEMA, ("domain",)
        )
        wh.replace_table(CHANGES_TABLE, pl.DataFrame(changes, schema=CHANGES_SCHEMA), CHANGES_SCHEMA)


def _change(domain: str, tech: str, change: str, days_ago: float) -> dict[str, Any]:
    return {
        "domain": domain,
        "technology": tech,
        "change": change,
        "seen_at": NOW - timedelta(days=days_ago),
        "provider": "builtwith",
    }


def test_recent_technology_changes_reach_the_score(instance, warehouse_url, no_calls):
    _seed(
        warehouse_url,
        [
            _profile("moving.com", technologies=["Shopify Plus", "Algolia"], monthly_visits=2e6),
            _profile("still.com", technologies=["Shopify Plus"], monthly_visits=2e6),
            _profile("unknown.com", monthly_visits=2e6),
            _profile("gov.example", industry_naics="92", industry_label="Public Administration"),
        ],
        [
            _change("moving.com", "Algolia", "added", 3),
            _change("moving.com", "Klevu", "removed", 3),
            _change("moving.com", "Magento", "removed", 30),
            _change("still.com", "Magento", "removed", 400),  # too long ago
        ],
    )
    result = _materialize_scores(instance, warehouse_url, transport=no_calls.transport())
    assert result.success
    scores = {r["domain"]: r for r in read_table(warehouse_url, SCORES_TABLE).iter_rows(named=True)}
    moving = json.loads(scores["moving.com"]["score_breakdown"])
    assert moving["stack_in_motion"] == 7
    assert "3 technology changes in the last 90 days" in json.loads(scores["moving.com"]["score_reasons"])
    assert scores["moving.com"]["timing_signal"] == 35.0
    assert json.loads(scores["still.com"]["score_breakdown"])["stack_in_motion"] == 0
    assert json.loads(scores["unknown.com"]["score_breakdown"])["stack_in_motion"] == 0
    gov = scores["gov.example"]
    assert (gov["disqualified"], gov["icp_score"], gov["icp_tier"]) == (True, 0.0, "cold")
    assert gov["disqualification_reason"].startswith("public administration (Public Administration)")
    assert _metadata(result)["disqualified"] == 1
    assert no_calls.requests == []
    # Scores lie in 0-100; a disqualified company scores 0 and is cold.
    assert all(0 <= r["icp_score"] <= 100 for r in scores.values())
    assert all((r["icp_score"], r["icp_tier"]) == (0.0, "cold") for r in scores.values() if r["disqualified"])


def test_an_old_scores_table_gains_the_new_column(instance, warehouse_url, no_calls):
    _seed(warehouse_url, [_profile("a.com", monthly_visits=1000.0)], [])
    old_schema = {k: v for k, v in SCORE_SCHEMA.items() if k != "disqualification_reason"}
    with Warehouse.open(warehouse_url) as wh:
        wh.replace_table(SCORES_TABLE, pl.DataFrame(schema=old_schema), old_schema, ("domain",))
    assert _materialize_scores(instance, warehouse_url).success
    scores = read_table(warehouse_url, SCORES_TABLE)
    assert set(SCORE_SCHEMA) <= set(scores.columns)
    assert scores["disqualification_reason"].to_list() == [
        "too little traffic to need site search (1000 visits/month)"
    ]


def test_a_bad_model_fails_the_run_naming_file_and_line(
    instance, warehouse_url, tmp_path, no_calls, monkeypatch
):
    _seed(warehouse_url, [_profile("a.com", monthly_visits=1e6)], [])
    text = default_model_path().read_text().replace("family: timing\n", "family: timing\n    weight: 3\n", 1)
    path = _write(tmp_path, text, "bad.yaml")
    line = text.splitlines().index("    weight: 3") + 1
    monkeypatch.setenv("ICP_MODELS_DIR", str(tmp_path))
    result = _materialize_scores(instance, warehouse_url, model_path=path, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.step_failure_data.user_failure_data.description)
    assert f"{path}:{line}: criteria[" in message
    assert "unknown key 'weight'" in message
    with Warehouse.open(warehouse_url, read_only=True) as wh:
        assert not wh.has_table(SCORES_TABLE)


def test_stack_changes_from_the_sandbox_reach_the_scores(instance, warehouse_url):
    """End to end: a later sandbox epoch changes some stacks; the history records the changes;
    the scores count them (they were seen moments ago, inside the 90-day window)."""
    domains = sandbox_domains(12)
    providers = ["builtwith"]
    assert run_pipeline(instance, warehouse_url, domains, providers=providers).success
    later = {"providers": ProvidersResource(mode="sandbox", providers=providers, sandbox_epoch=2)}
    assert run_pipeline(
        instance, warehouse_url, domains, providers=providers, force=True, extra_resources=later
    ).success
    changes = read_table(warehouse_url, CHANGES_TABLE)
    # Technologies BuiltWith reports as long dead are in the history too, removed at their
    # last detection (years ago): outside the scoring window, so not "in motion".
    window_start = datetime.now(UTC) - timedelta(days=90)
    old = changes.filter(pl.col("seen_at") < window_start)
    assert old["change"].unique().to_list() in ([], ["removed"])
    changes = changes.filter(pl.col("seen_at") >= window_start)
    changed = set(changes["domain"])
    assert changed, "the sandbox's epoch 2 changes about 30% of stacks (deterministic per domain)"
    scores = {r["domain"]: r for r in read_table(warehouse_url, SCORES_TABLE).iter_rows(named=True)}
    counts = changes.group_by("domain").len()
    for domain, n in counts.iter_rows():
        points = json.loads(scores[domain]["score_breakdown"])["stack_in_motion"]
        assert points == (10 if n >= 5 else 7 if n >= 2 else 4), (domain, n)
    for domain in set(domains) - changed:
        assert json.loads(scores[domain]["score_breakdown"])["stack_in_motion"] == 0


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../../etc/passwd.yaml", "sub/model.yaml", ".hidden.yaml", "model.txt", "outside.yaml"],
)
def test_run_config_cannot_point_the_model_loader_outside_the_models_dir(
    instance, warehouse_url, tmp_path, monkeypatch, name
):
    models = tmp_path / "models"
    models.mkdir()
    secret = tmp_path / "secret.yaml"
    secret.write_text("version: SENTINEL-SECRET\n")
    (models / "outside.yaml").symlink_to(secret)
    monkeypatch.setenv("ICP_MODELS_DIR", str(models))
    _seed(warehouse_url, [_profile("a.com", monthly_visits=1e6)], [])
    result = dg.materialize(
        [icp_scores],
        instance=instance,
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
        run_config={"ops": {"marts__icp_scores": {"config": {"model": name}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.step_failure_data.user_failure_data.description)
    assert "invalid ICP model" in message and "SENTINEL" not in message
    assert "not a path" in message or "links out of" in message or "no model" in message


def test_old_path_options_are_gone_from_run_config():
    from enrichment_pipeline.defs.scoring.assets import ScoringConfig
    from enrichment_pipeline.defs.serving.assets import marts_snapshot

    assert "model_path" not in ScoringConfig.model_fields
    assert marts_snapshot.op.config_schema is None or "path" not in str(marts_snapshot.op.config_schema)
