"""The ICP model file (validation, messages) and vectorized scoring, with property tests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.scoring import (
    SCORE_SCHEMA,
    TIERS,
    IcpModel,
    ModelError,
    default_model_path,
    load_model,
    score_profiles,
)

SCORED_AT = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = load_model()
BUNDLED: dict[str, Any] = yaml.safe_load(default_model_path().read_text())

COMPETITORS = ["Algolia", "Coveo", "Bloomreach", "Constructor.io", "Lucidworks", "Klevu", "Searchspring"]
COMMERCE = ["Shopify Plus", "Salesforce Commerce Cloud", "Adobe Commerce", "Magento"]
TECHS = [*COMPETITORS, *COMMERCE, "Elasticsearch", "Solr", "Shopify", "WordPress", "Google Analytics"]


def profiles(*rows: dict[str, Any]) -> pl.DataFrame:
    """A profiles frame: `technologies` may be given as a list; unnamed columns are null."""
    records = []
    for i, row in enumerate(rows):
        record = dict.fromkeys(PROFILE_SCHEMA)
        record["domain"] = f"d{i}.example"
        record.update(row)
        if isinstance(record["technologies"], list):
            record["technologies"] = json.dumps(record["technologies"])
        records.append(record)
    return pl.DataFrame(records, schema=PROFILE_SCHEMA)


def score(*rows: dict[str, Any], model: IcpModel = MODEL) -> list[dict[str, Any]]:
    return score_profiles(profiles(*rows), model, SCORED_AT).to_dicts()


def write_model(tmp_path: Path, data: Any, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def variant(change) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(BUNDLED))
    change(data)
    return data


def expected_tier(value: float, model: IcpModel = MODEL) -> str:
    t = model.tiers
    return "hot" if value >= t.hot else "warm" if value >= t.warm else "cool" if value >= t.cool else "cold"


# --------------------------------------------------------------------------- the model file


def test_bundled_model_loads():
    assert MODEL.version == BUNDLED["version"]
    assert MODEL.name == "site-search-icp"
    assert MODEL.tiers.hot > MODEL.tiers.warm > MODEL.tiers.cool
    assert [c.id for c in MODEL.criteria] == [c["id"] for c in BUNDLED["criteria"]]
    assert MODEL.max_points == 100
    assert len(MODEL.file_hash) == 16
    int(MODEL.file_hash, 16)


def test_model_path_from_argument_and_env(tmp_path, monkeypatch):
    data = variant(lambda d: d.update(version="custom-1"))
    path = write_model(tmp_path, data)
    assert load_model(path).version == "custom-1"
    monkeypatch.setenv("ICP_MODEL", str(path))
    assert load_model().version == "custom-1"
    assert load_model(default_model_path()).version == BUNDLED["version"]


def test_file_hash_follows_the_bytes(tmp_path):
    a = load_model(write_model(tmp_path, variant(lambda d: None), "a.yaml"))
    b = load_model(write_model(tmp_path, variant(lambda d: d.update(version="other")), "b.yaml"))
    assert a.file_hash != b.file_hash


def _criterion(d: dict, cid: str) -> dict:
    return next(c for c in d["criteria"] if c["id"] == cid)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(
            lambda d: _criterion(d, "traffic_scale").update(field="visits"),
            "unknown field 'visits'",
            id="unknown-field",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"][0].update(points=-5),
            "greater than or equal",
            id="negative-band-points",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(points=-1),
            "greater than or equal",
            id="negative-tech-points",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"].append(
                {"min": 5_000_000, "max": 20_000_000, "points": 1, "reason": "x"}
            ),
            "overlap",
            id="overlapping-bands",
        ),
        pytest.param(
            lambda d: _criterion(d, "high_bounce")["bands"].append({"points": 1, "reason": "always"}),
            "overlap",
            id="open-band-overlaps",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"][1].update(min=20_000_000),
            "must be below max",
            id="min-above-max",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"][1].update(min=10_000_000),
            "must be below max",
            id="min-equals-max",
        ),
        pytest.param(
            lambda d: d.update(tiers={"hot": 50, "warm": 60, "cool": 30}),
            "hot > warm > cool",
            id="tiers-not-descending",
        ),
        pytest.param(
            lambda d: d.update(tiers={"hot": 50, "warm": 50, "cool": 30}),
            "hot > warm > cool",
            id="tiers-equal",
        ),
        pytest.param(lambda d: d["tiers"].update(hot=120), "tiers.hot", id="tier-above-100"),
        pytest.param(lambda d: d.update(weights={"a": 1}), "weights", id="unknown-top-level-key"),
        pytest.param(
            lambda d: _criterion(d, "growing").update(weight=2), "weight", id="unknown-criterion-key"
        ),
        pytest.param(lambda d: d.pop("tiers"), "tiers", id="missing-tiers"),
        pytest.param(lambda d: d.update(criteria=[]), "criteria", id="no-criteria"),
        pytest.param(
            lambda d: _criterion(d, "growing").update(technologies_any=["X"]),
            "either",
            id="bands-and-technologies",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").pop("reason"),
            "reason",
            id="technologies-without-reason",
        ),
        pytest.param(lambda d: _criterion(d, "growing").update(family="luck"), "family", id="unknown-family"),
        pytest.param(
            lambda d: d.update(
                criteria=[{"id": "z", "family": "fit", "technologies_any": ["X"], "points": 0, "reason": "r"}]
            ),
            "no points",
            id="zero-points",
        ),
    ],
)
def test_invalid_model_is_a_model_error(tmp_path, change, problem):
    path = write_model(tmp_path, variant(change))
    with pytest.raises(ModelError) as exc:
        load_model(path)
    message = str(exc.value)
    assert str(path) in message
    assert problem in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("criteria: [unclosed\n", "not valid YAML"),
        ("version: 1\n  bad: indent\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping at the top level"),
        ("", "mapping at the top level"),
    ],
)
def test_unparseable_model_is_a_model_error(tmp_path, text, problem):
    path = write_model(tmp_path, text)
    with pytest.raises(ModelError, match=re.escape(problem)) as exc:
        load_model(path)
    assert str(path) in str(exc.value)


def test_missing_model_file_is_a_model_error(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ModelError) as exc:
        load_model(path)
    assert str(path) in str(exc.value)
    assert "No such file" in str(exc.value)


def test_model_from_env_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("ICP_MODEL", str(tmp_path / "missing.yaml"))
    with pytest.raises(ModelError, match=r"missing\.yaml"):
        load_model()


def test_disqualifier_with_unknown_field_is_a_model_error(tmp_path):
    change = variant(
        lambda d: d["disqualifiers"].append({"id": "x", "field": "visitz", "max": 1, "reason": "r"})
    )
    with pytest.raises(ModelError, match="visitz"):
        load_model(write_model(tmp_path, change))


def test_duplicate_criterion_ids_are_a_model_error(tmp_path):
    change = variant(lambda d: d["criteria"].append(dict(d["criteria"][0])))
    with pytest.raises(ModelError, match="traffic_scale"):
        load_model(write_model(tmp_path, change))


def test_disqualifier_without_bounds_is_a_model_error(tmp_path):
    change = variant(
        lambda d: d["disqualifiers"].append({"id": "x", "field": "monthly_visits", "reason": "r"})
    )
    with pytest.raises(ModelError):
        load_model(write_model(tmp_path, change))


# --------------------------------------------------------------------------- scoring examples


def test_a_perfect_fit_is_hot_with_every_reason():
    [row] = score(
        {
            "monthly_visits": 20_000_000.0,
            "technologies": ["Shopify Plus", "Algolia", "Elasticsearch"],
            "bounce_rate": 0.6,
            "pages_per_visit": 2.0,
            "search_share": 0.5,
            "visits_growth": 0.2,
        }
    )
    assert row["icp_score"] == 100.0
    assert row["icp_tier"] == "hot"
    assert row["disqualified"] is False
    reasons = json.loads(row["score_reasons"])
    assert len(reasons) == len(MODEL.criteria)
    assert "very large audience (20000000 visits/month)" in reasons
    assert "runs Shopify Plus: a commerce platform we integrate with" in reasons
    assert "uses Algolia: displacement opportunity" in reasons
    assert "high bounce rate (60%)" in reasons
    assert "few pages per visit (2.0)" in reasons
    assert "50% of traffic arrives from search engines" in reasons
    assert "traffic growing (+20% over the period)" in reasons
    assert json.loads(row["score_breakdown"]) == {c.id: c.max_points for c in MODEL.criteria}
    assert row["budget_signal"] == row["pain_signal"] == row["timing_signal"] == 100.0
    assert row["model_version"] == MODEL.version
    assert row["model_hash"] == MODEL.file_hash


def test_unknown_everything_scores_zero_but_is_not_disqualified():
    [row] = score({})
    assert row["icp_score"] == 0.0
    assert row["icp_tier"] == "cold"
    assert row["disqualified"] is False
    assert json.loads(row["score_reasons"]) == []


def test_too_little_traffic_disqualifies():
    [row] = score({"monthly_visits": 1200.0, "technologies": ["Algolia", "Shopify Plus"], "bounce_rate": 0.9})
    assert row["disqualified"] is True
    assert row["icp_score"] == 0.0
    assert row["icp_tier"] == "cold"
    reasons = json.loads(row["score_reasons"])
    assert reasons[0] == "too little traffic to need site search (1200 visits/month)"
    # The breakdown still shows what the company would have earned.
    assert json.loads(row["score_breakdown"])["competitor_search"] == 15


@pytest.mark.parametrize(
    ("visits", "points"),
    [(99_999.0, 0), (100_000.0, 10), (999_999.9, 10), (1_000_000.0, 20), (10_000_000.0, 25), (1e10, 25)],
)
def test_bands_include_min_and_exclude_max(visits, points):
    [row] = score({"monthly_visits": visits})
    assert json.loads(row["score_breakdown"])["traffic_scale"] == points


def test_score_columns_match_the_schema():
    frame = score_profiles(profiles({}, {"monthly_visits": 5e5}), MODEL, SCORED_AT)
    assert dict(frame.schema) == SCORE_SCHEMA
    assert frame["scored_at"].to_list() == [SCORED_AT, SCORED_AT]


def test_empty_profiles_give_empty_scores():
    frame = score_profiles(profiles(), MODEL, SCORED_AT)
    assert frame.is_empty()
    assert dict(frame.schema) == SCORE_SCHEMA


def test_disqualifier_min_means_at_least(tmp_path):
    data = variant(
        lambda d: d["disqualifiers"].append(
            {"id": "too_big", "field": "monthly_visits", "min": 1e9, "reason": "too big ({value})"}
        )
    )
    model = load_model(write_model(tmp_path, data))
    mid, huge = score({"monthly_visits": 2e6}, {"monthly_visits": 2e9}, model=model)
    assert mid["disqualified"] is False
    assert huge["disqualified"] is True


# --------------------------------------------------------------------------- properties

visits = st.none() | st.floats(0, 5e9, allow_nan=False)
share = st.none() | st.floats(0, 1, allow_nan=False)
pages = st.none() | st.floats(0, 60, allow_nan=False)
growth = st.none() | st.floats(-1, 10, allow_nan=False)
techs = st.none() | st.lists(st.sampled_from(TECHS), unique=True, max_size=6)

profile_rows = st.fixed_dictionaries(
    {
        "monthly_visits": visits,
        "bounce_rate": share,
        "pages_per_visit": pages,
        "search_share": share,
        "visits_growth": growth,
        "technologies": techs,
    }
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.lists(profile_rows, min_size=1, max_size=15))
def test_scores_are_bounded_and_tiers_follow_the_thresholds(rows):
    scored = score(*rows)
    assert len(scored) == len(rows)
    for row in scored:
        assert 0.0 <= row["icp_score"] <= 100.0
        assert row["icp_tier"] in TIERS
        assert row["icp_tier"] == expected_tier(row["icp_score"])
        if row["disqualified"]:
            assert row["icp_score"] == 0.0
            assert row["icp_tier"] != "hot"
        else:
            earned = sum(json.loads(row["score_breakdown"]).values())
            assert row["icp_score"] == pytest.approx(round(earned / MODEL.max_points * 100, 1))


@PROPERTY
@given(profile_rows)
def test_scoring_one_row_does_not_depend_on_the_others(row):
    alone = score(row)[0]
    together = score({}, row, {"monthly_visits": 1.0, "technologies": TECHS})[1]
    assert {k: v for k, v in alone.items() if k != "domain"} == {
        k: v for k, v in together.items() if k != "domain"
    }


def _raise(row: dict[str, Any], field: str, amount: float) -> dict[str, Any] | None:
    """The same profile with one input moved in the direction its criterion rewards."""
    value = row[field]
    if value is None:
        return None
    if field == "pages_per_visit":  # shallow_sessions rewards FEW pages per visit
        return {**row, field: max(0.0, value - amount * 60)}
    if field in ("bounce_rate", "search_share"):
        return {**row, field: min(1.0, value + amount)}
    if field == "visits_growth":
        return {**row, field: value + amount * 10}
    if field == "monthly_visits":
        return {**row, field: value * (1 + amount * 100) + amount * 1e7}
    raise AssertionError(field)


@PROPERTY
@given(
    profile_rows,
    st.sampled_from(["monthly_visits", "bounce_rate", "pages_per_visit", "search_share", "visits_growth"]),
    st.floats(0, 1, allow_nan=False),
)
def test_a_better_input_never_lowers_the_score(row, field, amount):
    better = _raise(row, field, amount)
    if better is None:
        return
    before, after = score(row, better)
    assert after["icp_score"] >= before["icp_score"], (field, row, better)
    assert not (after["disqualified"] and not before["disqualified"])


@PROPERTY
@given(profile_rows, st.sampled_from(TECHS))
def test_adding_a_technology_never_lowers_the_score(row, tech):
    current = row["technologies"] or []
    before, after = score(row, {**row, "technologies": sorted({*current, tech})})
    assert after["icp_score"] >= before["icp_score"]


@PROPERTY
@given(profile_rows, st.sampled_from(COMPETITORS))
def test_a_competitor_adds_its_points_unless_already_earned(row, competitor):
    current = row["technologies"] or []
    before, after = score(row, {**row, "technologies": sorted({*current, competitor})})
    gained = json.loads(after["score_breakdown"])["competitor_search"]
    assert gained == 15
    if not before["disqualified"] and not set(current) & set(COMPETITORS):
        assert after["icp_score"] == pytest.approx(before["icp_score"] + 15, abs=0.11)


def test_crossing_a_visits_band_upward_raises_the_score():
    low, high = score(
        {"monthly_visits": 999_999.0, "technologies": ["Algolia"]},
        {"monthly_visits": 1_000_000.0, "technologies": ["Algolia"]},
    )
    assert high["icp_score"] > low["icp_score"]
