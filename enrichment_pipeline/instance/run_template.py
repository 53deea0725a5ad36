"""The warm process that launched runs are forked from (see `run_launcher.py`).

    python -m enrichment_pipeline.instance.run_template REPLY_FD

A run worker started the default way is a new interpreter that imports Dagster and the code
location before its first step: most of a short run's time on a small machine. This process
imports them once, then forks one worker per run, which starts with everything loaded.

Protocol, one JSON document per line:
  stdin, first line: the serialized `RepositoryPythonOrigin` of the code location to load;
  REPLY_FD: `{"ready": true}` once loaded, or `{"error": "..."}` (then the process exits);
  stdin, then: `{"run_id": ..., "args": [...]}`, the arguments of `dagster api execute_run`;
  REPLY_FD: `{"pid": N}`, the run worker's process id.
End of stdin (the launcher's process is gone, or it dropped this template) ends this process;
run workers already started go on.

Each run gets a supervisor (a fork of this process) that forks the worker and waits for it, so a
worker killed mid-run (OOM, `kill -9`) fails its run at once, as Dagster's code server does for
the workers it starts. This process starts no thread, and refuses to serve (the launcher then
starts runs the default way) if loading the code location started one.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
import traceback
from typing import IO, Any


def _reply(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _load(origin_line: str) -> None:
    from dagster._core.origin import RepositoryPythonOrigin
    from dagster._utils.hosted_user_process import recon_repository_from_origin
    from dagster_shared.serdes import deserialize_value

    origin = deserialize_value(origin_line, RepositoryPythonOrigin)
    # Builds the repository as a run worker does: what the worker needs is then loaded.
    recon_repository_from_origin(origin).get_definition()
    # A fork copies only the forking thread: a Python thread started by the code location could
    # hold a lock the worker then waits on forever. (Native helper threads that libraries start at
    # import, OpenBLAS's, jemalloc's, polars' cleanup thread, run no work at this point; the worker
    # pools of polars and DuckDB start on first use, in the worker.)
    started = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if started:
        raise RuntimeError(f"loading the code location started threads {started}: forking is unsafe")


def _run_worker(args: list[str]) -> int:
    """Become `dagster api execute_run ARGS`, with Dagster and the code location already loaded."""
    sys.argv = ["dagster", *args]
    try:
        runpy.run_module("dagster", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _report_crash(args: list[str], run_id: str, pid: int, status: int) -> None:
    """The worker died without finishing its run: fail the run, as Dagster's code server does."""
    from dagster import DagsterRunStatus
    from dagster._core.instance import DagsterInstance
    from dagster._grpc.types import ExecuteRunArgs
    from dagster_shared.serdes import deserialize_value

    how = (
        f"was killed by signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"exited with code {os.waitstatus_to_exitcode(status)}"
    )
    execute_args = deserialize_value(args[-1], ExecuteRunArgs)
    with DagsterInstance.from_ref(execute_args.instance_ref) as instance:  # type: ignore[arg-type]
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return
        instance.report_engine_event(f"Run worker (pid {pid}) {how} before the run ended.", run)
        if run.status == DagsterRunStatus.CANCELING:  # terminated before it could say so itself
            instance.report_run_canceled(run)
        else:
            instance.report_run_failed(run)


def _supervise(request: dict[str, Any], pid_pipe: int) -> int:
    """In the supervisor: fork the worker, hand its pid back, wait for it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    worker = os.fork()
    if worker == 0:
        os.close(pid_pipe)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return _run_worker(request["args"])
    os.write(pid_pipe, f"{worker}\n".encode())
    os.close(pid_pipe)
    _, status = os.waitpid(worker, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        try:
            _report_crash(request["args"], request["run_id"], worker, status)
        except Exception:  # the run stays as it is; say why
            traceback.print_exc()
    return 0


def _start(request: dict[str, Any], reply_fd: int) -> int:
    """Fork a supervisor for the run; the worker's pid."""
    read_end, write_end = os.pipe()
    supervisor = os.fork()
    if supervisor == 0:
        code = 1
        try:
            # The run's processes keep neither end of the launcher's pipes.
            os.close(read_end)
            os.close(reply_fd)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
            code = _supervise(request, write_end)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # never return into the template's loop
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pids:
        line = pids.readline()
    if not line.strip():
        raise RuntimeError("the run worker did not start")
    return int(line)


def main(argv: list[str]) -> int:
    reply_fd = int(argv[0])
    reply = os.fdopen(reply_fd, "w")
    # Ctrl-C in `dagster dev` reaches the whole process group: the launcher's process ends, and
    # with it this process's stdin. Workers get the default handler back (it cancels their run).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Supervisors are reaped by the kernel; each one sets this back before forking its worker.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        _load(sys.stdin.readline())
    except BaseException as exc:  # the launcher falls back to the default launch
        _reply(reply, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 1
    _reply(reply, {"ready": True})
    for line in sys.stdin:
        try:
            request = json.loads(line)
            _reply(reply, {"pid": _start(request, reply_fd)})
        except Exception as exc:  # one bad request fails that launch only
            _reply(reply, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
