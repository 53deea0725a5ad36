"""Where new domains come from in production: a drop folder and a requests table.

Pure Python over the `Warehouse` API (the Dagster sensor in
`defs/operations/sensors.py` drives it). Every entry goes through
`lib/domains.normalize_domains`; what it refuses is reported, never registered.

Drop folder (`DOMAIN_DROP_DIR`, default `data/inbox`): `.csv` and `.txt` files
(see `read_domain_file`). Hidden files and any other suffix are ignored, so a
writer can upload `x.csv.part` and rename it when complete. A finished file is
moved to `<inbox>/processed/<UTC time>-<name>`, with a
`<UTC time>-<name>.rejected.txt` report beside it when some entries were refused.

Requests table (`raw.domain_requests`): insert `domain` (raw text, any
spelling) and optionally `requested_by`; the row starts `pending` and ends
`accepted` (with `partition_key`, the normalized domain) or `rejected` (with
`reason`), with `processed_at` set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from enrichment_pipeline.lib.domains import Rejected, normalize_domains, read_domain_file
from enrichment_pipeline.lib.warehouse import Warehouse
from enrichment_pipeline.lib.warehouse.schema import DOMAIN_REQUESTS

__all__ = [
    "DROP_DIR_ENV",
    "PROCESSED",
    "REQUESTS",
    "DomainRequest",
    "DropFile",
    "drop_dir",
    "finish_file",
    "pending_requests",
    "read_drop_file",
    "scan_inbox",
    "settle_requests",
]

DROP_DIR_ENV = "DOMAIN_DROP_DIR"
DEFAULT_DROP_DIR = "data/inbox"
PROCESSED = "processed"
REQUESTS = DOMAIN_REQUESTS
SUFFIXES = (".csv", ".txt")
REPORT_SUFFIX = ".rejected.txt"


def drop_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`DOMAIN_DROP_DIR`, read when asked (never at import); relative paths are from the working dir."""
    env = os.environ if environ is None else environ
    return Path(env.get(DROP_DIR_ENV, "").strip() or DEFAULT_DROP_DIR)


# -- drop folder ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DropFile:
    path: Path
    signature: str  # size and modification time: changes while the file is still being written

    @property
    def name(self) -> str:
        return self.path.name


def scan_inbox(inbox: Path) -> list[DropFile]:
    """The `.csv`/`.txt` files directly in `inbox`, oldest first (nothing if it does not exist)."""
    if not inbox.is_dir():
        return []
    found = []
    for path in inbox.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away between listing and stat
            continue
        found.append((stat.st_mtime_ns, path.name, DropFile(path, f"{stat.st_size}:{stat.st_mtime_ns}")))
    return [f for _, _, f in sorted(found, key=lambda t: (t[0], t[1]))]


@dataclass(frozen=True)
class FileEntries:
    domains: list[str]  # normalized, each once, in file order
    rejected: list[Rejected]


def read_drop_file(path: Path) -> FileEntries:
    """A file's normalized domains and refused entries; an unreadable file is one refused entry."""
    try:
        raw = read_domain_file(path)
    except (OSError, ValueError) as exc:
        return FileEntries([], [Rejected(raw=path.name, reason=f"file not read: {exc}")])
    domains, rejected = normalize_domains(raw)
    return FileEntries(domains, rejected)


def finish_file(drop: DropFile, rejected: Sequence[Rejected], now: datetime) -> tuple[Path, Path | None]:
    """Move a handled file into `processed/` (a UTC timestamp keeps re-used names apart) and write
    the report of its refused entries next to it. Returns (new path, report path or None)."""
    processed = drop.path.parent / PROCESSED
    processed.mkdir(exist_ok=True)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = processed / f"{stamp}-{drop.name}"
    n = 1
    while target.exists():
        n += 1
        target = processed / f"{stamp}-{n}-{drop.name}"
    report = None
    if rejected:
        report = target.with_name(target.name + REPORT_SUFFIX)
        lines = [
            f"# {len(rejected)} entr{'y' if len(rejected) == 1 else 'ies'} of {drop.name} not registered"
        ]
        lines += [f"{bad.raw}\t{bad.reason}" for bad in rejected]
        report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    drop.path.replace(target)
    return target, report


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
