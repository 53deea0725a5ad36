"""The project's run launcher: launched runs forked from a process that has loaded the code.

Runs go through the path the UI, schedules and sensors take: a code server (a real gRPC server
process, as `dagster dev` starts), `instance.submit_run`, the project's `dagster.yaml`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.origin import RepositoryPythonOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

from enrichment_pipeline.instance import install_instance_config
from enrichment_pipeline.instance.run_launcher import (
    WORKER_PID_TAG,
    WarmRunLauncher,
    WarmStartUnavailable,
    _parent,
    _WarmProcess,
)
from enrichment_pipeline_tests.ops import warm_location

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "warm"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(warm_location.OUT_ENV, str(path))
        yield path


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory, out: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path_factory.mktemp("home")
    install_instance_config(home)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def code_server(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """A code server process, as `dagster dev` starts one; the launcher warmed up on it."""
    target = ModuleTarget(warm_location.__name__, None, str(ROOT), LOCATION)
    with WorkspaceProcessContext(instance, target) as context:
        warm_up(instance, context)
        yield context


def submit(instance: dg.DagsterInstance, code_server: WorkspaceProcessContext, job: dg.JobDefinition) -> str:
    """What the UI's launch does: create the run from the code server's job, submit it."""
    workspace = code_server.create_request_context()
    remote = workspace.get_code_location(LOCATION).get_repository("__repository__").get_full_job(job.name)
    run = instance.create_run_for_job(
        job, remote_job_origin=remote.get_remote_origin(), job_code_origin=remote.get_python_origin()
    )
    instance.submit_run(run.run_id, workspace)
    return run.run_id


def wait_finished(instance: dg.DagsterInstance, run_id: str, timeout_s: float = 120) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.status in FINISHED:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


def wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def engine_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.message for e in instance.all_logs(run_id) if e.message]


def warm_up(instance: dg.DagsterInstance, code_server: WorkspaceProcessContext) -> None:
    """The first launch starts the warm process and itself starts the default way."""
    launcher = instance.run_launcher
    assert isinstance(launcher, WarmRunLauncher)
    first = submit(instance, code_server, warm_location.quick)
    assert launcher.wait_until_warm(180)
    run = wait_finished(instance, first)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert not run.tags.get(WORKER_PID_TAG)  # started the default way: no pid of ours
    assert any("Starting the run worker the default way" in m for m in engine_messages(instance, first))


def test_a_launched_run_is_forked_from_the_warm_process_and_succeeds(instance, code_server, out):
    run_id = submit(instance, code_server, warm_location.quick)
    run = wait_finished(instance, run_id)

    assert run.status == dg.DagsterRunStatus.SUCCESS
    pid = int(run.tags[WORKER_PID_TAG])
    seen = json.loads((out / f"{run_id}.json").read_text())
    # The worker ran the job without importing the code location: the warm process had.
    assert seen["pid"] == pid and seen["imported_in"] != pid
    assert f"Started process for run (pid: {pid})." in engine_messages(instance, run_id)


def test_a_worker_killed_mid_run_fails_its_run(instance, code_server, out):
    run_id = submit(instance, code_server, warm_location.slow)
    wait_for(out / f"{run_id}.started")
    pid = int(instance.get_run_by_id(run_id).tags[WORKER_PID_TAG])
    os.kill(pid, signal.SIGKILL)
    run = wait_finished(instance, run_id, timeout_s=30)

    assert run.status == dg.DagsterRunStatus.FAILURE
    assert f"Run worker (pid {pid}) was killed by signal 9 before the run ended." in engine_messages(
        instance, run_id
    )


def test_terminate_cancels_a_forked_run(instance, code_server, out):
    launcher = instance.run_launcher

    run_id = submit(instance, code_server, warm_location.slow)
    wait_for(out / f"{run_id}.started")
    assert launcher.terminate(run_id)
    run = wait_finished(instance, run_id, timeout_s=60)

    assert run.status == dg.DagsterRunStatus.CANCELED
    assert not (out / "release").exists()  # the step was interrupted, not left to finish


def test_after_a_code_reload_no_run_starts_from_the_old_code(instance, code_server, out):
    launcher = instance.run_launcher
    before = next(iter(launcher._processes.values()))[1]

    code_server.reload_code_location(LOCATION)  # a new code server: what the UI's "Reload" does
    run_id = submit(instance, code_server, warm_location.quick)
    run = wait_finished(instance, run_id)

    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert not run.tags.get(WORKER_PID_TAG)  # the new warm process was still loading
    assert not before.alive
    assert launcher.wait_until_warm(180)
    again = wait_finished(instance, submit(instance, code_server, warm_location.quick))
    assert again.tags[WORKER_PID_TAG].isdigit()


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("no_such_module", "No module named 'enrichment_pipeline_tests.ops.no_such_module'"),
        ("threaded_location", "loading the code location started threads ['poller']: forking is unsafe"),
    ],
)
def test_a_code_location_the_warm_process_cannot_serve_gives_the_reason(module: str, reason: str) -> None:
    import sys

    from dagster._core.code_pointer import ModuleCodePointer

    origin = RepositoryPythonOrigin(
        executable_path=sys.executable,
        code_pointer=ModuleCodePointer(f"enrichment_pipeline_tests.ops.{module}", "defs", str(ROOT)),
    )
    process = _WarmProcess(origin, ready_timeout_s=120, reply_timeout_s=5)
    deadline = time.monotonic() + 120
    while process.error is None and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not process.ready.is_set() and not process.alive
    assert reason in (process.error or "")
    with pytest.raises(WarmStartUnavailable, match="could not load the code location"):
        process.start("some-run", ["api", "execute_run", "{}"])


@pytest.mark.parametrize("mode", ["mute", "refuse"])
def test_a_request_without_a_worker_pid_never_starts_the_run_twice(mode: str) -> None:
    """No answer: a worker may exist, so the launch fails (no default start beside it). An answer
    without a pid: no worker was forked, so the run may start the default way."""
    import sys

    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.errors import DagsterLaunchFailedError

    origin = RepositoryPythonOrigin(
        executable_path=sys.executable, code_pointer=ModuleCodePointer(mode, "defs", str(ROOT))
    )
    process = _WarmProcess(
        origin, 60, reply_timeout_s=1, module="enrichment_pipeline_tests.ops.mute_template"
    )
    assert process.ready.wait(60)

    if mode == "mute":
        with pytest.raises(DagsterLaunchFailedError, match="not started a second time"):
            process.start("run-1", ["api", "execute_run", "{}"])
        assert not process.alive  # the next launch gets a new warm process
    else:
        with pytest.raises(WarmStartUnavailable, match="Cannot allocate memory"):
            process.start("run-1", ["api", "execute_run", "{}"])
        assert process.alive
        process.stop()


def test_run_workers_are_forked_on_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    launcher = WarmRunLauncher()
    with pytest.raises(WarmStartUnavailable, match="forked on Linux only, not on darwin"):
        launcher._warm_process(None)  # type: ignore[arg-type]  # refused before the run is read
    assert not launcher._processes


def test_a_pid_given_at_launch_is_never_signalled(instance, code_server, out, monkeypatch):
    """Whoever launches a run can set its tags: `terminate` signals only a worker it forked."""
    import socket
    import subprocess
    import sys

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    forged = {WORKER_PID_TAG: str(bystander.pid), "enrichment/run_worker_host": socket.gethostname()}
    try:
        # Started the default way (here: as on a platform without fork): the tag is cleared.
        monkeypatch.setattr("sys.platform", "darwin")
        workspace = code_server.create_request_context()
        remote = workspace.get_code_location(LOCATION).get_repository("__repository__").get_full_job("quick")
        default = instance.create_run_for_job(
            warm_location.quick,
            tags=forged,
            remote_job_origin=remote.get_remote_origin(),
            job_code_origin=remote.get_python_origin(),
        )
        instance.submit_run(default.run_id, workspace)
        assert wait_finished(instance, default.run_id).tags[WORKER_PID_TAG] == ""

        # A run whose tag was never the launcher's own: terminate refuses to signal the pid.
        stuck = instance.create_run_for_job(
            warm_location.slow, tags=forged, status=dg.DagsterRunStatus.STARTED
        )
        assert not instance.run_launcher.terminate(stuck.run_id)
        assert any("no run worker of this launcher" in m for m in engine_messages(instance, stuck.run_id))
        assert bystander.poll() is None

        # Nor the warm process or a run's supervisor, which carry the worker's command line too.
        monkeypatch.undo()  # back on Linux: forked warm
        real = submit(instance, code_server, warm_location.slow)
        wait_for(out / f"{real}.started")
        worker = int(instance.get_run_by_id(real).tags[WORKER_PID_TAG])
        supervisor = _parent(worker)
        assert supervisor is not None
        warm = _parent(supervisor)
        assert warm is not None
        for pid in (supervisor, warm):
            tags = {**forged, WORKER_PID_TAG: str(pid)}
            started = dg.DagsterRunStatus.STARTED
            named = instance.create_run_for_job(warm_location.slow, tags=tags, status=started)
            assert not instance.run_launcher.terminate(named.run_id)
            os.kill(pid, 0)  # still alive
        assert instance.run_launcher.terminate(real)
        assert wait_finished(instance, real, timeout_s=60).status == dg.DagsterRunStatus.CANCELED
    finally:
        bystander.kill()
        bystander.wait()
