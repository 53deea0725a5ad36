"""How often `dagster-daemon` looks for new backfills and evaluates sensors.

Dagster's daemon passes over requested backfills every 30 s and over sensors every 5 s. Both are
module constants of Dagster's, not instance settings, and both sit on the path a data engineer
waits on:

* the partition dialog launches a range of domains as a *backfill*; over the enrichment assets
  it is two runs (the domains' partitions in one, `BackfillPolicy.single_run`, then the tables
  downstream), each created on a pass of the backfill daemon: 58-62 s from launch to the second
  run's SUCCESS over the 67 sample domains, where a run launched directly took 2-5 s;
* the marts run after an enrichment is requested by a run-status sensor, evaluated on the sensor
  daemon's next pass: 0-5 s after the enrichment ended.

The project's event-log storages (loaded with the instance in every process, in the daemon before
its daemon threads start) set both from `dagster.yaml`
(`backfill_pass_seconds`, `sensor_pass_seconds`); `null` keeps Dagster's own pace. A backfill
pass with nothing to do is a query. A sensor pass evaluates the sensors whose interval has passed,
the marts sensor (1 s) among them: a tick stored and a call to the code server each time. An idle
`make dev` used 3.0-3.3 s of CPU a minute with Dagster's pace and 6.7 s with this one.

Dagster reads the backfill constant once, when the backfill daemon's loop starts, and the
sensor constant on every pass; `enrichment_pipeline_tests/ops/test_daemon_pace.py` drives both
loops of the installed Dagster to hold that. Dagster's legacy auto-materialize daemon (unused by
this project) takes its default interval from the same backfill constant unless
`auto_materialize.minimum_interval_seconds` is set.
"""

from __future__ import annotations

DEFAULT_BACKFILL_PASS_SECONDS = 5
DEFAULT_SENSOR_PASS_SECONDS = 1


def apply_daemon_pace(backfill_pass_seconds: float | None, sensor_pass_seconds: float | None) -> None:
    """Set the daemon's passes in this process (None keeps Dagster's).

    Harmless outside the daemon: only the daemon's loops read these, and loading any instance
    imports `dagster._daemon` already (Dagster's run storage does), so this costs no import.
    """
    from dagster._daemon import controller, sensor

    backfill = _seconds(backfill_pass_seconds, "backfill_pass_seconds")
    sensor_pass = _seconds(sensor_pass_seconds, "sensor_pass_seconds")
    if backfill is not None:
        controller.DEFAULT_DAEMON_INTERVAL_SECONDS = backfill  # type: ignore[assignment]
    if sensor_pass is not None:
        sensor.MIN_INTERVAL_LOOP_TIME = sensor_pass  # type: ignore[assignment]


def _seconds(value: float | None, name: str) -> float | None:
    # 0 would make the daemon spin on its storage without pause.
    if value is not None and not value > 0:
        raise ValueError(
            f"{name} must be a number of seconds above 0 (or null for Dagster's own), got {value!r}"
        )
    return value
