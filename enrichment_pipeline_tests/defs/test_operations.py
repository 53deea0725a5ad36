"""Production operation: the intake sensor, the stale re-enrich schedule, marts freshness."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from enrichment_pipeline.definitions import defs
from enrichment_pipeline.defs.operations import freshness
from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, RANGE_END, RANGE_START
from enrichment_pipeline.defs.operations.schedules import busy_keys, stale_reenrich_schedule
from enrichment_pipeline.defs.operations.sensors import domain_intake_sensor
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.resources import ProvidersResource, WarehouseResource
from enrichment_pipeline.lib.providers.similarweb import ENDPOINTS as SIMILARWEB_ENDPOINTS
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline_tests.conftest import response_row
from enrichment_pipeline_tests.defs.helpers import read_table, sandbox_domains

PARTITIONS = domains_partitions.name
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def no_operation_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("APOLLO_", "CLEARBIT_", "EXPLORIUM_", "YAHOO_")) or name in (
            "DOMAIN_DROP_DIR",
            "DAGSTER_HOME",
            "WATERFALL_CONFIG",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    monkeypatch.setenv("DOMAIN_DROP_DIR", str(path))
    return path


def tick(instance: dg.DagsterInstance, warehouse_url: str, cursor: str | None) -> dg.SensorResult:
    """One sensor evaluation, then what the daemon does with its partition requests."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": WarehouseResource(url=warehouse_url)}
    )
    result = domain_intake_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def request_rows(warehouse_url: str) -> dict[str, tuple]:
    with Warehouse.open(warehouse_url) as wh:
        frame = wh.query(
            "SELECT domain, status, reason, partition_key, processed_at "
            "FROM raw.domain_requests ORDER BY request_id"
        )
    return {d: (s, r, k, p) for d, s, r, k, p in frame.iter_rows()}


def insert_requests(warehouse_url: str, *domains: str) -> None:
    with Warehouse.open(warehouse_url) as wh:
        for d in domains:
            wh.query("INSERT INTO raw.domain_requests (domain, requested_by) VALUES (?, 'test')", [d])


# --------------------------------------------------------------------------- intake sensor


def test_drop_files_are_registered_once_and_junk_never(instance, warehouse_url, inbox: Path) -> None:
    (inbox / "leads.csv").write_text("website,name\nhttps://www.Acme.com/about,A\nlocalhost,B\nfoo.com,C\n")
    (inbox / "more.txt").write_text("bar.org\n# a comment\nnot a domain\nFOO.com\n")
    (inbox / "notes.md").write_text("ignored.com\n")

    first = tick(instance, warehouse_url, None)  # new files: read once unchanged for a tick
    assert not first.run_requests and not first.dynamic_partitions_requests
    assert set(json.loads(first.cursor)["files"]) == {"leads.csv", "more.txt"}

    second = tick(instance, warehouse_url, first.cursor)
    (request,) = second.run_requests
    (add,) = second.dynamic_partitions_requests
    assert list(add.partition_keys) == ["acme.com", "foo.com", "bar.org"]
    assert request.tags[RANGE_START] == "acme.com" and request.tags[RANGE_END] == "bar.org"
    assert request.tags["enrichment/refused_entries"] == "2"
    assert request.run_config == {"ops": {"raw__provider_responses": {"config": {"force": False}}}}
    assert instance.get_dynamic_partitions(PARTITIONS) == ["acme.com", "foo.com", "bar.org"]
    assert request.run_key

    third = tick(instance, warehouse_url, second.cursor)  # registered: settle, nothing to run
    assert not third.run_requests and not third.dynamic_partitions_requests
    assert json.loads(third.cursor) == {"files": {}}
    assert sorted(p.name for p in inbox.iterdir()) == ["notes.md", "processed"]
    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    assert len(processed) == 4 and all(
        n.endswith(("leads.csv", "more.txt", ".rejected.txt")) for n in processed
    )
    reports = "".join(p.read_text() for p in (inbox / "processed").glob("*.rejected.txt"))
    assert "localhost\t" in reports and "not a domain\t" in reports
    assert "acme.com" not in reports

    fourth = tick(instance, warehouse_url, third.cursor)
    assert not fourth.run_requests
    assert instance.get_dynamic_partitions(PARTITIONS) == ["acme.com", "foo.com", "bar.org"]


def test_a_file_still_being_written_waits(instance, warehouse_url, inbox: Path) -> None:
    drop = inbox / "big.txt"
    drop.write_text("one.com\n")
    first = tick(instance, warehouse_url, None)
    drop.write_text("one.com\ntwo.com\n")  # grew since the last tick
    os.utime(drop, ns=(drop.stat().st_atime_ns, drop.stat().st_mtime_ns + 1_000_000))
    second = tick(instance, warehouse_url, first.cursor)
    assert not second.run_requests
    third = tick(instance, warehouse_url, second.cursor)
    assert list(third.dynamic_partitions_requests[0].partition_keys) == ["one.com", "two.com"]


