"""The ICP model's schema: every rule a model must follow, and the words its problems are
reported in (checked through a model file, so each message also carries its `file:line:`)."""

from __future__ import annotations

import re

import pytest

from enrichment_pipeline.lib.scoring.loader import ModelError, load_model
from enrichment_pipeline.lib.scoring.model import (
    CRITERION_KINDS,
    DISQUALIFIER_KINDS,
    FAMILIES,
    RECENT_TECH_CHANGES,
)
from enrichment_pipeline_tests.lib.icp_model_files import MODEL, variant, write_model


def _criterion(d: dict, cid: str) -> dict:
    return next(c for c in d["criteria"] if c["id"] == cid)


def _disqualifier(d: dict, did: str) -> dict:
    return next(c for c in d["disqualifiers"] if c["id"] == did)


def test_bundled_model_uses_every_kind_and_family():
    assert {c.kind for c in MODEL.criteria} == set(CRITERION_KINDS)
    assert {d.kind for d in MODEL.disqualifiers} == set(DISQUALIFIER_KINDS)
    assert {c.family for c in MODEL.criteria} == set(FAMILIES)
    fields = {c.field for c in MODEL.criteria}
    assert {"revenue_usd", "employees", "operating_margin", RECENT_TECH_CHANGES, "visits_growth"} <= fields
    assert "NO" in next(c for c in MODEL.criteria if c.countries).countries  # Norway is not `false`
    assert any(d.industries == ["92"] for d in MODEL.disqualifiers)


