"""`WarmRunLauncher`: launched runs start in a process that has already loaded the code location.

Dagster's `DefaultRunLauncher` asks the code server to start each run in a new interpreter, which
imports Dagster, dbt (through dagster-dbt) and the project before the first step: 2-8 s a run,
depending on the machine, for every run the UI, a schedule, a sensor or the queue launches (the
marts run after each enrichment pays it again). Dagster has no option to preload the code location
for run workers (dagster-io/dagster#8638). This launcher keeps, per code location, one warm
process (`run_template.py`) that has loaded it, and forks each run's worker from it: the worker
runs `dagster api execute_run`, the command Dagster's container launchers run, with nothing left
to import.

The default launch is kept for everything else, and as the fallback:
- the first launches, while the warm process loads (in the background, once per process that
  launches runs: the webserver, the daemon);
- a code location that is not a local Python module (a container image, a remote code server);
- a platform other than Linux (macOS's system libraries are not fork-safe);
- a warm process that failed to load or to answer. The run then starts the default way, with an
  engine event saying why.
After a code reload (a new code server), the next launch starts a new warm process: a run never
starts from code older than the code server's.

Per run, a supervisor process waits for the worker: a worker that dies mid-run (OOM, kill -9)
fails its run at once, as the code server does for its own workers, so run retries still apply.
Termination (the UI's "Terminate") sends the worker SIGINT, which Dagster turns into a canceled
run, as the code server does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from dagster import DefaultRunLauncher
from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher.base import LaunchRunContext
from dagster._core.origin import RepositoryPythonOrigin
from dagster._serdes import ConfigurableClassData
from dagster_shared.serdes import serialize_value

WORKER_PID_TAG = "enrichment/run_worker_pid"
WORKER_HOST_TAG = "enrichment/run_worker_host"
TEMPLATE_MODULE = "enrichment_pipeline.instance.run_template"


def _warm_worker(tag: str) -> int | None:
    """The pid in a run's tag, if it is a run worker forked from a warm process; None for anything
    else, whatever the tag says.

    A worker, its supervisor and the warm process above them all carry the warm process's command
    line (a fork keeps it); only a worker has two such ancestors, so neither the warm process nor
    a supervisor can be named instead of a worker."""
    if not tag.isdigit():
        return None
    pid = int(tag)
    process: int | None = pid
    for _ in range(3):  # the worker, its supervisor, the warm process
        if process is None or not _is_template(process):
            return None
        process = _parent(process)
    return pid


def _is_template(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return TEMPLATE_MODULE.encode() in command.split(b"\0")


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


class WarmStartUnavailable(Exception):
    """The warm process cannot start this run; it starts the default way."""


class _WarmProcess:
    """One `run_template` process for one code location, loading in the background."""

    def __init__(
        self,
        origin: RepositoryPythonOrigin,
        ready_timeout_s: float,
        reply_timeout_s: float,
        module: str = TEMPLATE_MODULE,
    ) -> None:
        self.ready = threading.Event()
        self.error: str | None = None
        self._reply_timeout_s = reply_timeout_s
        self._lock = threading.Lock()
        read_end, write_end = os.pipe()
        working_directory = getattr(origin.code_pointer, "working_directory", None)
        self._proc = subprocess.Popen(
            [origin.executable_path, "-m", module, str(write_end)],
            stdin=subprocess.PIPE,
            pass_fds=(write_end,),
            cwd=working_directory or None,
            text=True,
        )
        os.close(write_end)
        self._replies = os.fdopen(read_end, "r")
        assert self._proc.stdin is not None
        self._proc.stdin.write(serialize_value(origin) + "\n")
        self._proc.stdin.flush()
        threading.Thread(
            target=self._wait_ready, args=(ready_timeout_s,), name="warm-run-process", daemon=True
        ).start()

    def _read_reply(self, timeout_s: float) -> dict[str, Any]:
        readable, _, _ = select.select([self._replies], [], [], timeout_s)
        if not readable:
            raise WarmStartUnavailable(f"no answer from the warm process within {timeout_s:g} s")
        line = self._replies.readline()
        if not line:
            raise WarmStartUnavailable(f"the warm process exited (code {self._proc.poll()})")
        return json.loads(line)

    def _wait_ready(self, timeout_s: float) -> None:
        try:
            reply = self._read_reply(timeout_s)
            if reply.get("ready"):
                self.ready.set()
                return
            self.error = f"the warm process could not load the code location: {reply.get('error')}"
        except (WarmStartUnavailable, ValueError) as exc:
            self.error = str(exc)
        self.stop()

    @property
    def alive(self) -> bool:
        return self.error is None and self._proc.poll() is None

    def start(self, run_id: str, args: list[str]) -> int:
        """The pid of the run's worker.

        `WarmStartUnavailable`: no worker was started, the run may start the default way.
        `DagsterLaunchFailedError`: the request went out and no answer came back. A worker may
        have started, so the run must not start a second time: Dagster fails the launch, and a
        worker that did start finds its run finished and does nothing.
        """
        with self._lock:
            if not (self.ready.is_set() and self.alive):
                raise WarmStartUnavailable(self.error or "the warm process is not ready")
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps({"run_id": run_id, "args": args}) + "\n")
                self._proc.stdin.flush()
            except OSError as exc:  # it exited since: nothing read the request
                self.error = f"the warm process is gone: {exc}"
                self.stop()
                raise WarmStartUnavailable(self.error) from exc
            try:
                reply = self._read_reply(self._reply_timeout_s)
            except (ValueError, WarmStartUnavailable) as exc:
                self.error = f"the warm process failed: {exc}"
                self.stop()
                raise DagsterLaunchFailedError(
                    f"{self.error}; the run was not started a second time (launch it again)"
                ) from exc
            if "pid" not in reply:  # it answered: no worker was forked
                raise WarmStartUnavailable(f"the warm process could not start the run: {reply.get('error')}")
            return int(reply["pid"])

    def stop(self) -> None:
        """End the warm process (runs it started go on)."""
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class WarmRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher, with run workers forked from a process that loaded the code."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        ready_timeout_seconds: float = 180.0,
        reply_timeout_seconds: float = 30.0,
    ) -> None:
        super().__init__(inst_data=inst_data)
        self._ready_timeout_s = ready_timeout_seconds
        self._reply_timeout_s = reply_timeout_seconds
        self._processes: dict[str, tuple[str | None, _WarmProcess]] = {}
        self._lock = threading.Lock()

    @classmethod
    def config_type(cls) -> Mapping[str, Any]:
        from dagster import Field

        return {
            "ready_timeout_seconds": Field(float, is_required=False, default_value=180.0),
            "reply_timeout_seconds": Field(float, is_required=False, default_value=30.0),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data, **config_value)

    def _warm_process(self, context: LaunchRunContext) -> _WarmProcess:
        if sys.platform != "linux":
            # macOS's system libraries are not fork-safe (Python's multiprocessing stopped forking
            # there for that reason); elsewhere there is no fork.
            raise WarmStartUnavailable(f"run workers are forked on Linux only, not on {sys.platform}")
        run = context.dagster_run
        job_origin = run.job_code_origin
        if job_origin is None:
            raise WarmStartUnavailable("the run has no code origin")
        origin = job_origin.repository_origin
        if origin.container_image or not os.path.exists(origin.executable_path):
            raise WarmStartUnavailable("the code location does not run on this machine")
        server_id = None
        if context.workspace is not None and run.remote_job_origin is not None:
            name = run.remote_job_origin.repository_origin.code_location_origin.location_name
            try:
                server_id = getattr(context.workspace.get_code_location(name), "server_id", None)
            except Exception:  # a location in error: Dagster's launch will say so
                raise WarmStartUnavailable(f"code location {name!r} is not loaded") from None
        key = serialize_value(origin)
        with self._lock:
            known = self._processes.get(key)
            if known is not None and (
                known[0] != server_id or (known[1].error is None and not known[1].alive)
            ):
                # Reloaded code (a new code server), or the process is gone: start a new one. One
                # that failed to load stays, with its reason, until the code is reloaded.
                known[1].stop()
                known = None
            if known is None:
                known = (server_id, _WarmProcess(origin, self._ready_timeout_s, self._reply_timeout_s))
                self._processes[key] = known
        return known[1]

    def launch_run(self, context: LaunchRunContext) -> None:
        # Here, not at the top: every process that loads the instance imports this module.
        from dagster._grpc.types import ExecuteRunArgs

        run = context.dagster_run
        try:
            process = self._warm_process(context)
            execute_args = ExecuteRunArgs(
                job_origin=run.job_code_origin,  # type: ignore[arg-type]  # checked in _warm_process
                run_id=run.run_id,
                instance_ref=self._instance.get_ref(),
            )
            pid = process.start(run.run_id, ["api", "execute_run", serialize_value(execute_args)])
        except WarmStartUnavailable as exc:
            self._instance.report_engine_event(
                f"Starting the run worker the default way: {exc}.", run, cls=self.__class__
            )
            # Whoever launches a run can set its tags: a pid given at launch must never reach
            # `terminate`, which signals the process it names.
            self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: "", WORKER_HOST_TAG: ""})
            super().launch_run(context)
            return
        self._instance.add_run_tags(
            run.run_id, {WORKER_PID_TAG: str(pid), WORKER_HOST_TAG: socket.gethostname()}
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or not run.tags.get(WORKER_PID_TAG):
            return super().terminate(run_id)
        if run.tags.get(WORKER_HOST_TAG) != socket.gethostname():
            self._instance.report_engine_event(
                f"Cannot terminate: the run worker runs on {run.tags.get(WORKER_HOST_TAG)}.",
                run,
                cls=self.__class__,
            )
            return False
        pid = _warm_worker(run.tags[WORKER_PID_TAG])
        if pid is None:
            self._instance.report_engine_event(
                f"Not terminated: no run worker of this launcher has pid {run.tags[WORKER_PID_TAG]!r}.",
                run,
                cls=self.__class__,
            )
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            self._instance.report_engine_event("The run worker had already exited.", run, cls=self.__class__)
            return False
        return True

    def wait_until_warm(self, timeout_s: float) -> bool:
        """True once every warm process this launcher started has loaded (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            processes = [process for _, process in self._processes.values()]
        return all(p.ready.wait(max(0.0, deadline - time.monotonic())) for p in processes)

    def dispose(self) -> None:
        with self._lock:
            for _, process in self._processes.values():
                process.stop()
            self._processes.clear()
        super().dispose()
