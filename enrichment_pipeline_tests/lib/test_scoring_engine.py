"""Vectorized scoring of profiles against a model: worked examples, technology matching on the
JSON stack, recent technology changes, and property tests on the bundled model and on randomly
generated models."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.scoring import engine
from enrichment_pipeline.lib.scoring.engine import (
    SCORE_SCHEMA,
    SIGNAL_FAMILIES,
    TIERS,
    recent_tech_change_counts,
    score_profiles,
    with_recent_tech_changes,
)
from enrichment_pipeline.lib.scoring.loader import load_model
from enrichment_pipeline.lib.scoring.model import FAMILIES, RECENT_TECH_CHANGES, IcpModel, TechChangeWindow
from enrichment_pipeline.lib.tech_history import CHANGES_SCHEMA
from enrichment_pipeline.lib.units import NAICS_SECTORS
from enrichment_pipeline_tests.lib.icp_model_files import MODEL, variant, write_model

SCORED_AT = datetime(2026, 1, 1, tzinfo=UTC)

COMPETITORS = ["Algolia", "Coveo", "Bloomreach", "Constructor.io", "Klevu", "Searchspring"]
COMMERCE = ["Shopify Plus", "Salesforce Commerce Cloud", "Adobe Commerce", "Magento"]
SELF_MANAGED = ["Elasticsearch", "Solr"]
TECHS = [*COMPETITORS, *COMMERCE, *SELF_MANAGED, "Shopify", "WordPress", "Google Analytics"]
COUNTRIES = ["US", "GB", "DE", "NO", "BR", "JP", "IN", "RU", "IR"]
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def profiles(*rows: dict[str, Any]) -> pl.DataFrame:
    """A profiles frame: `technologies` may be a list; unnamed columns are null; the
    `recent_tech_changes` column is added (as the scoring asset does)."""
    schema = {**PROFILE_SCHEMA, RECENT_TECH_CHANGES: pl.Int64()}
    records = []
    for i, row in enumerate(rows):
        record = dict.fromkeys(schema)
        record["domain"] = f"d{i}.example"
        record.update(row)
        if isinstance(record["technologies"], list):
            record["technologies"] = json.dumps(record["technologies"])
        records.append(record)
    return pl.DataFrame(records, schema=schema)


def score(*rows: dict[str, Any], model: IcpModel = MODEL) -> list[dict[str, Any]]:
    return score_profiles(profiles(*rows), model, SCORED_AT).to_dicts()


def expected_tier(value: float, model: IcpModel = MODEL) -> str:
    t = model.tiers
    return "hot" if value >= t.hot else "warm" if value >= t.warm else "cool" if value >= t.cool else "cold"


# --------------------------------------------------------------------------- scoring examples

PERFECT: dict[str, Any] = {
    "industry_naics": "44-45",
    "industry_label": "Retail Trade",
    "country": "US",
    "monthly_visits": 20_000_000.0,
    "technologies": ["Shopify Plus", "Elasticsearch", "Google Analytics"],
    "revenue_usd": 2.5e9,
    "employees": 4000,
    "operating_margin": 0.2,
    "bounce_rate": 0.6,
    "pages_per_visit": 2.0,
    "search_share": 0.5,
    RECENT_TECH_CHANGES: 6,
    "visits_growth": 0.3,
    "revenue_growth": 0.25,
}


def test_a_perfect_greenfield_fit_is_hot_with_every_reason():
    [row] = score(PERFECT)
    breakdown = json.loads(row["score_breakdown"])
    # Everything but the competitor points, which exclude greenfield: 100 - 4.
    assert breakdown == {c.id: (0 if c.id == "competitor_search" else c.max_points) for c in MODEL.criteria}
    assert row["icp_score"] == 96.0
    assert row["icp_tier"] == "hot"
    assert row["disqualified"] is False
    assert row["disqualification_reason"] is None
    assert json.loads(row["score_reasons"]) == [
        "core vertical: Retail Trade",
        "very large audience (20000000 visits/month)",
        "in a core market (US)",
        "runs Shopify Plus: a commerce platform we integrate with",
        "revenue $2.5B",
        "4000 employees",
        "healthy operating margin (20%)",
        "no hosted site-search vendor detected: greenfield",
        "runs self-managed Elasticsearch: search is a cost centre",
        "high bounce rate (60%)",
        "few pages per visit (2.0)",
        "50% of desktop traffic arrives from search engines",
        "6 technology changes in the last 90 days",
        "traffic growing fast (+30% over the period)",
        "revenue growing fast (+25% a year)",
    ]
    assert row["budget_signal"] == row["pain_signal"] == row["timing_signal"] == 100.0
    assert row["model_version"] == MODEL.version
    assert row["model_hash"] == MODEL.file_hash


def test_a_competitor_takes_the_place_of_greenfield():
    [green, rival] = score(PERFECT, {**PERFECT, "technologies": [*PERFECT["technologies"], "Algolia"]})
    g, r = json.loads(green["score_breakdown"]), json.loads(rival["score_breakdown"])
    assert (g["greenfield"], g["competitor_search"]) == (8, 0)
    assert (r["greenfield"], r["competitor_search"]) == (0, 4)
    assert rival["icp_score"] == 92.0
    assert "uses Algolia: displacement opportunity" in json.loads(rival["score_reasons"])
    assert rival["pain_signal"] == pytest.approx(100 * 18 / 26, abs=0.05)


def test_greenfield_needs_a_known_stack():
    unknown, empty, plain = score({}, {"technologies": []}, {"technologies": ["WordPress"]})
    assert json.loads(unknown["score_breakdown"])["greenfield"] == 0
    assert json.loads(empty["score_breakdown"])["greenfield"] == 8
    assert json.loads(plain["score_breakdown"])["greenfield"] == 8


def test_unknown_everything_scores_zero_but_is_not_disqualified():
    [row] = score({})
    assert row["icp_score"] == 0.0
    assert row["icp_tier"] == "cold"
    assert row["disqualified"] is False
    assert json.loads(row["score_reasons"]) == []
    assert row["budget_signal"] == row["pain_signal"] == row["timing_signal"] == 0.0


def test_too_little_traffic_disqualifies():
    [row] = score({"monthly_visits": 1200.0, "technologies": ["Algolia", "Shopify Plus"], "bounce_rate": 0.9})
    assert row["disqualified"] is True
    assert row["icp_score"] == 0.0
    assert row["icp_tier"] == "cold"
    reasons = json.loads(row["score_reasons"])
    assert reasons[0] == "too little traffic to need site search (1200 visits/month)"
    assert row["disqualification_reason"] == reasons[0]
    # The breakdown still shows what the company would have earned.
    assert json.loads(row["score_breakdown"])["competitor_search"] == 4


def test_excluded_industry_and_country_disqualify_and_every_reason_is_kept():
    [row] = score(
        {
            **PERFECT,
            "industry_naics": "92",
            "industry_label": "Public Administration",
            "country": "RU",
            "employees": 3,
        }
    )
    assert (row["disqualified"], row["icp_score"], row["icp_tier"]) == (True, 0.0, "cold")
    assert row["disqualification_reason"] == (
        "too small a team for a sales-led deal (3 employees); "
        "public administration (Public Administration): procurement we do not sell through; "
        "company based in RU: we cannot sell there (sanctions)"
    )
    assert json.loads(row["score_reasons"])[:3] == row["disqualification_reason"].split("; ")


def test_industry_and_country_points():
    rows = score(
        {"industry_naics": "51", "industry_label": "Information", "country": "NO"},
        {"industry_naics": "52"},  # no label: the code is shown
        {"industry_naics": "62", "industry_label": "Health Care and Social Assistance", "country": "BR"},
    )
    info, finance, health = (json.loads(r["score_breakdown"]) for r in rows)
    assert (info["industry_fit"], info["core_markets"]) == (8, 4)
    assert json.loads(rows[0]["score_reasons"]) == ["core vertical: Information", "in a core market (NO)"]
    assert json.loads(rows[1]["score_reasons"]) == ["core vertical: 52"]
    assert (finance["industry_fit"], health["industry_fit"], health["core_markets"]) == (8, 0, 0)


@pytest.mark.parametrize(
    ("revenue", "points", "text"),
    [
        (4_999_999.0, 0, None),
        (5_000_000.0, 2, "revenue $5M"),
        (42_300_000.0, 6, "revenue $42.3M"),
        (999_999_999.0, 10, "revenue $1000M"),
        (1e9, 12, "revenue $1B"),
        (3.75e10, 12, "revenue $37.5B"),
    ],
)
def test_revenue_bands_and_money_format(revenue, points, text):
    [row] = score({"revenue_usd": revenue})
    assert json.loads(row["score_breakdown"])["revenue_scale"] == points
    assert json.loads(row["score_reasons"]) == ([text] if text else [])


@pytest.mark.parametrize(
    ("visits", "points"),
    [(99_999.0, 0), (100_000.0, 4), (999_999.9, 4), (1_000_000.0, 8), (10_000_000.0, 10), (1e10, 10)],
)
def test_bands_include_min_and_exclude_max(visits, points):
    [row] = score({"monthly_visits": visits})
    assert json.loads(row["score_breakdown"])["traffic_scale"] == points


def test_nan_is_unknown_not_the_top_band():
    """polars orders NaN above every number; scoring must treat it as missing."""
    nan = float("nan")
    [row] = score({"monthly_visits": nan, "bounce_rate": nan, "pages_per_visit": nan, "revenue_usd": nan})
    assert json.loads(row["score_reasons"]) == []
    assert row["icp_score"] == 0.0
    assert row["disqualified"] is False


def test_extreme_values_score_without_error():
    inf = float("inf")
    [row] = score({"monthly_visits": inf, "revenue_usd": 1e30, "employees": 2**62, "visits_growth": -inf})
    assert 0 <= row["icp_score"] <= 100
    assert "very large audience (? visits/month)" in json.loads(row["score_reasons"])


def test_negative_margin_and_shrinking_traffic_earn_nothing():
    [row] = score({"operating_margin": -0.12, "visits_growth": -0.3, "revenue_growth": -0.1})
    breakdown = json.loads(row["score_breakdown"])
    assert breakdown["profitable"] == breakdown["traffic_growth"] == breakdown["revenue_growth"] == 0


def test_score_columns_match_the_schema():
    frame = score_profiles(profiles({}, {"monthly_visits": 5e5}), MODEL, SCORED_AT)
    assert dict(frame.schema) == SCORE_SCHEMA
    assert frame["scored_at"].to_list() == [SCORED_AT, SCORED_AT]


def test_empty_profiles_give_empty_scores():
    frame = score_profiles(profiles(), MODEL, SCORED_AT)
    assert frame.is_empty()
    assert dict(frame.schema) == SCORE_SCHEMA


def test_profiles_without_recent_changes_column_score_it_as_unknown():
    frame = profiles(PERFECT).drop(RECENT_TECH_CHANGES)
    [row] = score_profiles(frame, MODEL, SCORED_AT).to_dicts()
    assert json.loads(row["score_breakdown"])["stack_in_motion"] == 0
    assert row["icp_score"] == 86.0


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


def test_scoring_has_no_per_row_python():
    """Every step is a polars expression: no map_elements / apply / map_batches / row loops."""
    source = inspect.getsource(engine)
    tree = ast.parse(source)
    banned = {"map_elements", "apply", "map_batches", "map_rows", "iter_rows", "rows", "to_dicts", "to_list"}
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & banned
    assert not used, used


# --------------------------------------------------------------------------- technology matching

TRICKY = ["Shopify", "Shopify Plus", "Café Search", "Tech", 'Quote"Tech', "Back\\slash", "A,B", "[x]", "plus"]


def _tech_model(**criterion: Any) -> IcpModel:
    return IcpModel.model_validate(
        {
            "version": "t",
            "name": "techs",
            "tiers": {"hot": 70, "warm": 50, "cool": 30},
            "criteria": [{"id": "c", "family": "fit", "points": 10, **criterion}],
        }
    )


def _stack_json(stack: list[str] | None, ascii_only: bool) -> str | None:
    return None if stack is None else json.dumps(stack, ensure_ascii=ascii_only)


def test_technology_names_match_exactly_not_as_substrings():
    model = _tech_model(technologies_any=["Shopify"], reason="runs {matched}")
    plus, plain, both = score(
        {"technologies": ["Shopify Plus"]},
        {"technologies": ["Shopify"]},
        {"technologies": ["Shopify Plus", "Shopify"]},
        model=model,
    )
    assert plus["icp_score"] == 0.0
    assert plain["icp_score"] == both["icp_score"] == 100.0
    assert json.loads(both["score_reasons"]) == ["runs Shopify"]


@pytest.mark.parametrize("ascii_only", [True, False])
def test_names_with_quotes_and_accents_match_in_either_json_spelling(ascii_only):
    model = _tech_model(technologies_any=["Café Search", 'Quote"Tech'], reason="runs {matched}")
    stack = _stack_json(["WordPress", 'Quote"Tech', "Café Search"], ascii_only)
    frame = profiles({}).with_columns(pl.lit(stack).alias("technologies"))
    [row] = score_profiles(frame, model, SCORED_AT).to_dicts()
    assert json.loads(row["score_reasons"]) == ['runs Quote"Tech, Café Search']


def test_reasons_are_valid_json_whatever_the_provider_text():
    label = 'Retail "Trade"\n\\ and more'
    [row] = score({"industry_naics": "44-45", "industry_label": label, "country": "US"})
    assert json.loads(row["score_reasons"])[0] == f"core vertical: {label}"


@PROPERTY
@given(
    st.none() | st.lists(st.sampled_from(TRICKY), unique=True, max_size=6),
    st.lists(st.sampled_from(TRICKY), unique=True, min_size=1, max_size=4),
    st.booleans(),
)
def test_matching_the_json_text_equals_matching_the_decoded_list(stack, listed, ascii_only):
    frame = profiles({}).with_columns(
        pl.lit(_stack_json(stack, ascii_only), dtype=pl.String).alias("technologies")
    )
    any_model = _tech_model(technologies_any=listed, reason="runs {matched}")
    none_model = _tech_model(technologies_none=listed, reason="none of them")
    [present] = score_profiles(frame, any_model, SCORED_AT).to_dicts()
    [absent] = score_profiles(frame, none_model, SCORED_AT).to_dicts()
    found = [t for t in stack or [] if t in listed]
    assert present["icp_score"] == (100.0 if found else 0.0)
    assert json.loads(present["score_reasons"]) == ([f"runs {', '.join(found)}"] if found else [])
    assert absent["icp_score"] == (100.0 if stack is not None and not found else 0.0)


# --------------------------------------------------------------------------- recent technology changes


def _changes(*rows: tuple[str, str, str, datetime]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"domain": d, "technology": t, "change": c, "seen_at": at, "provider": "builtwith"}
            for d, t, c, at in rows
        ],
        schema=CHANGES_SCHEMA,
    )


def test_recent_tech_changes_counts_the_window_and_the_kinds(tmp_path):
    day = timedelta(days=1)
    changes = _changes(
        ("a.com", "Algolia", "added", SCORED_AT - 1 * day),
        ("a.com", "Klevu", "removed", SCORED_AT - 89 * day),
        ("a.com", "Solr", "removed", SCORED_AT - 91 * day),  # outside the 90 days
        ("b.com", "Shopify", "added", SCORED_AT - 200 * day),
        ("c.com", "Magento", "added", SCORED_AT - 3 * day),
    )
    frame = profiles(
        {"domain": "a.com", "technologies": ["Algolia"]},
        {"domain": "b.com", "technologies": ["Shopify"]},
        {"domain": "c.com"},  # stack unknown today, but a change was seen
        {"domain": "d.com", "technologies": []},  # known stack, nothing changed
        {"domain": "e.com"},  # nothing known at all
    ).drop(RECENT_TECH_CHANGES)
    joined = with_recent_tech_changes(frame, changes, MODEL, SCORED_AT)
    assert dict(zip(joined["domain"], joined[RECENT_TECH_CHANGES], strict=True)) == {
        "a.com": 2,
        "b.com": 0,
        "c.com": 1,
        "d.com": 0,
        "e.com": None,
    }
    only_added = load_model(
        write_model(tmp_path, variant(lambda d: d["recent_tech_changes"].update(changes=["added"])))
    )
    counts = recent_tech_change_counts(changes, only_added, SCORED_AT)
    assert dict(counts.sort("domain").iter_rows()) == {"a.com": 1, "c.com": 1}
    no_table = with_recent_tech_changes(frame, None, MODEL, SCORED_AT)
    assert no_table[RECENT_TECH_CHANGES].null_count() == frame.height


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.com", "b.com", "c.com"]),
            st.sampled_from(["added", "removed"]),
            st.integers(-400, 5),
        ),
        max_size=30,
    ),
    st.integers(1, 365),
    st.sampled_from([["added"], ["removed"], ["added", "removed"]]),
)
def test_recent_tech_changes_match_a_plain_count(events, window, kinds):
    model = MODEL.model_copy(
        update={"recent_tech_changes": TechChangeWindow(window_days=window, changes=kinds)}
    )
    changes = _changes(
        *((d, f"t{i}", c, SCORED_AT + timedelta(days=off)) for i, (d, c, off) in enumerate(events))
    )
    counts = dict(recent_tech_change_counts(changes, model, SCORED_AT).iter_rows())
    since = SCORED_AT - timedelta(days=window)
    expected: dict[str, int] = {}
    for d, c, off in events:
        if c in kinds and SCORED_AT + timedelta(days=off) > since:
            expected[d] = expected.get(d, 0) + 1
    assert counts == expected


# --------------------------------------------------------------------------- properties: bundled model

_maybe = st.none().__or__
profile_rows = st.fixed_dictionaries(
    {
        "monthly_visits": _maybe(st.floats(0, 5e9, allow_nan=False)),
        "bounce_rate": _maybe(st.floats(0, 1, allow_nan=False)),
        "pages_per_visit": _maybe(st.floats(0, 60, allow_nan=False)),
        "search_share": _maybe(st.floats(0, 1, allow_nan=False)),
        "visits_growth": _maybe(st.floats(-1, 10, allow_nan=False)),
        "revenue_usd": _maybe(st.floats(0, 1e12, allow_nan=False)),
        "revenue_growth": _maybe(st.floats(-1, 5, allow_nan=False)),
        "operating_margin": _maybe(st.floats(-2, 1, allow_nan=False)),
        "employees": _maybe(st.integers(0, 500_000)),
        RECENT_TECH_CHANGES: _maybe(st.integers(0, 60)),
        "industry_naics": _maybe(st.sampled_from(list(NAICS_SECTORS))),
        "country": _maybe(st.sampled_from(COUNTRIES)),
        "technologies": _maybe(st.lists(st.sampled_from(TECHS), unique=True, max_size=8)),
    }
)


def _check_row(row: dict[str, Any], model: IcpModel) -> None:
    assert 0.0 <= row["icp_score"] <= 100.0
    assert row["icp_tier"] in TIERS
    assert row["icp_tier"] == expected_tier(row["icp_score"], model)
    breakdown = json.loads(row["score_breakdown"])
    assert list(breakdown) == [c.id for c in model.criteria]
    reasons = json.loads(row["score_reasons"])
    assert isinstance(reasons, list) and all(isinstance(r, str) and r for r in reasons)
    for c in model.criteria:
        assert 0 <= breakdown[c.id] <= c.max_points
    for family in SIGNAL_FAMILIES:
        signal = row[f"{family}_signal"]
        assert signal is None or 0.0 <= signal <= 100.0
    if row["disqualified"]:
        assert row["icp_score"] == 0.0
        assert row["icp_tier"] == "cold"
        assert row["disqualification_reason"]
        assert json.loads(row["score_reasons"])[0] == row["disqualification_reason"].split("; ")[0]
    else:
        assert row["disqualification_reason"] is None
        earned = sum(breakdown.values())
        # Rounded to one decimal from the engine's own float sum: within half a step of the exact
        # share (comparing with Python's round() fails on .x5 boundaries where the sums differ).
        exact = min(100.0, earned / model.max_points * 100)
        assert abs(row["icp_score"] - exact) <= 0.05 + 1e-9


@PROPERTY
@given(st.lists(profile_rows, min_size=1, max_size=15))
def test_scores_are_bounded_tiers_follow_thresholds_and_disqualified_is_cold(rows):
    scored = score(*rows)
    assert len(scored) == len(rows)
    for row in scored:
        _check_row(row, MODEL)


@PROPERTY
@given(profile_rows)
def test_scoring_one_row_does_not_depend_on_the_others(row):
    alone = score(row)[0]
    together = score({}, row, {"monthly_visits": 1.0, "technologies": TECHS, "country": "IR"})[1]
    assert {k: v for k, v in alone.items() if k != "domain"} == {
        k: v for k, v in together.items() if k != "domain"
    }


def _safe_direction(model: IcpModel, field: str) -> str | None:
    """ "up" when raising `field` can only help (every band criterion on it rewards higher
    values, every disqualifier on it cuts off low values), "down" for the mirror image."""
    ok = {"up", "down"}
    for c in model.criteria:
        if c.field != field or c.bands is None:
            continue
        ordered = sorted(c.bands, key=lambda b: float("-inf") if b.min is None else b.min)
        steps: list[float] = []
        cursor = float("-inf")
        for b in ordered:
            low = float("-inf") if b.min is None else b.min
            if low > cursor:
                steps.append(0.0)  # a gap between bands earns nothing
            steps.append(b.points)
            cursor = float("inf") if b.max is None else b.max
        if cursor < float("inf"):
            steps.append(0.0)
        if any(a > b for a, b in itertools.pairwise(steps)):
            ok.discard("up")
        if any(a < b for a, b in itertools.pairwise(steps)):
            ok.discard("down")
    for d in model.disqualifiers:
        if d.field == field:
            if d.min is not None:
                ok.discard("up")
            if d.max is not None:
                ok.discard("down")
    return "up" if "up" in ok else "down" if "down" in ok else None


BAND_FIELDS = sorted({c.field for c in MODEL.criteria if c.bands is not None and c.field})


def test_every_band_field_of_the_bundled_model_is_monotone():
    """So the next property covers every band criterion (shallow_sessions rewards FEW pages)."""
    directions = {f: _safe_direction(MODEL, f) for f in BAND_FIELDS}
    assert None not in directions.values(), directions
    assert directions["pages_per_visit"] == "down"
    assert directions["monthly_visits"] == "up"


def _moved(value: float | int, direction: str, amount: float) -> float | int:
    step = abs(value) * amount * 10 + amount * 1e7 if abs(value) > 1000 else amount * 10
    moved = value + step if direction == "up" else value - step
    return round(moved) if isinstance(value, int) else moved


@PROPERTY
@given(profile_rows, st.sampled_from(BAND_FIELDS), st.floats(0, 1, allow_nan=False))
def test_a_better_input_never_lowers_the_score(row, field, amount):
    value = row.get(field)
    assume(value is not None)
    better = {**row, field: _moved(value, _safe_direction(MODEL, field) or "up", amount)}
    before, after = score(row, better)
    assert after["icp_score"] >= before["icp_score"], (field, row, better)
    assert not (after["disqualified"] and not before["disqualified"])
    assert TIERS.index(after["icp_tier"]) <= TIERS.index(before["icp_tier"])


NONE_LISTED = {t for c in MODEL.criteria for t in c.technologies_none or ()}
ANY_LISTED = {t for c in MODEL.criteria for t in c.technologies_any or ()}


@PROPERTY
@given(profile_rows, st.sampled_from(sorted(set(TECHS) - NONE_LISTED)))
def test_adding_a_technology_no_absence_criterion_lists_never_lowers_the_score(row, tech):
    current = row["technologies"] or []
    before, after = score(row, {**row, "technologies": sorted({*current, tech})})
    assert after["icp_score"] >= before["icp_score"]


@PROPERTY
@given(profile_rows, st.sampled_from(COMPETITORS))
def test_a_competitor_swaps_greenfield_for_displacement(row, competitor):
    current = row["technologies"] or []
    before, after = score(row, {**row, "technologies": sorted({*current, competitor})})
    b, a = json.loads(before["score_breakdown"]), json.loads(after["score_breakdown"])
    assert (a["competitor_search"], a["greenfield"]) == (4, 0)
    # Greenfield (8) is worth more than displacement (4): only a greenfield site loses.
    if not before["disqualified"]:
        assert (after["icp_score"] < before["icp_score"]) == (b["greenfield"] == 8)


@PROPERTY
@given(profile_rows, st.data())
def test_removing_a_technology_never_lowers_the_absence_points(row, data):
    current = row["technologies"] or []
    assume(current)
    gone = data.draw(st.sampled_from(current))
    before, after = score(row, {**row, "technologies": [t for t in current if t != gone]})
    b, a = json.loads(before["score_breakdown"]), json.loads(after["score_breakdown"])
    for c in MODEL.criteria:
        if c.technologies_none is not None:
            assert a[c.id] >= b[c.id]
    if gone not in ANY_LISTED:
        assert after["icp_score"] >= before["icp_score"]


@PROPERTY
@given(profile_rows, st.sampled_from(["44-45", "51", "52"]), st.sampled_from(["US", "GB", "NO"]))
def test_moving_into_a_rewarded_industry_or_market_never_lowers_the_score(row, sector, country):
    before, after, both = score(row, {**row, "industry_naics": sector}, {**row, "country": country})
    assert after["icp_score"] >= before["icp_score"]
    assert both["icp_score"] >= before["icp_score"]


@PROPERTY
@given(profile_rows, st.sampled_from(["92-industry", "RU", "IR", "few-visits", "few-employees"]))
def test_a_disqualified_company_is_never_hot(row, why):
    change = {
        "92-industry": {"industry_naics": "92"},
        "RU": {"country": "RU"},
        "IR": {"country": "IR"},
        "few-visits": {"monthly_visits": 100.0},
        "few-employees": {"employees": 2},
    }[why]
    [row_after] = score({**row, **change})
    assert row_after["disqualified"] is True
    assert (row_after["icp_score"], row_after["icp_tier"]) == (0.0, "cold")


# --------------------------------------------------------------------------- properties: random models

RANDOM_FIELDS = ["monthly_visits", "bounce_rate", "employees", RECENT_TECH_CHANGES]
SECTORS = list(NAICS_SECTORS)


@st.composite
def monotone_bands(draw, field: str) -> dict[str, Any]:
    cuts = sorted(draw(st.sets(st.integers(0, 100), min_size=1, max_size=4)))
    scale = {"monthly_visits": 1e5, "bounce_rate": 0.01, "employees": 50, RECENT_TECH_CHANGES: 0.2}[field]
    cuts_f = [c * scale for c in cuts]
    points = sorted(draw(st.lists(st.integers(0, 20), min_size=len(cuts_f), max_size=len(cuts_f))))
    up = draw(st.booleans())
    bands = []
    if up:  # [c0, c1) -> p0 <= [c1, c2) -> p1 ... last open upwards
        for i, low in enumerate(cuts_f):
            high = cuts_f[i + 1] if i + 1 < len(cuts_f) else None
            bands.append({"min": low, "max": high, "points": points[i], "reason": f"{field} {{value}}"})
    else:  # (-inf, c0) -> pn >= [c0, c1) -> ... ; above the last cut earns nothing
        lows = [None, *cuts_f[:-1]]
        for i, (low, high) in enumerate(zip(lows, cuts_f, strict=True)):
            bands.append({"min": low, "max": high, "points": points[-1 - i], "reason": f"{field} {{value}}"})
    return {"field": field, "bands": [{k: v for k, v in b.items() if v is not None} for b in bands]}


@st.composite
def random_models(draw) -> IcpModel:
    criteria: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 7))):
        kind = draw(
            st.sampled_from(["bands", "technologies_any", "technologies_none", "industries", "countries"])
        )
        base = {"id": f"c{i}", "family": draw(st.sampled_from(FAMILIES))}
        if kind == "bands":
            base.update(draw(monotone_bands(draw(st.sampled_from(RANDOM_FIELDS)))))
        else:
            pool = {"industries": SECTORS, "countries": COUNTRIES}.get(kind, TECHS)
            values = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1, max_size=5))
            reason = {"technologies_any": "runs {matched}", "technologies_none": "none"}.get(kind, "{value}")
            base.update({kind: values, "points": draw(st.integers(0, 20)), "reason": reason})
        criteria.append(base)
    rewarded_sectors = {s for c in criteria for s in c.get("industries", ())}
    rewarded_countries = {s for c in criteria for s in c.get("countries", ())}
    disqualifiers: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["field", "industries", "countries"]))
        if kind == "field":
            bound = draw(st.sampled_from(["min", "max"]))
            dq = {"field": draw(st.sampled_from(RANDOM_FIELDS)), bound: float(draw(st.integers(1, 50)))}
        else:
            pool = (
                sorted(set(SECTORS) - rewarded_sectors)
                if kind == "industries"
                else sorted(set(COUNTRIES) - rewarded_countries)
            )
            assume(pool)
            dq = {kind: draw(st.lists(st.sampled_from(pool), unique=True, min_size=1, max_size=3))}
        disqualifiers.append({"id": f"d{i}", **dq, "reason": "out"})
    hot, warm, cool = sorted(draw(st.sets(st.integers(1, 100), min_size=3, max_size=3)), reverse=True)
    data = {
        "version": "r",
        "name": "random",
        "tiers": {"hot": hot, "warm": warm, "cool": cool},
        "criteria": criteria,
        "disqualifiers": disqualifiers,
    }
    assume(sum(max([b["points"] for b in c.get("bands", [])] or [c.get("points", 0)]) for c in criteria) > 0)
    return IcpModel.model_validate(data)


@PROPERTY
@given(random_models(), st.lists(profile_rows, min_size=1, max_size=8))
def test_random_models_bound_scores_and_keep_disqualified_cold(model, rows):
    for row in score(*rows, model=model):
        _check_row(row, model)


@PROPERTY
@given(random_models(), profile_rows, st.sampled_from(RANDOM_FIELDS), st.floats(0, 1, allow_nan=False))
def test_random_models_reward_the_direction_their_bands_reward(model, row, field, amount):
    direction = _safe_direction(model, field)
    value = row.get(field)
    assume(direction is not None and value is not None)
    before, after = score(row, {**row, field: _moved(value, direction, amount)}, model=model)
    assert after["icp_score"] >= before["icp_score"]


@PROPERTY
@given(random_models(), profile_rows, st.sampled_from(TECHS))
def test_random_models_adding_a_technology(model, row, tech):
    """Adding a technology never lowers the score unless an absence criterion lists it; the
    absence points themselves never rise."""
    current = row["technologies"] or []
    before, after = score(row, {**row, "technologies": sorted({*current, tech})}, model=model)
    b, a = json.loads(before["score_breakdown"]), json.loads(after["score_breakdown"])
    for c in model.criteria:
        if c.technologies_any is not None:
            assert a[c.id] >= b[c.id]
        if c.technologies_none is not None and row["technologies"] is not None:
            assert a[c.id] <= b[c.id]
    if not any(tech in (c.technologies_none or ()) for c in model.criteria):
        assert after["icp_score"] >= before["icp_score"]


@PROPERTY
@given(random_models(), profile_rows, st.data())
def test_random_models_removing_a_technology(model, row, data):
    """Removing a technology never lowers the absence points; it never lowers the score
    unless a presence criterion lists it."""
    current = row["technologies"] or []
    assume(current)
    gone = data.draw(st.sampled_from(current))
    before, after = score(row, {**row, "technologies": [t for t in current if t != gone]}, model=model)
    b, a = json.loads(before["score_breakdown"]), json.loads(after["score_breakdown"])
    for c in model.criteria:
        if c.technologies_none is not None:
            assert a[c.id] >= b[c.id]
    if not any(gone in (c.technologies_any or ()) for c in model.criteria):
        assert after["icp_score"] >= before["icp_score"]
