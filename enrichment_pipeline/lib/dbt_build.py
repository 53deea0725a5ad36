"""What a `dbt build` leaves for people: its log in a file, one line of counts, the failures.

dbt prints a line per model and test (150 lines for this project); a user of
the pipeline wants to know whether the marts are built and where to look when
they are not. So dbt's log goes to `logs/dbt.log` (next to a DuckDB warehouse,
else `data/logs/dbt.log`), and `run_results.json` becomes one `BuildSummary`:
"marts: 12 models, 62 tests passed in 1.7 s — log: data/logs/dbt.log", and on
failure the failing model or test with dbt's message.

Partial parsing: dagster-dbt runs every build in a fresh target directory and
seeds it with `<target>/partial_parse.msgpack`; dbt writes the updated state
there, so unless it is carried back, every build re-parses the whole project
against the state of `make dbt-manifest` (whose profile differs: no `--target`,
a relative DuckDB path). `keep_partial_parse` carries it back.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from enrichment_pipeline.lib.warehouse import duckdb_path

LOG_FILE = "dbt.log"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# Per-build target directories kept (the newest); older ones only cost disk.
KEEP_BUILD_DIRS = 5
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED = ("error", "fail", "runtime error")


def dbt_log_path(url: str, environ: Mapping[str, str] | None = None) -> Path:
    """`ENRICHMENT_DBT_LOG`, else `logs/dbt.log` next to a DuckDB warehouse, else `data/logs/dbt.log`."""
    env = os.environ if environ is None else environ
    override = env.get("ENRICHMENT_DBT_LOG", "").strip()
    if override:
        return Path(override).expanduser()
    if url.strip().lower().startswith("duckdb:"):
        return duckdb_path(url).expanduser().absolute().parent / "logs" / LOG_FILE
    return Path.cwd() / "data" / "logs" / LOG_FILE


def shown_path(path: Path) -> str:
    """A path as a person would type it: relative to the working directory when under it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _Tee(io.TextIOBase):
    """dbt's lines into the log file (timestamped, no colour codes), and to the terminal if asked."""

    def __init__(self, log: TextIO, echo: TextIO | None) -> None:
        self._log = log
        self._echo = echo
        self._pending = ""
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._echo is not None:
            self._echo.write(text)
        *complete, self._pending = (self._pending + text).split("\n")
        for line in complete:
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        line = _ANSI.sub("", line).rstrip()
        if line:
            self.lines += 1
            self._log.write(f"{time.strftime('%H:%M:%S')}  {line}\n")
        else:
            self._log.write("\n")

    def flush(self) -> None:
        self._log.flush()
        if self._echo is not None:
            self._echo.flush()

    def close_line(self) -> None:
        if self._pending:
            self._line(self._pending)
            self._pending = ""


@contextlib.contextmanager
def captured_log(path: Path, *, echo: bool = False) -> Iterator[_Tee]:
    """Send everything written to stdout (dagster-dbt echoes each dbt event there) to `path`.

    The file holds the last build's log (replaced each time). With `echo`, the
    lines still reach the terminal as well (the CLI's --verbose).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as log:
        tee = _Tee(log, sys.stdout if echo else None)
        try:
            with contextlib.redirect_stdout(tee):
                yield tee
        finally:
            tee.close_line()


@dataclass(frozen=True)
class NodeFailure:
    """A model or test that did not pass, with dbt's message."""

    kind: str  # model, test, seed, snapshot, ...
    name: str
    status: str
    message: str

    def line(self) -> str:
        message = " ".join((self.message or "").split())
        return (
            f"{self.kind} {self.name} {self.status}: {message}"
            if message
            else f"{self.kind} {self.name} {self.status}"
        )


