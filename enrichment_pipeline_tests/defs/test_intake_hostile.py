"""The drop folder and the requests table against hostile or careless input.

Each test reproduces an attack or a mistake that used to leak a secret or stop intake for good.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import dagster as dg
import pytest

from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib import requests_intake as intake
from enrichment_pipeline_tests.defs.test_operations import insert_requests, request_rows, tick

SENTINEL = "SENTINEL-KEY-9f2c41"
PASSWORD = "SENTINEL-PW-55e1"


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    monkeypatch.setenv("DOMAIN_DROP_DIR", str(path))
    monkeypatch.setenv("BUILTWITH_API_KEY", SENTINEL)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", PASSWORD)
    return path


def two_ticks(instance, warehouse_url, cursor=None) -> dg.SensorResult:
    """A file is read once unchanged for a tick: the second tick handles what the first saw."""
    first = tick(instance, warehouse_url, cursor)
    return tick(instance, warehouse_url, first.cursor)


def settle(instance, warehouse_url) -> dg.SensorResult:
    result = two_ticks(instance, warehouse_url)
    return tick(instance, warehouse_url, result.cursor)  # domains registered: files moved


def everything_written(inbox: Path) -> str:
    """What the sensor wrote: regular files only (the moved links still point at the secrets)."""
    files = [p for p in inbox.rglob("*") if p.is_file() and not p.is_symlink()]
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in files)


def test_a_symlink_to_a_secrets_file_is_refused_not_read(
    instance, warehouse_url, inbox: Path, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"BUILTWITH_API_KEY={SENTINEL}\nDAGSTER_PG_PASSWORD={PASSWORD}\n")
    (inbox / "env.txt").symlink_to(secrets)
    (inbox / "environ.txt").symlink_to("/proc/self/environ")
    (inbox / "good.txt").write_text("acme.com\n")

    settle(instance, warehouse_url)

    assert instance.get_dynamic_partitions("domains") == ["acme.com"]
    failed = inbox / intake.FAILED
    moved = sorted(p.name for p in failed.iterdir())
    assert [n for n in moved if n.endswith(("env.txt", "environ.txt"))], moved
    reasons = "".join(p.read_text() for p in failed.glob("*.reason.txt"))
    assert "symbolic link" in reasons
    assert (
        failed / next(n for n in moved if n.endswith("-env.txt"))
    ).is_symlink()  # the link moved, not read
    assert secrets.read_text().startswith("BUILTWITH_API_KEY")  # target untouched
    # Nothing the daemon wrote or logged quotes the secrets.
    written = everything_written(inbox / intake.FAILED) + everything_written(inbox / intake.PROCESSED)
    for secret in (SENTINEL, PASSWORD):
        assert secret not in written
        assert secret not in caplog.text


def test_non_utf8_name_and_a_broken_processed_dir_never_stop_intake(
    instance, warehouse_url, inbox: Path
) -> None:
    odd = os.fsdecode(b"list\xff.txt")  # a byte no encoding maps: the name is surrogate-escaped
    (inbox / odd).write_text("odd-name.com\n")
    result = settle(instance, warehouse_url)
    assert "odd-name.com" in instance.get_dynamic_partitions("domains")
    assert not (inbox / odd).exists()
    json.loads(result.cursor)  # the cursor stays valid JSON

    # `processed` is a plain file: every later file still goes somewhere with the reason, and the
    # requests table is still read on the same ticks.
    processed = inbox / intake.PROCESSED
    for path in processed.iterdir():
        path.unlink()
    processed.rmdir()
    processed.write_text("not a directory")
    (inbox / "next.txt").write_text("next-one.com\n")
    insert_requests(warehouse_url, "from-table.com")
    settle(instance, warehouse_url)
    keys = instance.get_dynamic_partitions("domains")
    assert {"next-one.com", "from-table.com"} <= set(keys)
    assert request_rows(warehouse_url)["from-table.com"][0] == "accepted"
    reasons = "".join(p.read_text() for p in (inbox / intake.FAILED).glob("*.reason.txt"))
    assert "processed is not a usable directory" in reasons
    assert not (inbox / "next.txt").exists()


def test_a_file_that_cannot_be_moved_anywhere_is_skipped_and_the_tick_goes_on(
    instance, warehouse_url, inbox: Path
) -> None:
    (inbox / intake.PROCESSED).write_text("x")
    (inbox / intake.FAILED).symlink_to("/tmp")  # a planted link must not redirect our writes
    (inbox / "a.txt").write_text("stuck-file.com\n")
    result = settle(instance, warehouse_url)
    assert "stuck-file.com" in instance.get_dynamic_partitions("domains")
    assert (inbox / "a.txt").exists()
    assert "a.txt" in json.loads(result.cursor)["stuck"]
    insert_requests(warehouse_url, "later.com")
    again = tick(instance, warehouse_url, result.cursor)
    assert "later.com" in instance.get_dynamic_partitions("domains")
    assert "a.txt" in json.loads(again.cursor)["stuck"]  # not retried until it changes


def test_a_file_vanishing_between_read_and_move(instance, warehouse_url, inbox: Path, monkeypatch) -> None:
    (inbox / "gone.txt").write_text("vanish.com\n")
    first = two_ticks(instance, warehouse_url)
    real = intake.read_drop_file

    def read_then_vanish(path: Path, *args, **kwargs):
        entries = real(path, *args, **kwargs)
        path.unlink()
        return entries

    monkeypatch.setattr(intake, "read_drop_file", read_then_vanish)
    (inbox / "after.txt").write_text("after.com\n")
    result = tick(instance, warehouse_url, first.cursor)
    assert "gone.txt" not in json.loads(result.cursor)["files"]
    monkeypatch.setattr(intake, "read_drop_file", real)
    settle(instance, warehouse_url)
    assert "after.com" in instance.get_dynamic_partitions("domains")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("big.txt", b"acme.com\n" * (1_200_000), "larger than"),
        ("latin1.txt", b"m\xfcller.de\n", "not valid UTF-8"),
    ],
)
def test_unusable_files_go_to_failed_with_the_reason(
    instance, warehouse_url, inbox: Path, name: str, content: bytes, reason: str
) -> None:
    (inbox / name).write_bytes(content)
    settle(instance, warehouse_url)
    notes = "".join(p.read_text() for p in (inbox / intake.FAILED).glob("*.reason.txt"))
    assert reason in notes
    assert not instance.get_dynamic_partitions("domains")


def test_refused_entries_are_capped_and_redacted_in_logs_reports_and_the_table(
    instance, warehouse_url, inbox: Path, caplog, monkeypatch
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", f"postgresql://etl:{PASSWORD}@db.internal/wh")
    caplog.set_level(logging.DEBUG)
    long_entry = "x" * 5000
    (inbox / "leads.txt").write_text(f"acme.com\n{SENTINEL}\nexample.com:{PASSWORD}\n{long_entry}\n")
    insert_requests(warehouse_url, f"https://{SENTINEL}", f"a.com:{PASSWORD}")

    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource(url=warehouse_url)}
    )
    from enrichment_pipeline.defs.operations.sensors import domain_intake_sensor

    first = domain_intake_sensor(context)
    settle_cursor = first.cursor
    for _ in range(3):
        result = tick(instance, warehouse_url, settle_cursor)
        settle_cursor = result.cursor

    report = "".join(p.read_text() for p in (inbox / intake.PROCESSED).glob("*.rejected.txt"))
    assert report.count("***") >= 2
    stored = json.dumps([list(map(str, row)) for row in request_rows(warehouse_url).values()])
    for secret in (SENTINEL, PASSWORD):
        assert secret not in report
        assert secret not in caplog.text
        assert secret not in stored.replace(f"https://{SENTINEL}", "").replace(f"a.com:{PASSWORD}", "")
    assert long_entry not in report and long_entry not in caplog.text
    assert max(len(line) for line in report.splitlines()) < 400
