"""Submitting and watching Dagster runs for API enrichments, on the project's instance.

Runs are submitted with `dagster job launch` against the project's workspace:
the same path as the UI's "Launch run", so a run goes through the instance's run
coordinator (it waits in the queue, pools and tag limits apply) and shows in the
UI with its tags. The API process never imports the Dagster definitions. A queue
needs the daemon: if none is heartbeating, the API starts `dagster-daemon run` for
as long as it lives (`API_START_DAEMON=0` turns that off).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from enrichment_pipeline.lib.dagster_home import ensure_dagster_home
from enrichment_pipeline.lib.partition_keys import DOMAINS_PARTITIONS

log = logging.getLogger("enrichment_pipeline.api.dagster")

ENRICH_JOB = "enrich_domains"
MARTS_JOB = "build_marts"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
LAUNCH_TIMEOUT_S = 300
HEARTBEAT_FRESH_S = 90


class LaunchError(RuntimeError):
    pass


def _bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else (shutil.which(name) or name)


class DagsterRuns:
    def __init__(self, workspace: Path | None = None, *, start_daemon: bool = True) -> None:
        ensure_dagster_home()
        self.workspace = workspace if workspace is not None else Path.cwd() / "workspace.yaml"
        self.start_daemon = start_daemon
        self._instance = None
        self._lock = threading.Lock()
        self._daemon: subprocess.Popen | None = None

    @property
    def instance(self):
        with self._lock:
            if self._instance is None:
                import dagster as dg

                self._instance = dg.DagsterInstance.get()
            return self._instance

    def _target(self) -> list[str]:
        if self.workspace.exists():
            return ["-w", str(self.workspace)]
        return ["-m", "enrichment_pipeline.definitions"]

    # -- the daemon -----------------------------------------------------------------------------

    def daemon_alive(self) -> bool:
        if self._daemon is not None and self._daemon.poll() is None:
            return True
        try:
            beats = self.instance.get_daemon_heartbeats()
        except Exception:  # storage without heartbeats: treat as no daemon
            return False
        now = time.time()
        return any(now - beat.timestamp < HEARTBEAT_FRESH_S for beat in beats.values())

    def ensure_daemon(self) -> None:
        with self._lock:
            alive = self._daemon is not None and self._daemon.poll() is None
        if alive or not self.start_daemon or self.daemon_alive():
            return
        with self._lock:
            if self._daemon is not None and self._daemon.poll() is None:
                return
            log.info("no Dagster daemon heartbeat: starting `dagster-daemon run` for queued runs and sensors")
            self._daemon = subprocess.Popen(
                [_bin("dagster-daemon"), "run", *self._target()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop_daemon(self) -> None:
        with self._lock:
            daemon, self._daemon = self._daemon, None
        if daemon is None or daemon.poll() is not None:
            return
        try:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(daemon.pid, signal.SIGKILL)

    # -- partitions and runs ----------------------------------------------------------------------

    def register(self, domains: list[str]) -> list[str]:
        """Add the new domains as partitions; returns every partition key in order."""
        instance = self.instance
        known = set(instance.get_dynamic_partitions(DOMAINS_PARTITIONS))
        new = [d for d in domains if d not in known]
        if new:
            instance.add_dynamic_partitions(DOMAINS_PARTITIONS, new)
        return list(instance.get_dynamic_partitions(DOMAINS_PARTITIONS))

    def launch(
        self, job: str, run_id: str, tags: dict[str, str], run_config: dict[str, Any] | None = None
    ) -> None:
        command = [_bin("dagster"), "job", "launch", *self._target(), "-j", job, "--run-id", run_id]
        command += ["--tags", json.dumps(tags)]
        if run_config:
            command += ["--config-json", json.dumps(run_config)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
        if done.returncode != 0 or self.status(run_id) is None:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])[-600:]
            raise LaunchError(f"`dagster job launch -j {job}` failed (exit {done.returncode}): {tail}")

    def status(self, run_id: str) -> str | None:
        run = self.instance.get_run_by_id(run_id)
        return None if run is None else run.status.value

    def find_runs(self, tags: dict[str, str]) -> list[str]:
        import dagster as dg

        return [r.run_id for r in self.instance.get_runs(filters=dg.RunsFilter(tags=tags), limit=5)]

    def events(
        self, run_id: str, cursor: str | None, limit: int = 200
    ) -> tuple[list[dict[str, Any]], str | None]:
        result = self.instance.get_records_for_run(run_id, cursor=cursor, limit=limit)
        out = []
        for record in result.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            out.append(
                {
                    "run_id": run_id,
                    "type": event.event_type_value if event else "LOG",
                    "step_key": entry.step_key,
                    "message": (entry.user_message or "")[:500],
                    "timestamp": entry.timestamp,
                }
            )
        return out, result.cursor
