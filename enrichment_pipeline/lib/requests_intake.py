"""Where new domains come from in production: a drop folder and a requests table.

Pure Python over the `Warehouse` API (the Dagster sensor in
`defs/operations/sensors.py` drives it). Every entry goes through
`lib/domains.normalize_domains`; what it refuses is reported, never registered.

Drop folder (`DOMAIN_DROP_DIR`, default `data/inbox`): `.csv` and `.txt` files
(see `read_domain_file`), regular files of at most 10 MB. Hidden files and any
other suffix are ignored, so a writer can upload `x.csv.part` and rename it when
complete. A finished file is moved to `<inbox>/processed/<UTC time>-<name>`, with
a `<UTC time>-<name>.rejected.txt` report beside it when some entries were
refused. A file that cannot be used (a symbolic link, a FIFO, over 10 MB, not
UTF-8, ...) is moved to `<inbox>/failed/` with a `.reason.txt` beside it.

Requests table (`raw.domain_requests`): insert `domain` (raw text, any
spelling) and optionally `requested_by`; the row starts `pending` and ends
`accepted` (with `partition_key`, the normalized domain) or `rejected` (with
`reason`), with `processed_at` set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from enrichment_pipeline.lib.domains import MAX_FILE_BYTES, Rejected, normalize_domains, read_domain_file
from enrichment_pipeline.lib.redaction import Redactor, shown
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline.lib.warehouse.schema import DOMAIN_REQUESTS

__all__ = [
    "DROP_DIR_ENV",
    "FAILED",
    "PROCESSED",
    "REQUESTS",
    "DomainRequest",
    "DropFile",
    "drop_dir",
    "fail_file",
    "finish_file",
    "pending_requests",
    "read_drop_file",
    "scan_inbox",
    "settle_requests",
]

DROP_DIR_ENV = "DOMAIN_DROP_DIR"
DEFAULT_DROP_DIR = "data/inbox"
PROCESSED = "processed"
FAILED = "failed"
REASON_SUFFIX = ".reason.txt"
MAX_NAME_BYTES = 200
REQUESTS = DOMAIN_REQUESTS
SUFFIXES = (".csv", ".txt")
REPORT_SUFFIX = ".rejected.txt"


def drop_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`DOMAIN_DROP_DIR`, read when asked (never at import); relative paths are from the working dir."""
    env = os.environ if environ is None else environ
    return Path(env.get(DROP_DIR_ENV, "").strip() or DEFAULT_DROP_DIR)


# -- drop folder ------------------------------------------------------------------------------------------
#
# Anyone who can write to the inbox is outside input: a file may be a link to a secret, a FIFO, a
# huge or binary file, or have a name no encoding decodes. Only regular files with one link are read
# (opened with O_NOFOLLOW, checked after opening, capped at `MAX_FILE_BYTES`); every file is settled
# on its own (moved to `processed/`, or to `failed/` with the reason), through directory handles
# opened without following links, so neither a planted link nor an odd name redirects a write.


class IntakeError(OSError):
    """A drop-folder file that could not be settled; the message is safe to log."""


@dataclass(frozen=True)
class DropFile:
    path: Path
    signature: str  # size and modification time: changes while the file is still being written

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def shown(self) -> str:
        """The path as a log line may show it (undecodable bytes and control characters escaped)."""
        return shown(str(self.path))


def scan_inbox(inbox: Path) -> list[DropFile]:
    """The `.csv`/`.txt` entries directly in `inbox` (links and special files included, so they are
    refused with a reason rather than ignored), oldest first; nothing if it does not exist."""
    found = []
    try:
        entries = list(os.scandir(inbox))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or Path(name).suffix.lower() not in SUFFIXES:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # moved away between listing and stat
            continue
        path = inbox / name
        found.append((info.st_mtime_ns, name, DropFile(path, f"{info.st_size}:{info.st_mtime_ns}")))
    return [f for _, _, f in sorted(found, key=lambda t: (t[0], t[1]))]


@dataclass(frozen=True)
class FileEntries:
    domains: list[str]  # normalized, each once, in file order
    rejected: list[Rejected]


def read_drop_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> FileEntries:
    """A file's normalized domains and refused entries.

    Raises `DomainFileError` for a file that must not or cannot be read (a link, not a regular
    file, several hard links, over `max_bytes`, not UTF-8, bad CSV) and FileNotFoundError for one
    that vanished; the caller moves the first kind to `failed/`.
    """
    raw = read_domain_file(path, max_bytes=max_bytes, follow_symlinks=False)
    domains, rejected = normalize_domains(raw)
    return FileEntries(domains, rejected)