def test_request_rows_are_accepted_or_rejected(instance, warehouse_url) -> None:
    instance.add_dynamic_partitions(PARTITIONS, ["already.com"])
    insert_requests(warehouse_url, "https://www.Shop.com/x", "localhost", "already.com", "SHOP.COM")

    first = tick(instance, warehouse_url, None)
    (request,) = first.run_requests
    assert list(first.dynamic_partitions_requests[0].partition_keys) == ["shop.com"]
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("shop.com", "shop.com")
    rows = request_rows(warehouse_url)
    assert rows["localhost"][:3] == ("rejected", "localhost is not a company domain", None)
    assert rows["already.com"][:3] == ("accepted", None, "already.com")
    assert rows["localhost"][3] is not None and rows["already.com"][3] is not None
    assert rows["SHOP.COM"][0] == "pending"  # settled once a tick sees it registered

    second = tick(instance, warehouse_url, first.cursor)
    assert not second.run_requests
    rows = request_rows(warehouse_url)
    assert rows["https://www.Shop.com/x"][:3] == ("accepted", None, "shop.com")
    assert rows["SHOP.COM"][:3] == ("accepted", None, "shop.com")
    assert all(r[3] is not None for r in rows.values())


def test_one_run_per_tick_over_the_appended_range(instance, warehouse_url, inbox: Path) -> None:
    instance.add_dynamic_partitions(PARTITIONS, ["old.com", "older.com"])
    insert_requests(warehouse_url, "rowdomain.com", "old.com")
    (inbox / "f.txt").write_text("filedomain.com\nolder.com\n")
    first = tick(instance, warehouse_url, None)  # the row; the file is seen for the first time
    second = tick(instance, warehouse_url, first.cursor)  # the file
    runs = [*first.run_requests, *second.run_requests]
    assert [len(r.run_requests) for r in (first, second)] == [1, 1]
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs] == [
        ("rowdomain.com", "rowdomain.com"),
        ("filedomain.com", "filedomain.com"),
    ]
    assert instance.get_dynamic_partitions(PARTITIONS) == [
        "old.com",
        "older.com",
        "rowdomain.com",
        "filedomain.com",
    ]
    assert len({r.run_key for r in runs}) == 2


def test_a_lost_tick_is_redone_with_the_same_run_key(instance, warehouse_url) -> None:
    insert_requests(warehouse_url, "a.com", "b.com")
    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource(url=warehouse_url)}
    )
    lost = domain_intake_sensor(context)  # the daemon died before storing this result
    again = domain_intake_sensor(context)
    assert lost.run_requests[0].run_key == again.run_requests[0].run_key
    assert list(again.dynamic_partitions_requests[0].partition_keys) == ["a.com", "b.com"]


def test_the_sensor_run_request_runs(instance, warehouse_url) -> None:
    """The request is a valid single-run backfill of the job (sandbox, two providers)."""
    domains = sandbox_domains(2)
    insert_requests(warehouse_url, *domains)
    (request,) = tick(instance, warehouse_url, None).run_requests
    result = defs.resolve_job_def(ENRICH_JOB_NAME).execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(url=warehouse_url),
            "providers": ProvidersResource(mode="sandbox", providers=["builtwith", "similarweb"]),
        },
    )
    assert result.success
    assert sorted(read_table(warehouse_url, "marts.company_profiles")["domain"]) == sorted(domains)


def test_intake_sensor_is_off_by_default() -> None:
    assert domain_intake_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert domain_intake_sensor.minimum_interval_seconds == 60
    assert domain_intake_sensor.job_name == ENRICH_JOB_NAME


# --------------------------------------------------------------------------- stale re-enrich schedule

KEYS = ["s1.com", "s2.com", "s3.com", "s4.com", "s5.com"]


def _rows(domain: str, expires_at: datetime) -> list:
    return [
        response_row(domain, provider="builtwith", endpoint="domain_api", payload={}, expires_at=expires_at),
        *(
            response_row(
                domain, provider="similarweb", endpoint=e, payload={}, expires_at=NOW + timedelta(days=9)
            )
            for e in SIMILARWEB_ENDPOINTS
        ),
    ]


