"""`domain_intake_sensor`: new domains from the drop folder and `raw.domain_requests`, enriched.

Each tick normalizes every entry (`lib/domains.py`), registers the new
domains as `domains` partitions and asks for ONE `enrich_domains` run over
them. New partitions are appended, so the tick's keys are one contiguous
range (`dagster/asset_partition_range_start/_end`); the run key is a hash of
the keys, so a tick evaluated twice never launches the same run twice.

Processed once, without trusting the tick to finish: the registered
partitions are the durable record. A file or request is settled (file moved
to `processed/`, row marked `accepted`) only on a tick that finds all its
domains already registered, i.e. after Dagster has stored the tick that
registered them. If a tick is lost (daemon killed before Dagster stored its
result), nothing was settled and the next tick does the same work again, with
the same run key. Junk is settled at once: rows `rejected` with the reason,
files' refused entries in a `.rejected.txt` report next to the moved file,
and both logged. Junk never becomes a partition.

Files are outside input: only regular files with one link are read (never
followed through a symbolic link), each on its own, and one that cannot be
used (a link, a FIFO, over 10 MB, not UTF-8, or any failure while handling it)
moves to `failed/` with the reason while the tick goes on; if even that move is
impossible it stays, recorded in the cursor as `stuck`, skipped until it
changes. Whatever a log line or report quotes of a file's name or entries is
escaped, capped at 200 characters and masked of every configured secret.

Files are moved rather than remembered in the cursor: the inbox shows what is
still waiting, the cursor stays small however many files ever arrived, and a
file dropped again under a used name is read again. The cursor holds only each
inbox file's size and mtime as seen last tick: a file is read once they are
unchanged for a whole interval, so a file still being copied is never read
half-written (clock-free, unlike an age test on a network share's mtimes).
Writers that can should upload under another suffix (`x.csv.part`) and rename.

Turn on: Dagster UI → Automation → `domain_intake_sensor` → toggle on (or
`dagster sensor start domain_intake_sensor`). Interval 60 s (`INTERVAL_SECONDS`).
With DuckDB the warehouse has one writer: while a run writes, the table is
read on a later tick (files are still handled).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from enrichment_pipeline.defs.operations.jobs import enrich_job, range_run_request
from enrichment_pipeline.defs.partitions import domains_partitions
from enrichment_pipeline.defs.resources import WarehouseResource
from enrichment_pipeline.lib import requests_intake as intake
from enrichment_pipeline.lib.domains import DomainFileError, Rejected, normalize_domains
from enrichment_pipeline.lib.partition_keys import SOURCE_TAG
from enrichment_pipeline.lib.redaction import Redactor, shown
from enrichment_pipeline.lib.requests_intake import IntakeError
from enrichment_pipeline.lib.warehouse import Warehouse, WarehouseError

INTAKE_SENSOR_NAME = "domain_intake_sensor"
INTERVAL_SECONDS = 60
DESCRIPTION = (
    "Registers new domains from the drop folder (DOMAIN_DROP_DIR, default data/inbox) and "
    "raw.domain_requests, and enriches them in one run. Junk is reported, never registered."
)
MAX_REQUESTS_PER_TICK = 5000
MAX_FILES_PER_TICK = 50
WAREHOUSE_WAIT_S = 5.0  # a tick never waits long for DuckDB's single writer lock


def _cursor_part(cursor: str | None, part: str) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        return {}  # a cursor from another version: files are only read one tick later
    files = data.get(part) if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _log_rejected(
    context: dg.SensorEvaluationContext, where: str, rejected: Sequence[Rejected], redactor: Redactor
) -> None:
    for bad in rejected[:20]:
        context.log.warning(
            f"{where}: not registering {shown(repr(bad.raw), redactor)}: {shown(bad.reason, redactor)}"
        )
    if len(rejected) > 20:
        context.log.warning(f"{where}: {len(rejected) - 20} more refused entries")


def _read_requests(
    context: dg.SensorEvaluationContext, wh: Warehouse, known: set[str], now: datetime, redactor: Redactor
) -> tuple[list[str], int]:
    """New keys of the pending requests; settles the rejected and the already registered ones."""
    new: list[str] = []
    rejected = 0
    with wh.transaction():
        decisions = []
        for request in intake.pending_requests(wh, MAX_REQUESTS_PER_TICK):
            valid, refused = normalize_domains([request.domain])
            if refused:
                rejected += 1
                _log_rejected(context, f"request {request.request_id}", refused, redactor)
                reason = shown(refused[0].reason, redactor)
                decisions.append(intake.Decision(request.request_id, "rejected", reason, None))
            elif valid[0] in known:
                decisions.append(intake.Decision(request.request_id, "accepted", None, valid[0]))
            else:
                new.append(valid[0])  # stays pending until a tick sees it registered
        intake.settle_requests(wh, decisions, now)
    return new, rejected


def _handle_file(
    context: dg.SensorEvaluationContext,
    drop: intake.DropFile,
    known: set[str],
    now: datetime,
    redactor: Redactor,
) -> tuple[list[str], int] | None:
    """(new domains, refused entries) of one file, or None once all its domains are known and it
    was moved to processed/."""
    entries = intake.read_drop_file(drop.path)  # a file that must not be read raises DomainFileError
    unregistered = [d for d in entries.domains if d not in known]
    if unregistered:
        context.log.info(
            f"{drop.shown}: {len(unregistered)} new domain(s), {len(entries.rejected)} refused "
            "(reported when the file is moved)"
        )
        return unregistered, len(entries.rejected)
    moved, report = intake.finish_file(drop, entries.rejected, now, redactor)
    _log_rejected(context, drop.shown, entries.rejected, redactor)
    context.log.info(
        f"{drop.shown}: done, moved to {shown(moved)}" + (f"; report {shown(report)}" if report else "")
    )
    return None


def _fail_file(
    context: dg.SensorEvaluationContext, drop: intake.DropFile, reason: str, now: datetime, redactor: Redactor
) -> bool:
    """Move a file that cannot be handled to failed/; False when even that is impossible."""
    try:
        moved, _ = intake.fail_file(drop, reason, now)
    except FileNotFoundError:
        context.log.info(f"{drop.shown}: gone before it was handled")
        return True
    except OSError as exc:
        context.log.error(
            f"{drop.shown}: not processed ({reason}) and not moved to {intake.FAILED}/ "
            f"({shown(exc, redactor)}); left in place and skipped until it changes"
        )
        return False
    context.log.warning(f"{drop.shown}: not processed, moved to {shown(moved)}: {reason}")
    return True


@dg.sensor(
    name=INTAKE_SENSOR_NAME,
    job=enrich_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=DESCRIPTION,
)
def domain_intake_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    now = datetime.now(UTC)
    known = set(context.instance.get_dynamic_partitions(domains_partitions.name))
    new: dict[str, None] = {}
    rejected = 0
    redactor = Redactor.from_environment()

    try:
        with Warehouse.open(warehouse.resolved_url(), lock_wait_s=WAREHOUSE_WAIT_S) as wh:
            keys, rejected = _read_requests(context, wh, known, now, redactor)
            new.update(dict.fromkeys(keys))
    except WarehouseError as exc:
        context.log.warning(f"{intake.REQUESTS} not read this tick: {shown(exc, redactor)}")

    inbox = intake.drop_dir()
    previous = _cursor_part(context.cursor, "files")
    stuck = _cursor_part(context.cursor, "stuck")
    seen: dict[str, str] = {}
    still_stuck: dict[str, str] = {}
    for drop in intake.scan_inbox(inbox):
        if stuck.get(drop.name) == drop.signature:
            still_stuck[drop.name] = drop.signature  # reported when it failed; retried once changed
            continue
        if len(seen) >= MAX_FILES_PER_TICK:
            break
        seen[drop.name] = drop.signature
        if previous.get(drop.name) != drop.signature:
            context.log.info(f"{drop.shown}: new or still changing; read when unchanged next tick")
            continue
        try:
            pending = _handle_file(context, drop, known, now, redactor)
        except FileNotFoundError:
            context.log.info(f"{drop.shown}: gone before it was handled")
            seen.pop(drop.name)
        except Exception as exc:  # one file never stops the tick: it goes to failed/ with the reason
            seen.pop(drop.name)
            plain = isinstance(exc, DomainFileError | IntakeError)  # their messages name file and problem
            reason = shown(exc if plain else f"{type(exc).__name__}: {exc}", redactor)
            if not _fail_file(context, drop, reason, now, redactor):
                still_stuck[drop.name] = drop.signature
        else:
            if pending is None:
                seen.pop(drop.name)
            else:
                new.update(dict.fromkeys(pending[0]))
                rejected += pending[1]

    state = {"files": seen, **({"stuck": still_stuck} if still_stuck else {})}
    cursor = json.dumps(state, sort_keys=True)
    keys = list(new)
    if not keys:
        return dg.SensorResult(skip_reason="no new domains", cursor=cursor)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]
    request = range_run_request(
        keys[0],
        keys[-1],
        run_key=f"intake-{digest}",
        tags={
            SOURCE_TAG: INTAKE_SENSOR_NAME,
            "enrichment/new_domains": str(len(keys)),
            "enrichment/refused_entries": str(rejected),
        },
    )
    context.log.info(f"registering {len(keys)} domain(s), one run over {keys[0]}..{keys[-1]}")
    return dg.SensorResult(
        run_requests=[request],
        dynamic_partitions_requests=[domains_partitions.build_add_request(keys)],
        cursor=cursor,
    )