def _open_dir(path: Path, name: str | None = None, parent_fd: int | None = None) -> int:
    """A handle on a real directory (created if missing); a link or a file in its place is an error."""
    target = name if name is not None else str(path)
    if name is not None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent_fd)
    try:
        return os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        where = shown(str(path / name) if name is not None else str(path))
        raise IntakeError(f"{where} is not a usable directory ({exc.strerror}); fix or remove it") from None


def _free_name(dir_fd: int, wanted: str) -> str:
    # A name under NAME_MAX bytes however long the original (the timestamp prefix adds some).
    wanted = os.fsdecode(os.fsencode(wanted)[:MAX_NAME_BYTES])
    candidate, n = wanted, 1
    while True:
        try:
            os.stat(candidate, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
        n += 1
        candidate = f"{n}-{wanted}"


def _settle(
    drop: DropFile, subdir: str, now: datetime, note_suffix: str, note: str | None
) -> tuple[Path, Path | None]:
    """Move `drop` into `<inbox>/<subdir>/<UTC time>-<name>` and write `note` beside it."""
    inbox_fd = _open_dir(drop.path.parent)
    try:
        sub_fd = _open_dir(drop.path.parent, subdir, inbox_fd)
        try:
            stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            target = _free_name(sub_fd, f"{stamp}-{drop.name}")
            note_name = None
            if note is not None:
                note_name = _free_name(sub_fd, target + note_suffix)
                fd = os.open(
                    note_name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=sub_fd,
                )
                with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
                    out.write(note)
            os.replace(drop.name, target, src_dir_fd=inbox_fd, dst_dir_fd=sub_fd)
        finally:
            os.close(sub_fd)
    finally:
        os.close(inbox_fd)
    where = drop.path.parent / subdir
    return where / target, (where / note_name if note_name else None)


def finish_file(
    drop: DropFile, rejected: Sequence[Rejected], now: datetime, redactor: Redactor | None = None
) -> tuple[Path, Path | None]:
    """Move a handled file into `processed/` (a UTC timestamp keeps re-used names apart) and write
    the report of its refused entries next to it, each quoted through `redactor` and capped.
    Returns (new path, report path or None). Raises FileNotFoundError if the file vanished."""
    report = None
    if rejected:
        entries = "entry" if len(rejected) == 1 else "entries"
        lines = [f"# {len(rejected)} {entries} of {shown(drop.name)} not registered"]
        lines += [f"{shown(bad.raw, redactor)}\t{shown(bad.reason, redactor)}" for bad in rejected]
        report = "\n".join(lines) + "\n"
    return _settle(drop, PROCESSED, now, REPORT_SUFFIX, report)


def fail_file(drop: DropFile, reason: str, now: datetime) -> tuple[Path, Path | None]:
    """Move a file that could not be handled into `failed/`, with `<name>.reason.txt` beside it
    (the reason must already be safe to show). Raises IntakeError if even that is impossible."""
    note = f"# {shown(drop.name)} was not processed\n{reason}\n"
    return _settle(drop, FAILED, now, REASON_SUFFIX, note)


# -- requests table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainRequest:
    request_id: int
    domain: str  # as requested
    requested_by: str | None


def pending_requests(warehouse: Warehouse, limit: int) -> list[DomainRequest]:
    """The oldest `pending` requests (call inside `warehouse.transaction()` with `settle_requests`)."""
    frame = warehouse.query(
        f"SELECT request_id, domain, requested_by FROM {REQUESTS} "
        "WHERE status = 'pending' ORDER BY request_id LIMIT ?",
        [limit],
    )
    return [DomainRequest(int(i), "" if d is None else str(d), by) for i, d, by in frame.iter_rows()]


@dataclass(frozen=True)
class Decision:
    request_id: int
    status: str  # 'accepted' | 'rejected'
    reason: str | None
    partition_key: str | None


def settle_requests(warehouse: Warehouse, decisions: Sequence[Decision], now: datetime) -> int:
    """Write the decisions (status, reason, partition key, `processed_at = now`) in one statement per 500."""
    for start in range(0, len(decisions), 500):
        chunk = decisions[start : start + 500]
        values = ", ".join(
            "(CAST(? AS BIGINT), CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST(? AS VARCHAR))" for _ in chunk
        )
        args: list[object] = [now]
        for d in chunk:
            args += [d.request_id, d.status, d.reason, d.partition_key]
        warehouse.query(
            f"""UPDATE {REQUESTS} AS r
                SET processed_at = ?, status = v.status, reason = v.reason, partition_key = v.partition_key
                FROM (VALUES {values}) AS v(request_id, status, reason, partition_key)
                WHERE r.request_id = v.request_id AND r.status = 'pending'""",
            args,
        )
    return len(decisions)
