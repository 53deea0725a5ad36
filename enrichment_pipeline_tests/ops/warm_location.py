"""A small code location for the warm run launcher's tests (test_warm_run_launcher.py)."""

import json
import os
import time
from pathlib import Path

import dagster as dg

# The process that imported this module: the warm process, for a worker forked from it.
IMPORTED_IN = os.getpid()
OUT_ENV = "WARM_LOCATION_OUT"


def _out() -> Path:
    return Path(os.environ[OUT_ENV])


@dg.op
def report(context: dg.OpExecutionContext) -> None:
    (_out() / f"{context.run_id}.json").write_text(
        json.dumps({"imported_in": IMPORTED_IN, "pid": os.getpid()})
    )


@dg.op
def wait_for_release(context: dg.OpExecutionContext) -> None:
    (_out() / f"{context.run_id}.started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not (_out() / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@dg.job(executor_def=dg.in_process_executor)
def quick() -> None:
    report()


@dg.job(executor_def=dg.in_process_executor)
def slow() -> None:
    wait_for_release()


defs = dg.Definitions(jobs=[quick, slow])
