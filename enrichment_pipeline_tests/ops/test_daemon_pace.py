"""The daemon's passes over backfills and sensors, as the project's `dagster.yaml` files set them.

Each probe is a fresh process that does what `dagster-daemon run` does first (import the daemon's
controller, then load the instance from DAGSTER_HOME) and then drives one pass of the installed
Dagster's own backfill and sensor loops with the work stubbed out, recording how long each loop
would sleep before its next pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from enrichment_pipeline.instance import DAGSTER_YAML_TEMPLATE, install_instance_config
from enrichment_pipeline.instance.daemon_pace import apply_daemon_pace

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"

DAEMON_PROBE = """
import json, logging
import dagster._daemon.cli  # what `dagster-daemon run` imports before it loads the instance
import dagster as dg
from dagster._daemon import backfill, sensor

instance = dg.DagsterInstance.get()
instance.event_log_storage  # loaded with the instance, before any daemon thread starts

class Shutdown:
    def __init__(self):
        self.waits = []
    def wait(self, seconds):
        self.waits.append(seconds)
        return False

def first_sleep(loop, stub_name, module):
    setattr(module, stub_name, lambda *args, **kwargs: iter(()))
    shutdown = Shutdown()
    for _ in loop(None, logging.getLogger("probe"), shutdown):
        if shutdown.waits:
            return shutdown.waits[0]

print(json.dumps({
    "backfill": first_sleep(backfill.execute_backfill_iteration_loop, "execute_backfill_iteration", backfill),
    "sensor": first_sleep(sensor.execute_sensor_iteration_loop, "execute_sensor_iteration", sensor),
}))
"""


def _run(home: Path, probe: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(home)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def _home(tmp_path: Path, replace: dict[str, str] | None = None) -> Path:
    home = tmp_path / "home"
    install_instance_config(home)
    text = DAGSTER_YAML_TEMPLATE.read_text()
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    (home / "dagster.yaml").write_text(text)
    return home


def test_the_daemon_looks_for_backfills_every_5_s_and_evaluates_sensors_every_second(tmp_path: Path) -> None:
    sleeps = json.loads(_run(_home(tmp_path), DAEMON_PROBE))
    # The first sleep is the pass interval less the (stubbed, near-instant) pass itself.
    assert 4 < sleeps["backfill"] <= 5
    assert 0.5 < sleeps["sensor"] <= 1


def test_null_keeps_dagsters_own_pace(tmp_path: Path) -> None:
    home = _home(
        tmp_path,
        {
            "backfill_pass_seconds: 5": "backfill_pass_seconds: null",
            "sensor_pass_seconds: 1": "sensor_pass_seconds:",
        },
    )
    sleeps = json.loads(_run(home, DAEMON_PROBE))
    assert 29 < sleeps["backfill"] <= 30
    assert 4 < sleeps["sensor"] <= 5


def test_a_pass_of_zero_seconds_is_refused_with_its_name(tmp_path: Path) -> None:
    home = _home(tmp_path, {"backfill_pass_seconds: 5": "backfill_pass_seconds: 0"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(home)
    probe = [sys.executable, "-c", DAEMON_PROBE]
    out = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "backfill_pass_seconds must be a number of seconds above 0" in out.stderr
    with pytest.raises(ValueError, match="sensor_pass_seconds"):
        apply_daemon_pace(5, -1)


def test_deploy_sets_the_same_pace_as_the_project_instance() -> None:
    def pace(path: Path) -> tuple[object, object]:
        config = yaml.safe_load(path.read_text())["event_log_storage"]["config"]
        return config["backfill_pass_seconds"], config["sensor_pass_seconds"]

    assert pace(DEPLOY_YAML) == pace(DAGSTER_YAML_TEMPLATE) == (5, 1)
