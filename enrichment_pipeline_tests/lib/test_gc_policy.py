"""The collector is paused while the code location loads, and left as it was found."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from enrichment_pipeline.lib.gc_policy import collector_paused_while_loading


@pytest.fixture(autouse=True)
def _restore_collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_no_collection_inside_and_what_was_loaded_is_frozen() -> None:
    gc.enable()
    gc.unfreeze()
    collections: list[str] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(phase)

    gc.callbacks.append(seen)
    try:
        with collector_paused_while_loading():
            assert not gc.isenabled()
            loaded = [[i] for i in range(200_000)]  # far past every threshold
        assert collections == []
    finally:
        gc.callbacks.remove(seen)
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)


def test_a_failed_load_still_gives_the_collector_back() -> None:
    gc.enable()
    with pytest.raises(ImportError), collector_paused_while_loading():
        raise ImportError("a broken module")
    assert gc.isenabled()


def test_a_collector_the_host_disabled_stays_disabled() -> None:
    gc.disable()
    with collector_paused_while_loading():
        pass
    assert not gc.isenabled()


def test_loading_the_code_location_leaves_the_collector_on_and_its_objects_frozen() -> None:
    probe = "import gc, enrichment_pipeline.definitions\nprint(gc.isenabled(), gc.get_freeze_count())\n"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, check=True
    )
    enabled, frozen = out.stdout.split()
    assert enabled == "True"
    assert int(frozen) > 100_000


def test_what_was_frozen_is_freed_at_exit_without_leak_reports() -> None:
    """DuckDB's bindings print "leaked N instances" at exit for any of their objects the
    collector never freed, as frozen objects would be."""
    probe = (
        "import duckdb\n"
        "from enrichment_pipeline.lib.gc_policy import collector_paused_while_loading\n"
        "connection = duckdb.connect()\n"
        "with collector_paused_while_loading():\n"
        "    connection.execute('SELECT 1').fetchall()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "leaked" not in out.stderr