@pytest.fixture
def persistent():
    """Schedule contexts need an instance they can reopen: a temporary on-disk one."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def cache(persistent, warehouse_url) -> str:
    """Five registered domains; s2 and s4 have a BuiltWith answer past its TTL."""
    persistent.add_dynamic_partitions(PARTITIONS, KEYS)
    with Warehouse.open(warehouse_url) as wh:
        for key in KEYS:
            expired = key in ("s2.com", "s4.com")
            wh.write_responses(_rows(key, NOW - timedelta(days=1) if expired else NOW + timedelta(days=9)))
    return warehouse_url


def evaluate(instance, warehouse_url):
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=NOW,
        resources={
            "warehouse": WarehouseResource(url=warehouse_url),
            "providers": ProvidersResource(mode="sandbox", providers=["builtwith", "similarweb"]),
        },
    )
    return stale_reenrich_schedule(context)


def test_only_stale_domains_in_one_range_run(persistent, cache) -> None:
    (request,) = evaluate(persistent, cache)
    # s3 lies between and is fresh: in the range, but served from cache at no cost
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("s2.com", "s4.com")
    assert request.tags["enrichment/stale_domains"] == "2"
    assert request.tags["enrichment/range_domains"] == "3"
    assert request.tags["enrichment/estimated_cost_usd"] == "0.02..0.02"  # two BuiltWith calls
    assert request.run_config == {"ops": {"raw__provider_responses": {"config": {"force": False}}}}
    assert request.run_key.startswith(f"stale-{NOW:%Y-%m-%d}-")


def test_the_quota_cuts_the_range(persistent, cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILTWITH_DAILY_QUOTA", "3")
    with Warehouse.open(cache) as wh:
        wh.reserve_quota("builtwith", NOW.date(), 2, 3)  # one call left today
    (request,) = evaluate(persistent, cache)
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("s2.com", "s2.com")

    with Warehouse.open(cache) as wh:
        wh.reserve_quota("builtwith", NOW.date(), 1, 3)
    skipped = evaluate(persistent, cache)
    assert isinstance(skipped, dg.SkipReason) and "quota" in skipped.skip_message


def test_never_fetched_partitions_are_due_and_junk_is_not(persistent, cache) -> None:
    persistent.add_dynamic_partitions(PARTITIONS, ["s6.com", "localhost"])
    (request,) = evaluate(persistent, cache)
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("s2.com", "s6.com")
    assert request.tags["enrichment/stale_domains"] == "3"


def test_nothing_stale_nothing_runs(persistent, warehouse_url) -> None:
    persistent.add_dynamic_partitions(PARTITIONS, KEYS)
    with Warehouse.open(warehouse_url) as wh:
        for key in KEYS:
            wh.write_responses(_rows(key, NOW + timedelta(days=3)))
    skipped = evaluate(persistent, warehouse_url)
    assert isinstance(skipped, dg.SkipReason) and skipped.skip_message == "nothing is stale"


def test_keys_of_running_enrichments_are_busy() -> None:
    class Runs:
        def get_runs(self, filters):
            assert filters.job_name == ENRICH_JOB_NAME and dg.DagsterRunStatus.STARTED in filters.statuses
            return [
                SimpleNamespace(tags={RANGE_START: "s2.com", RANGE_END: "s4.com"}),
                SimpleNamespace(tags={"dagster/partition": "s5.com"}),
                SimpleNamespace(tags={RANGE_START: "gone.com", RANGE_END: "s1.com"}),  # deleted key: ignored
            ]

    assert busy_keys(Runs(), KEYS) == {"s2.com", "s3.com", "s4.com", "s5.com"}


def test_schedule_is_daily_and_off_by_default() -> None:
    assert stale_reenrich_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert stale_reenrich_schedule.cron_schedule == "0 3 * * *"
    assert stale_reenrich_schedule.job_name == ENRICH_JOB_NAME


# --------------------------------------------------------------------------- freshness


def test_marts_freshness_policy_and_check(persistent, cache) -> None:
    """What `definitions.py` gets: the policy on the two marts, the check, the sensor, the schedule."""
    operations = dg.Definitions(
        assets=freshness.with_marts_freshness(defs.assets or []),
        asset_checks=[*(defs.asset_checks or []), freshness.answers_within_ttl],
        jobs=defs.jobs,
        sensors=[*(defs.sensors or []), domain_intake_sensor],
        schedules=[stale_reenrich_schedule],
        resources=defs.resources,
    )
    dg.Definitions.validate_loadable(operations)
    policies = {s.key: s.freshness_policy for s in operations.resolve_all_asset_specs() if s.freshness_policy}
    assert policies == dict.fromkeys(freshness.MART_KEYS, freshness.MARTS_FRESHNESS_POLICY)
    checks = operations.resolve_job_def(ENRICH_JOB_NAME).asset_layer.asset_graph.asset_check_keys
    assert dg.AssetCheckKey(freshness.PROFILES_KEY, "answers_within_ttl") in checks

    result = freshness.answers_within_ttl(
        warehouse=WarehouseResource(url=cache),
        providers=ProvidersResource(mode="sandbox", providers=["builtwith", "similarweb"]),
    )
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["stale_domains"].value == 2
