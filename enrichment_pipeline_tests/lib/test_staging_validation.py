"""Staging builders on real sandbox answers, and pandera quarantine of exactly the bad rows."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import polars as pl
import pytest
from pandera.errors import SchemaError, SchemaErrors

from enrichment_pipeline.lib import staging
from enrichment_pipeline.lib.fetching import FetchPlan, fetch_domains
from enrichment_pipeline.lib.field_rules import FIELD_BOUNDS, field_problem
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.providers.similarweb import SimilarWeb
from enrichment_pipeline.lib.sandbox import builtwith as bw
from enrichment_pipeline.lib.sandbox import similarweb as sw
from enrichment_pipeline.lib.sandbox.transport import sandbox_transport
from enrichment_pipeline.lib.settings import ProviderSettings
from enrichment_pipeline.lib.validation import (
    BUILTWITH_TECHNOLOGIES,
    PROVIDER_FIELDS,
    QUARANTINE_SCHEMA,
    SIMILARWEB_TRAFFIC,
    split_valid,
)
from enrichment_pipeline.lib.warehouse import Warehouse

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CANDIDATES = [f"company{i}.com" for i in range(200)]
KNOWN = [d for d in CANDIDATES if bw.is_known(d) and sw.has_data(d)][:5]
NO_BUILTWITH = next(d for d in CANDIDATES if not bw.is_known(d) and sw.has_data(d))
NO_SIMILARWEB = next(d for d in CANDIDATES if bw.is_known(d) and not sw.has_data(d))
DOMAINS = [*KNOWN, NO_BUILTWITH, NO_SIMILARWEB]


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> pl.DataFrame:
    """raw.provider_responses for DOMAINS from both BuiltWith APIs and SimilarWeb, via the real policy."""
    url = f"duckdb:///{tmp_path_factory.mktemp('staging') / 'w.duckdb'}"
    with Warehouse.open(url) as wh:
        # Both BuiltWith APIs share the provider name, so they are fetched in separate passes.
        for providers in ([BuiltWith("domain"), SimilarWeb()], [BuiltWith("free")]):
            active = [(p, ProviderSettings.from_env(p, "sandbox", environ={})) for p in providers]
            asyncio.run(
                fetch_domains(
                    active,
                    FetchPlan(domains=DOMAINS),
                    write=wh.write_responses,
                    mode="sandbox",
                    transport=sandbox_transport(),
                )
            )
        return wh.responses()


def test_sandbox_answers_cover_every_endpoint(answers):
    assert answers.height == len(DOMAINS) * (1 + 1 + 6)
    assert set(answers["status"]) <= {"ok", "not_found"}


def test_builtwith_technologies(answers):
    frame = staging.builtwith_technologies(answers)
    assert dict(frame.schema) == staging.TECH_SCHEMA
    assert set(frame["domain"]) == {d for d in DOMAINS if bw.is_known(d)}
    assert frame.select("domain", "technology").is_unique().all()
    assert set(frame["provider"]) == {"builtwith"}
    fetched = dict(
        answers.filter(pl.col("endpoint") == "domain_api").select("domain", "fetched_at").iter_rows()
    )
    assert all(fetched[r["domain"]] == r["observed_at"] for r in frame.iter_rows(named=True))
    assert frame["technology"].str.len_chars().min() > 0
    valid, quarantined = split_valid(frame, BUILTWITH_TECHNOLOGIES, "staging.builtwith_technologies", NOW)
    assert quarantined.is_empty()
    assert valid.equals(frame)


def test_builtwith_groups_from_the_free_api(answers):
    frame = staging.builtwith_groups(answers)
    assert dict(frame.schema) == staging.GROUP_SCHEMA
    assert set(frame["domain"]) == {d for d in DOMAINS if bw.is_known(d)}
    assert frame.select("domain", "tech_group").is_unique().all()
    assert (frame["live"] >= 0).all()
    assert frame["tech_group"].str.contains("/").any(), "no group/category rows"


def test_similarweb_traffic(answers):
    frame = staging.similarweb_traffic(answers)
    assert dict(frame.schema) == staging.TRAFFIC_SCHEMA
    assert sorted(frame["domain"]) == sorted(d for d in DOMAINS if sw.has_data(d))
    assert frame["monthly_visits"].min() > 0
    assert frame["bounce_rate"].is_between(0, 1).all()
    assert frame["search_share"].is_between(0, 1).all()
    assert frame["global_rank"].min() >= 1
    assert (frame["period_start"] <= frame["period_end"]).all()
    assert frame["visits_growth"].is_not_null().all()
    valid, quarantined = split_valid(frame, SIMILARWEB_TRAFFIC, "staging.similarweb_traffic", NOW)
    assert quarantined.is_empty()
    assert valid.equals(frame)


def test_builders_ignore_answers_that_are_not_ok(answers):
    target = KNOWN[0]
    broken = answers.with_columns(
        pl.when(pl.col("domain") == target).then(pl.lit("error")).otherwise(pl.col("status")).alias("status")
    )
    assert target not in set(staging.builtwith_technologies(broken)["domain"])
    assert target not in set(staging.builtwith_groups(broken)["domain"])
    assert target not in set(staging.similarweb_traffic(broken)["domain"])


def test_one_failed_similarweb_endpoint_leaves_nulls_not_a_crash(answers):
    target = KNOWN[0]
    dropped = answers.filter(~((pl.col("domain") == target) & (pl.col("endpoint") == "bounce_rate")))
    row = staging.similarweb_traffic(dropped).filter(pl.col("domain") == target).row(0, named=True)
    assert row["bounce_rate"] is None
    assert row["monthly_visits"] is not None


@pytest.mark.parametrize(
    "build", [staging.builtwith_technologies, staging.builtwith_groups, staging.similarweb_traffic]
)
def test_builders_on_no_answers(answers, build):
    frame = build(answers.clear())
    assert frame.is_empty()
    assert frame.columns


# --------------------------------------------------------------------------- split_valid


@pytest.fixture
def traffic(answers) -> pl.DataFrame:
    return staging.similarweb_traffic(answers).sort("domain")


def test_split_valid_quarantines_exactly_the_failing_rows(traffic):
    bad = {
        KNOWN[0]: ("bounce_rate", 1.7),
        KNOWN[1]: ("monthly_visits", -5.0),
        KNOWN[2]: ("global_rank", 0),
    }
    frame = traffic.with_columns(
        *(
            pl.when(pl.col("domain") == d)
            .then(pl.lit(v, dtype=traffic.schema[c]))
            .otherwise(pl.col(c))
            .alias(c)
            for d, (c, v) in bad.items()
        )
    )
    good, quarantined = split_valid(frame, SIMILARWEB_TRAFFIC, "staging.similarweb_traffic", NOW)

    assert dict(quarantined.schema) == QUARANTINE_SCHEMA
    assert sorted(quarantined["domain"]) == sorted(bad)
    assert set(quarantined["source"]) == {"staging.similarweb_traffic"}
    assert set(quarantined["quarantined_at"]) == {NOW}
    for row in quarantined.iter_rows(named=True):
        column, value = bad[row["domain"]]
        assert row["reason"].startswith(f"{column}: ")
        assert str(value) in row["reason"]
        stored = json.loads(row["row"])
        assert stored["domain"] == row["domain"]
        assert stored[column] == value
    assert sorted(good["domain"]) == sorted(set(traffic["domain"]) - set(bad))
    assert good.columns == traffic.columns
    assert good.equals(traffic.filter(~pl.col("domain").is_in(list(bad))))


def test_all_failed_checks_of_a_row_are_in_its_reason(traffic):
    target = traffic["domain"][0]
    frame = traffic.with_columns(
        pl.when(pl.col("domain") == target)
        .then(pl.lit(1.5))
        .otherwise(pl.col("search_share"))
        .alias("search_share"),
        pl.when(pl.col("domain") == target)
        .then(pl.lit(-1.0))
        .otherwise(pl.col("direct_share"))
        .alias("direct_share"),
    )
    _, quarantined = split_valid(frame, SIMILARWEB_TRAFFIC, "t", NOW)
    assert quarantined.height == 1
    reason = quarantined["reason"][0]
    assert "search_share" in reason
    assert "direct_share" in reason


def test_duplicate_and_malformed_keys_are_quarantined(traffic):
    first = traffic.head(1)
    frame = pl.concat([traffic, first, first.with_columns(pl.lit("Bad Domain.COM").alias("domain"))])
    good, quarantined = split_valid(frame, SIMILARWEB_TRAFFIC, "t", NOW)
    dupe = first["domain"][0]
    assert sorted(quarantined["domain"]) == sorted([dupe, dupe, "Bad Domain.COM"])
    assert dupe not in set(good["domain"])
    assert good.height == traffic.height - 1
    assert all("domain" in r for r in quarantined["reason"])


def test_builtwith_contract_catches_duplicates_and_empty_names(answers):
    techs = staging.builtwith_technologies(answers)
    first = techs.head(1)
    frame = pl.concat([techs, first, first.with_columns(pl.lit("").alias("technology"))])
    good, quarantined = split_valid(frame, BUILTWITH_TECHNOLOGIES, "staging.builtwith_technologies", NOW)
    assert quarantined.height == 3
    assert set(quarantined["domain"]) == {first["domain"][0]}
    assert any("technology" in r for r in quarantined["reason"])
    assert good.height == techs.height - 1
    # Lists and datetimes survive into the quarantined row's JSON.
    assert isinstance(json.loads(quarantined["row"][0])["categories"], list)


def test_nulls_are_allowed_where_the_contract_says_so(traffic):
    frame = traffic.with_columns(pl.lit(None, dtype=pl.Float64).alias("bounce_rate"))
    good, quarantined = split_valid(frame, SIMILARWEB_TRAFFIC, "t", NOW)
    assert quarantined.is_empty()
    assert good.height == traffic.height


def test_empty_frame_is_valid():
    frame = pl.DataFrame(schema=staging.TRAFFIC_SCHEMA)
    good, quarantined = split_valid(frame, SIMILARWEB_TRAFFIC, "t", NOW)
    assert good.is_empty()
    assert quarantined.is_empty()
    assert dict(quarantined.schema) == QUARANTINE_SCHEMA


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda f: f.drop("bounce_rate"), id="missing-column"),
        pytest.param(lambda f: f.with_columns(pl.col("global_rank").cast(pl.Float64)), id="wrong-dtype"),
    ],
)
def test_whole_frame_problems_fail_loudly(traffic, breakage):
    with pytest.raises((SchemaErrors, SchemaError)):
        split_valid(breakage(traffic), SIMILARWEB_TRAFFIC, "t", NOW)


# --------------------------------------------------------------------------- contracts from FIELD_BOUNDS


def test_every_bounded_column_of_a_table_is_checked_by_its_contract():
    tables = [
        (PROVIDER_FIELDS, staging.provider_fields_schema()),
        (SIMILARWEB_TRAFFIC, staging.TRAFFIC_SCHEMA),
    ]
    checked: set[str] = set()
    for contract, table in tables:
        bounded = {name for name in table if name in FIELD_BOUNDS}
        assert bounded <= set(contract.columns)
        for name in bounded:
            column = contract.columns[name]
            assert column.nullable
            assert column.dtype.type == table[name]
        checked |= bounded
    assert checked == set(FIELD_BOUNDS), "a bound no staging contract enforces"


@pytest.mark.parametrize(
    ("contract", "table", "column"),
    [
        (PROVIDER_FIELDS, "provider_fields", "pages_per_visit"),
        (PROVIDER_FIELDS, "provider_fields", "global_rank"),
        (SIMILARWEB_TRAFFIC, "traffic", "referral_share"),
        (SIMILARWEB_TRAFFIC, "traffic", "social_share"),
    ],
)
def test_contract_and_fetch_time_check_refuse_the_same_out_of_range_value(traffic, contract, table, column):
    low, _ = FIELD_BOUNDS[column]
    if table == "traffic":
        frame = traffic.head(2)
    else:
        frame = pl.DataFrame(
            [{"provider": "similarweb", "domain": d} for d in ("a.com", "b.com")],
            schema=staging.provider_fields_schema(),
        )
    dtype = frame.schema[column]
    frame = frame.with_columns(pl.Series(column, [low, low - 1], dtype=dtype))
    good, quarantined = split_valid(frame, contract, "t", NOW)
    assert good.height == 1
    assert quarantined.height == 1
    assert quarantined["reason"][0].startswith(f"{column}: ")
    assert field_problem({column: low}) is None
    assert field_problem({column: low - 1}) == f"{column} out of range ({low - 1})"


# --------------------------------------------------------------------------- the fit check's shortcut

_AWKWARD_VALUES = [
    None, "", "plain", "Grüße", "\ud800", "a\x00b", 0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30,
    True, False, 0.0, -0.0, 1.5, float("nan"), float("inf"), [], ["a", None], ["a", 1], [["a"]], ["\udfff"],
    {"a": 1}, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1), datetime(1, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1).date(), b"bytes", object(),
]  # fmt: skip
_TYPES = [
    pl.String(),
    pl.Int64(),
    pl.Float64(),
    pl.Boolean(),
    pl.List(pl.String()),
    pl.Datetime("us", "UTC"),
    pl.Date(),
]


def _polars_accepts(records: list[dict], schema: dict) -> bool:
    try:
        pl.DataFrame([{k: r.get(k) for k in schema} for r in records], schema=schema)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("dtype", _TYPES, ids=str)
def test_the_fit_check_agrees_with_polars_on_awkward_values(dtype) -> None:
    """The check skips polars for plainly typed values; its verdict must still be polars' own."""
    for value in _AWKWARD_VALUES:
        for records in ([{"v": value}], [{"v": None}, {"v": value}], [{"other": 1}, {"v": value}]):
            schema = {"v": dtype}
            try:
                staging._fits(records, schema)
                verdict = True
            except Exception:
                verdict = False
            assert verdict == _polars_accepts(records, schema), (dtype, value, records)


def test_the_fit_check_shortcut_skips_polars_only_for_plain_values(monkeypatch) -> None:
    built: list[object] = []
    real = pl.DataFrame
    monkeypatch.setattr(staging.pl, "DataFrame", lambda *a, **k: built.append(a) or real(*a, **k))
    schema = {
        "name": pl.String(),
        "n": pl.Int64(),
        "when": pl.Datetime("us", "UTC"),
        "tags": pl.List(pl.String()),
    }
    staging._fits([{"name": "acme", "n": 3, "when": NOW, "tags": ["a"]}, {"name": None}], schema)
    assert built == []
    staging._fits({"name": "Grüße", "n": 3}, schema)  # non-ASCII: polars tells
    assert len(built) == 1
    with pytest.raises(pl.exceptions.PolarsError):
        staging._fits({"n": 2**64}, schema)
    with pytest.raises(AttributeError):  # a record that is not a mapping is never waved through
        staging._fits([["acme", 3]], schema)  # type: ignore[list-item]
