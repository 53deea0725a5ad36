"""Reading an ICP model file: where it comes from, its hash, YAML 1.2 scalars, and problems
reported with the file, the line and the path of the bad entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from enrichment_pipeline.lib.scoring.loader import ModelError, default_model_path, load_model
from enrichment_pipeline.lib.scoring.model import NUMERIC_FIELDS
from enrichment_pipeline.lib.units import NAICS_SECTORS
from enrichment_pipeline_tests.lib.icp_model_files import BUNDLED, MODEL, variant, write_model


def test_bundled_model_loads():
    assert MODEL.version == BUNDLED["version"] == "2026.12-1"
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
    assert a.file_hash == load_model(tmp_path / "a.yaml").file_hash


# A small model with known line numbers, to check the exact messages.
SMALL = """\
version: "t-1"
name: tiny
tiers: {hot: 70, warm: 50, cool: 30}
criteria:
  - id: visits
    family: fit
    field: monthly_visits
    bands:
      - {min: 1000000, points: 10, reason: "big ({value})"}
      - {min: 100000, max: 1000000, points: 5, reason: "mid ({value})"}
  - id: vertical
    family: fit
    industries: ["44-45", "51"]
    points: 5
    reason: "in {value}"
disqualifiers:
  - id: gov
    industries: ["92"]
    reason: "public sector"
"""


def _small(tmp_path: Path, old: str, new: str) -> str:
    assert old in SMALL
    path = write_model(tmp_path, SMALL.replace(old, new))
    with pytest.raises(ModelError) as exc:
        load_model(path)
    return str(exc.value).replace(str(path), "model.yaml")


def test_small_model_is_valid(tmp_path):
    model = load_model(write_model(tmp_path, SMALL))
    assert model.max_points == 15


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{min: 100000, max: 1000000,",
            "{min: 100000, max: 2000000,",
            "model.yaml:10: criteria[0].bands[1]: overlapping bands: [100000, 2000000) overlaps "
            "bands[0] [1000000, inf) of 'visits'",
        ),
        (
            "field: monthly_visits",
            "field: visits_per_month",
            "model.yaml:7: criteria[0].field: unknown field 'visits_per_month'; known numeric fields: "
            + ", ".join(NUMERIC_FIELDS),
        ),
        (
            "points: 10,",
            "points: -10,",
            "model.yaml:9: criteria[0].bands[0].points: Input should be greater than or equal to 0 (got -10)",
        ),
        (
            "    points: 5\n",
            "    points: lots\n",
            "model.yaml:14: criteria[1].points: Input should be a valid number (got 'lots')",
        ),
        (
            "    family: fit\n    industries",
            "    family: fit\n    weight: 3\n    industries",
            "model.yaml:13: criteria[1]: unknown key 'weight' (allowed: id, family, description, field, "
            "format, bands, technologies_any, technologies_none, industries, countries, points, reason)",
        ),
        (
            '["44-45", "51"]',
            '["44-45", "51", "50"]',
            "model.yaml:13: criteria[1].industries[2]: unknown NAICS sector code '50'; known: "
            + ", ".join(NAICS_SECTORS),
        ),
        (
            "{hot: 70, warm: 50, cool: 30}",
            "{hot: 70, warm: 80, cool: 30}",
            "model.yaml:3: tiers.hot: tier thresholds must satisfy hot > warm > cool "
            "(got hot 70, warm 80, cool 30)",
        ),
        (
            "  - id: gov\n",
            "  - id: gov\n    id: gov2\n",
            "model.yaml:18: disqualifiers[0]: duplicate key 'id' (first at line 17)",
        ),
        (
            "tiers: {hot: 70, warm: 50, cool: 30}",
            "tiers: {hot: 70, warm: 50, cool: 30",
            "model.yaml:4: not valid YAML: expected ',' or '}', but got ':' "
            "(while parsing a flow mapping at line 3)",
        ),
        (
            '    reason: "in {value}"\n',
            "",
            "model.yaml:11: criteria[1]: a industries criterion needs `points` and `reason`",
        ),
    ],
)
def test_problems_name_the_line_and_the_entry(tmp_path, old, new, message):
    assert _small(tmp_path, old, new) == message


def test_every_problem_is_reported_in_line_order(tmp_path):
    text = _small(tmp_path, "points: 10,", 'points: "10", max: oops,')
    assert text.splitlines() == [
        "model.yaml:9: criteria[0].bands[0].max: Input should be a valid number (got 'oops')",
        "model.yaml:9: criteria[0].bands[0].points: Input should be a valid number (got '10')",
    ]


def test_yaml_1_2_scalars(tmp_path):
    """1e6 is a number (YAML 1.1 reads a string); NO stays the country code (1.1 reads false)."""
    text = SMALL.replace("min: 1000000, points", "min: 1e6, points").replace(
        'industries: ["44-45", "51"]', "industries: [44-45, 51]"
    )
    text = text.replace('industries: ["92"]', "countries: [NO, ON]")
    model = load_model(write_model(tmp_path, text))
    assert model.criteria[0].bands[0].min == 1_000_000
    assert model.criteria[1].industries == ["44-45", "51"]
    assert model.disqualifiers[0].countries == ["NO", "ON"]


def test_single_letter_country_is_rejected(tmp_path):
    text = SMALL.replace('industries: ["92"]', "countries: [NO, Y]")
    with pytest.raises(ModelError, match=r":18: disqualifiers\[0\]\.countries\[1\]: .*\(got 'Y'\)"):
        load_model(write_model(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("criteria: [unclosed\n", "not valid YAML"),
        ("version: 1\n  bad: indent\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping at the top level"),
        ("", "mapping at the top level"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
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