@dataclass(frozen=True)
class BuildSummary:
    """The counts of one `dbt build`, read from its `run_results.json`."""

    models: int = 0
    models_failed: int = 0
    tests: int = 0
    tests_passed: int = 0
    tests_warned: int = 0
    tests_failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    log_path: Path | None = None
    failures: list[NodeFailure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # dbt's own error lines when nothing ran

    @property
    def success(self) -> bool:
        return not (self.models_failed or self.tests_failed or self.failures or self.errors)

    def line(self) -> str:
        """One line for the terminal, e.g. "marts: 12 models, 62 tests passed in 1.7 s — log: ..."."""
        log = f" — log: {shown_path(self.log_path)}" if self.log_path else ""
        took = f"in {self.seconds:.1f} s"
        if self.success:
            warned = f" ({self.tests_warned} warned)" if self.tests_warned else ""
            return f"marts: {self.models} models, {self.tests} tests passed{warned} {took}{log}"
        parts = []
        if self.models_failed:
            parts.append(f"{self.models_failed} of {self.models} models failed")
        if self.tests_failed:
            parts.append(f"{self.tests_failed} of {self.tests} tests failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if not parts:
            parts.append("dbt failed before building anything")
        return f"marts: {', '.join(parts)} {took}{log}"

    def failure_lines(self, limit: int = 10) -> list[str]:
        lines = [f.line() for f in self.failures] or list(self.errors)
        if len(lines) > limit:
            lines = [*lines[:limit], f"... and {len(lines) - limit} more (see the log)"]
        return lines

    def text(self) -> str:
        return "\n".join([self.line(), *(f"  {line}" for line in self.failure_lines())])

    def metadata(self) -> dict[str, Any]:
        """Plain values for Dagster metadata (the asset layer wraps the path)."""
        return {
            "dbt_models": self.models,
            "dbt_models_failed": self.models_failed,
            "dbt_tests": self.tests,
            "dbt_tests_passed": self.tests_passed,
            "dbt_tests_warned": self.tests_warned,
            "dbt_tests_failed": self.tests_failed,
            "dbt_seconds": round(self.seconds, 2),
            "dbt_summary": self.line(),
        }


def summarize(
    run_results: Mapping[str, Any] | None,
    *,
    seconds: float,
    log_path: Path | None = None,
    errors: list[str] | None = None,
    exit_code: int = 0,
) -> BuildSummary:
    """Counts per kind and status; failures in dbt's order. `errors`: dbt's error-level log lines,
    shown when no model or test failed yet dbt did (a compilation or connection error stops it
    early), as does a non-zero `exit_code`."""
    results = list((run_results or {}).get("results") or [])
    # Keyed by BuildSummary's field names.
    counts = dict.fromkeys(
        ("models", "models_failed", "tests", "tests_passed", "tests_warned", "tests_failed", "skipped"), 0
    )
    failures: list[NodeFailure] = []
    for result in results:
        unique_id = str(result.get("unique_id") or "")
        # model.<package>.<name>, test.<package>.<name>.<hash>
        parts = unique_id.split(".")
        kind, name = parts[0], parts[2] if len(parts) > 2 else unique_id
        status = str(result.get("status") or "").lower()
        if status == "skipped":
            counts["skipped"] += 1
        if kind == "test":
            counts["tests"] += 1
            if status == "pass":
                counts["tests_passed"] += 1
            elif status == "warn":
                counts["tests_passed"] += 1
                counts["tests_warned"] += 1
            elif status in _FAILED:
                counts["tests_failed"] += 1
        elif kind in ("model", "seed", "snapshot"):
            counts["models"] += kind == "model"
            if status in _FAILED:
                counts["models_failed"] += 1
        if status in _FAILED:
            failures.append(
                NodeFailure(
                    kind, name, "failed" if status == "fail" else status, str(result.get("message") or "")
                )
            )
    return BuildSummary(
        **counts,
        seconds=seconds,
        log_path=log_path,
        failures=failures,
        errors=_early_errors(failures, errors or [], exit_code),
    )


def _early_errors(failures: list[NodeFailure], errors: list[str], exit_code: int) -> list[str]:
    if failures:
        return []
    if errors:
        return list(dict.fromkeys(errors))
    if exit_code:
        return [f"dbt exited with code {exit_code}"]
    return []


def read_run_results(target_path: Path) -> dict[str, Any] | None:
    path = target_path / "run_results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def keep_partial_parse(build_target: Path, shared_target: Path) -> bool:
    """Carry the build's partial-parse state back to where the next build is seeded from.

    Written under a temporary name and renamed, so a concurrent build reads the
    old file or the new one, never half of one (dbt re-checks it anyway).
    """
    source = build_target / PARTIAL_PARSE_FILE
    if not source.exists() or build_target.resolve() == shared_target.resolve():
        return False
    shared_target.mkdir(parents=True, exist_ok=True)
    temporary = shared_target / f".{PARTIAL_PARSE_FILE}.{os.getpid()}.tmp"
    shutil.copyfile(source, temporary)
    os.replace(temporary, shared_target / PARTIAL_PARSE_FILE)
    return True


def prune_build_dirs(shared_target: Path, prefix: str, keep: int = KEEP_BUILD_DIRS) -> int:
    """Remove all but the newest `keep` per-build target directories named `<prefix>-*`."""
    dirs = [p for p in shared_target.glob(f"{prefix}-*") if p.is_dir()]
    dirs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = 0
    for old in dirs[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        removed += 1
    return removed