def test_file_hash_cannot_be_set_in_the_file(tmp_path):
    with pytest.raises(ModelError, match="unknown key 'file_hash'"):
        load_model(write_model(tmp_path, variant(lambda d: d.update(file_hash="0" * 16))))


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
            "greater than or equal to 0 (got -5)",
            id="negative-band-points",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(points=-1),
            "greater than or equal",
            id="negative-tech-points",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(points="ten"),
            "valid number (got 'ten')",
            id="points-not-a-number",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(points="5"),
            "valid number (got '5')",
            id="points-as-text",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(points=True),
            "valid number (got True)",
            id="points-boolean",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(points=float("nan")),
            "finite number",
            id="points-nan",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"].append(
                {"min": 5_000_000, "max": 20_000_000, "points": 1, "reason": "x"}
            ),
            "criteria[1].bands[3]: overlapping bands: [5000000, 20000000) overlaps bands[",
            id="overlapping-bands",
        ),
        pytest.param(
            lambda d: _criterion(d, "search_heavy")["bands"].append({"points": 1, "reason": "always"}),
            "overlapping bands: [-inf, inf) overlaps bands[0] [0.4, inf)",
            id="open-band-overlaps",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"][1].update(min=20_000_000),
            "criteria[1].bands[1].min: band min 20000000 must be below max 10000000",
            id="min-above-max",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale")["bands"][1].update(min=10_000_000),
            "must be below max",
            id="min-equals-max",
        ),
        pytest.param(
            lambda d: d.update(tiers={"hot": 50, "warm": 60, "cool": 30}),
            "tiers.hot: tier thresholds must satisfy hot > warm > cool (got hot 50, warm 60, cool 30)",
            id="tiers-not-descending",
        ),
        pytest.param(
            lambda d: d.update(tiers={"hot": 50, "warm": 40, "cool": 40}),
            "tiers.cool: tier thresholds must satisfy hot > warm > cool",
            id="tiers-equal",
        ),
        pytest.param(lambda d: d["tiers"].update(hot=120), "tiers.hot", id="tier-above-100"),
        pytest.param(lambda d: d["tiers"].update(cool=0), "tiers.cool", id="tier-zero"),
        pytest.param(
            lambda d: d.update(weights={"a": 1}),
            "unknown key 'weights' (allowed: version, name, description, tiers,",
            id="unknown-top-level-key",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_growth").update(weight=2),
            "criteria[14]: unknown key 'weight' (allowed: id, family,",
            id="unknown-criterion-key",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_growth")["bands"][0].update(score=2),
            "criteria[14].bands[0]: unknown key 'score' (allowed: min, max, points, reason)",
            id="unknown-band-key",
        ),
        pytest.param(
            lambda d: d["tiers"].update(lukewarm=10),
            "tiers: unknown key 'lukewarm' (allowed: hot, warm, cool)",
            id="unknown-tier",
        ),
        pytest.param(lambda d: d.pop("tiers"), "missing required key 'tiers'", id="missing-tiers"),
        pytest.param(lambda d: d.update(criteria=[]), "criteria", id="no-criteria"),
        pytest.param(
            lambda d: _criterion(d, "traffic_growth").update(technologies_any=["X"]),
            "a criterion needs exactly one of bands, technologies_any, technologies_none, industries, "
            "countries (found bands and technologies_any)",
            id="bands-and-technologies",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_growth").update(points=3),
            "criteria[14].points: `points` of a `bands` criterion goes on each band",
            id="points-on-bands-criterion",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").update(field="monthly_visits"),
            "`field` is only for `bands` criteria",
            id="field-on-technology-criterion",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").pop("reason"),
            "a technologies_any criterion needs `points` and `reason`",
            id="technologies-without-reason",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_growth").update(family="luck"),
            "Input should be 'budget', 'pain', 'timing' or 'fit' (got 'luck')",
            id="unknown-family",
        ),
        pytest.param(
            lambda d: d.update(
                criteria=[{"id": "z", "family": "fit", "technologies_any": ["X"], "points": 0, "reason": "r"}]
            ),
            "no points",
            id="zero-points",
        ),
        pytest.param(
            lambda d: _criterion(d, "industry_fit").update(industries=["51", "99"]),
            "criteria[0].industries[1]: unknown NAICS sector code '99'; known: 11, 21,",
            id="unknown-naics",
        ),
        pytest.param(
            lambda d: _criterion(d, "industry_fit").update(industries=["45"]),
            "unknown NAICS sector code '45' (did you mean '44-45'?)",
            id="naics-inside-a-range",
        ),
        pytest.param(
            lambda d: _disqualifier(d, "public_sector").update(industries=["93"]),
            "disqualifiers[2].industries[0]: unknown NAICS sector code '93'",
            id="unknown-excluded-naics",
        ),
        pytest.param(
            lambda d: _disqualifier(d, "public_sector").update(industries=["92", "51"]),
            "disqualifiers[2].industries[1]: '51' is excluded here but rewarded by criteria[0] "
            "('industry_fit')",
            id="industry-included-and-excluded",
        ),
        pytest.param(
            lambda d: _criterion(d, "core_markets").update(countries=["US", "usa"]),
            "criteria[2].countries[1]: country codes are ISO 3166-1 alpha-2 in upper case, "
            "like 'US' (got 'usa')",
            id="bad-country-code",
        ),
        pytest.param(
            lambda d: _criterion(d, "core_markets").update(countries=["US", "GB", "US"]),
            "criteria[2].countries[2]: 'US' is listed twice",
            id="country-listed-twice",
        ),
        pytest.param(
            lambda d: _disqualifier(d, "embargoed").update(countries=["US"]),
            "'US' is excluded here but rewarded by criteria[2]",
            id="country-included-and-excluded",
        ),
        pytest.param(
            lambda d: _criterion(d, "ecommerce_platform").update(reason="runs {platform}"),
            "criteria[3].reason: unknown placeholder {platform} in reason; a technologies_any entry can "
            "use {matched}",
            id="unknown-placeholder",
        ),
        pytest.param(
            lambda d: _criterion(d, "greenfield").update(reason="no {matched}"),
            "a technologies_none entry can use no placeholders",
            id="placeholder-in-absence-reason",
        ),
        pytest.param(
            lambda d: d["recent_tech_changes"].update(window_days=0),
            "recent_tech_changes.window_days: Input should be greater than 0 (got 0)",
            id="window-zero",
        ),
        pytest.param(
            lambda d: d["recent_tech_changes"].update(changes=["added", "renamed"]),
            "recent_tech_changes.changes[1]: Input should be 'added' or 'removed' (got 'renamed')",
            id="unknown-change-kind",
        ),
        pytest.param(
            lambda d: d["criteria"].append(dict(d["criteria"][0])),
            "criteria[16].id: duplicate id 'industry_fit' (also criteria[0])",
            id="duplicate-criterion-id",
        ),
        pytest.param(
            lambda d: _criterion(d, "traffic_scale").update(id="traffic scale"),
            "criteria[1].id: String should match pattern",
            id="bad-id",
        ),
        pytest.param(
            lambda d: d["disqualifiers"].append({"id": "x", "field": "visitz", "max": 1, "reason": "r"}),
            "disqualifiers[4].field: unknown field 'visitz'",
            id="disqualifier-unknown-field",
        ),
        pytest.param(
            lambda d: d["disqualifiers"].append({"id": "x", "field": "monthly_visits", "reason": "r"}),
            "disqualifiers[4]: disqualifier 'x' needs `min`, `max` or both",
            id="disqualifier-without-bounds",
        ),
        pytest.param(
            lambda d: d["disqualifiers"].append(
                {"id": "x", "field": "monthly_visits", "max": 5, "countries": ["US"], "reason": "r"}
            ),
            "disqualifiers[4].countries: a disqualifier needs exactly one of",
            id="disqualifier-two-kinds",
        ),
        pytest.param(
            lambda d: _criterion(d, "competitor_search").pop("technologies_any"),
            "criteria[4]: a criterion needs exactly one of bands, technologies_any, technologies_none, "
            "industries, countries",
            id="criterion-without-a-kind",
        ),
        pytest.param(
            lambda d: _disqualifier(d, "public_sector").pop("industries"),
            "disqualifiers[2]: a disqualifier needs exactly one of field, industries, countries",
            id="disqualifier-without-a-kind",
        ),
        pytest.param(
            lambda d: _disqualifier(d, "public_sector").update(max=3),
            "disqualifiers[2].max: `max` is only for `field` disqualifiers",
            id="bound-on-industry-disqualifier",
        ),
    ],
)
def test_invalid_model_is_a_model_error(tmp_path, change, problem):
    path = write_model(tmp_path, variant(change))
    with pytest.raises(ModelError) as exc:
        load_model(path)
    message = str(exc.value)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", message), message
    assert problem in message
