"""`enrichment-pipeline`: enrich domains through the Dagster graph, print the leaderboard."""

from __future__ import annotations

import argparse
import atexit
import csv
import io
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from enrichment_pipeline.lib import cost, settings
from enrichment_pipeline.lib.dagster_home import ensure_dagster_home
from enrichment_pipeline.lib.domains import (
    DomainFileError,
    Rejected,
    display_domain,
    normalize_domains,
    read_domain_file,
)
from enrichment_pipeline.lib.gc_policy import collector_paused_while_loading
from enrichment_pipeline.lib.partition_keys import contiguous_ranges
from enrichment_pipeline.lib.providers.registry import configured_providers
from enrichment_pipeline.lib.redaction import Redactor, shown
from enrichment_pipeline.lib.warehouse import Warehouse, WarehouseError, duckdb_path

EXIT_USAGE = 2
EXIT_RUN_FAILED = 1
# Without a terminal (CI logs, pipes) a long fetch reports a plain line this often.
PLAIN_PROGRESS_EVERY_S = 10.0
UI_URL = "http://127.0.0.1:3000"

# Piped output (CI logs, `| less`) gets a fixed wide layout instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


class UsageError(Exception):
    """A problem with what the user asked for: one line, non-zero exit, no traceback."""


def _dagster_home() -> Path:
    return ensure_dagster_home()


def _collect(domains: Sequence[str], file: str | None) -> tuple[list[str], list[Rejected]]:
    raw = list(domains)
    if file:
        try:
            entries = read_domain_file(file)
        except FileNotFoundError:
            raise UsageError(f"no such file: {file}") from None
        except DomainFileError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
        if not entries:
            raise UsageError(f"{file}: no domain entries (only blank lines, comments or a header)")
        raw.extend(entries)
    if not raw:
        raise UsageError("give domains as arguments or with --file PATH")
    return normalize_domains(raw)


def _refused(bad: Rejected) -> str:
    """A refused entry as printed: capped, escaped, every configured secret masked (rich-escaped)."""
    redactor = Redactor.from_environment()
    return f"{escape(shown(repr(bad.raw), redactor))}: {escape(shown(bad.reason, redactor))}"


def provider_rates(stats: Mapping[str, Any], elapsed: float) -> str:
    """Calls so far per provider and their rate, e.g. "builtwith 120 calls (9.8/s) · yahoo 3 (1.0/s)"."""
    parts = []
    for name, s in stats.items():
        if not s.calls:
            continue
        rate = f" ({s.calls / elapsed:.1f}/s)" if elapsed > 0 else ""
        parts.append(f"{name} {s.calls}{' calls' if not parts else ''}{rate}")
    return " · ".join(parts)


class _FetchProgress(Progress):
    """The bar, and under it each provider's calls and rate (read live at every refresh)."""

    def __init__(self, reporter: Any, *columns: Any, **kwargs: Any) -> None:
        self._reporter = reporter  # before super(): rich renders once while constructing
        super().__init__(*columns, **kwargs)

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        line = self._reporter.rates()
        if line:
            yield Text(f"  {line}", style="dim")


def _make_reporter(out: Console, *, every_s: float = PLAIN_PROGRESS_EVERY_S):
    from enrichment_pipeline.defs.resources import ProgressReporter

    class Reporter(ProgressReporter):
        """A live bar on a terminal; elsewhere (CI logs) a plain line every `every_s` seconds."""

        def __init__(self) -> None:
            self.stats: Mapping[str, Any] = {}
            self.started = time.monotonic()
            self.task = None
            self.last_line = self.started
            self.progress: Progress | None = None

        def watch(self, stats: Mapping[str, Any]) -> None:
            self.stats = stats
            self.started = self.last_line = time.monotonic()

        def rates(self) -> str:
            return provider_rates(self.stats, time.monotonic() - self.started)

        def update(self, done: int, total: int) -> None:
            if self.progress is not None:
                if self.task is None:
                    self.task = self.progress.add_task("fetching", total=total)
                self.progress.update(self.task, completed=done, total=total)
                return
            now = time.monotonic()
            if done < total and now - self.last_line >= every_s:
                self.last_line = now
                rates = self.rates()
                line = f"fetched {done}/{total} domains in {now - self.started:.0f} s"
                out.print(f"{line} · {rates}" if rates else line, highlight=False)

    return Reporter()


def _check_live_keys(mode: settings.Mode) -> None:
    """Live mode without keys: say up front what to set; refuse when no provider can be called."""
    if mode != "live":
        return
    active, skipped = configured_providers(mode)
    if not skipped:
        return
    wanted = ", ".join(f"{name.upper()}_API_KEY" for name in skipped)
    if not active:
        raise UsageError(
            f"live mode, but no provider can be called: set {wanted} "
            "(or ENRICHMENT_MODE=sandbox for the offline simulator)"
        )
    called = ", ".join(p.name for p, _ in active)
    if all(not p.needs_key for p, _ in active):
        err.print(
            f"[yellow]live mode with no API key set[/]: only {escape(called)} (no key needed) will be "
            f"called. Set {escape(wanted)} to call the others, or use ENRICHMENT_MODE=sandbox."
        )
    else:
        err.print(
            f"[yellow]live mode[/]: calling {escape(called)}; skipping the others (set {escape(wanted)})"
        )


def enrich(args: argparse.Namespace) -> int:
    from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES, build_provider
    from enrichment_pipeline.lib.scoring.loader import load_model
    from enrichment_pipeline.lib.waterfall import load_waterfall

    # Every configuration problem is a usage error (one line naming the file, exit 2) before
    # anything runs: settings, the waterfall, each provider's own files, the ICP model.
    mode = settings.enrichment_mode()
    enabled = settings.enabled_providers(PROVIDER_NAMES)
    settings.sandbox_epoch()
    load_waterfall().check_providers(PROVIDER_NAMES)
    for name in enabled:
        build_provider(name)
    load_model()
    _check_live_keys(mode)
    valid, rejected = _collect(args.domains, args.file)
    for bad in rejected:
        err.print(f"[yellow]invalid[/] {_refused(bad)}")
    if not valid:
        raise UsageError("no valid domain to enrich")
    url = settings.warehouse_url()
    if args.dry_run or cost.max_cost_usd() is not None:
        from datetime import UTC, datetime

        estimate = cost.estimate_url(url, valid, datetime.now(UTC), mode, force=bool(args.force))
        if args.dry_run:
            _print_estimate(estimate, console)
            console.print("dry run: no partition registered, no provider called")
            return 0
        try:
            cost.enforce_budget(estimate)
        except cost.BudgetExceeded as exc:
            _print_estimate(estimate, err)
            raise UsageError(f"refusing to run: {exc}") from None

    _dagster_home()
    # Dagster, the definitions, the instance's storage and the job's asset graph: objects that live
    # as long as the process, loaded with the collector paused, then frozen (lib/gc_policy.py).
    with collector_paused_while_loading():
        import dagster as dg

        # The enrichment part only: no dbt import unless the marts are built (below).
        from enrichment_pipeline.defs.enrichment import enrichment_defs
        from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, MARTS_JOB_NAME
        from enrichment_pipeline.defs.partitions import domains_partitions
        from enrichment_pipeline.defs.raw.assets import RAW_KEY

        started = time.perf_counter()
        instance = dg.DagsterInstance.get()
        job = enrichment_defs.resolve_job_def(ENRICH_JOB_NAME)
    # As a context: this instance's state storage is the one definitions are loaded against
    # (not whatever an earlier instance of this process left current), and it is disposed after.
    with instance:
        name = domains_partitions.name
        known = set(instance.get_dynamic_partitions(name))
        new = [d for d in valid if d not in known]
        if new:
            instance.add_dynamic_partitions(name, new)
        due, cached_keys = _due_domains(url, valid, mode, force=bool(args.force))
        # Dagster's own event log goes to the UI (`make dev`); --verbose prints it here as well.
        loggers = {"console": {"config": {"log_level": "INFO" if args.verbose else "CRITICAL"}}}
        run_config = {
            "ops": {"raw__provider_responses": {"config": {"force": bool(args.force)}}},
            "loggers": loggers,
        }
        quiet = {"loggers": loggers}
        metadata: list[dict] = []
        reporter = _make_reporter(err)
        progress = _FetchProgress(
            reporter,
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        )
        if err.is_terminal:
            reporter.progress = progress
        marts_line = None
        with progress:
            # Domains answered entirely from the cache need no partitioned run (Dagster writes two
            # events per partition); the tables downstream are still rebuilt once, below.
            ranges = contiguous_ranges(instance.get_dynamic_partitions(name), due) if due else []
            downstream = {key for key in job.asset_layer.selected_asset_keys if key != RAW_KEY}
            runs = [(job.get_subset(asset_selection={RAW_KEY}), r) for r in ranges[:-1]]
            runs.append((job, ranges[-1]) if ranges else (job.get_subset(asset_selection=downstream), None))
            for run_job, span in runs:
                tags = {"enrichment/source": "cli"}
                if span is not None:
                    tags |= {
                        "dagster/asset_partition_range_start": span[0],
                        "dagster/asset_partition_range_end": span[1],
                    }
                result = run_job.execute_in_process(
                    run_config=run_config if span is not None else quiet,
                    instance=instance,
                    tags=tags,
                    resources={"progress": reporter},
                    raise_on_error=False,
                )
                if not result.success:
                    return _run_failed(result)
                events = result.asset_materializations_for_node("raw__provider_responses")
                if events:
                    metadata.append({k: v.value for k, v in events[0].metadata.items()})
            if not args.no_marts:
                from enrichment_pipeline.definitions import defs
                from enrichment_pipeline.defs.dbt.factory import ASSETS_NAME as DBT_STEP

                marts_config = {**quiet, "ops": {DBT_STEP: {"config": {"echo_log": bool(args.verbose)}}}}
                marts = defs.resolve_job_def(MARTS_JOB_NAME).execute_in_process(
                    run_config=marts_config,
                    instance=instance,
                    tags={"enrichment/source": "cli"},
                    raise_on_error=False,
                )
                if not marts.success:
                    err.print("[yellow]the enrichment is stored, but building the marts failed:[/]")
                    return _run_failed(marts)
                built = marts.asset_materializations_for_node(DBT_STEP)
                if built and "dbt_summary" in built[0].metadata:
                    marts_line = str(built[0].metadata["dbt_summary"].value)

    seconds = time.perf_counter() - started
    with Warehouse.open(url, read_only=True) as wh:
        statuses = wh.query(
            "SELECT p.status, count(*) AS n FROM marts.company_profiles p "
            "JOIN unnest(?::VARCHAR[]) AS wanted(domain) USING (domain) GROUP BY p.status",
            [valid],
        )
    counts = {s: int(n) for s, n in statuses.iter_rows()}
    totals = {
        k: sum(m.get(k, 0) or 0 for m in metadata) for k in ("calls", "cache_hits", "retries", "cost_usd")
    }
    totals["cache_hits"] += cached_keys
    if marts_line:
        console.print(escape(marts_line), highlight=False)
    _print_summary(mode, counts, rejected, totals, seconds, metadata)
    _print_next_steps(url, marts_built=marts_line is not None)
    return 0


def _due_domains(url: str, domains: list[str], mode: settings.Mode, *, force: bool) -> tuple[list[str], int]:
    """The domains a run would call a provider for, and the cached answers of the others."""
    if force:
        return list(domains), 0
    from datetime import UTC, datetime

    from enrichment_pipeline.lib.waterfall import load_waterfall

    if url.startswith("duckdb:") and not duckdb_path(url).exists():
        return list(domains), 0
    providers, _ = configured_providers(mode)
    now = datetime.now(UTC)
    with Warehouse.open(url, read_only=url.startswith("duckdb:")) as wh:
        needs = cost.domain_needs(wh, domains, now, mode, providers, load_waterfall())
        # A domain a stopped run left in the journal needs its run to complete it, even with
        # every answer already paid for.
        journaled = wh.journaled_domains(domains)
        due = [d for d in domains if d in journaled or any(n.calls_max > 0 for n in needs[d].values())]
        settled = set(domains) - set(due)
        cached_keys = 0
        if settled:
            for provider, _ in providers:
                fresh, _ = cost.cache_state(wh, provider.name, sorted(settled), mode, now)
                cached_keys += len(fresh)
    return due, cached_keys


def _run_failed(result) -> int:
    """Which step failed and why, in a few lines; the full log is in the UI."""
    failures = [e for e in result.all_events if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]
    steps = dict.fromkeys(e.step_key or "run" for e in failures)
    err.print(
        f"[red]run {result.run_id} failed[/] at {escape(', '.join(steps))}; "
        "`make dev` shows the full log in the UI"
    )
    for event in failures:
        data = event.step_failure_data if event.event_type_value == "STEP_FAILURE" else None
        if data is None:
            continue
        user = data.user_failure_data
        if user is not None and user.description:
            text = user.description
        else:
            text = data.error.message if data.error else ""
        for line in str(text or "").strip().splitlines()[:12]:
            err.print(f"  {escape(line)}", highlight=False)
    return EXIT_RUN_FAILED


def _print_estimate(estimate, out: Console) -> None:
    """The dry-run table: per provider, calls and cost (min..max), and what is left of today's quota."""

    def span(low, high, fmt=str) -> str:
        return fmt(low) if low == high else f"{fmt(low)}..{fmt(high)}"

    def usd(value: float) -> str:
        return f"{value:.2f}"

    forced = ", --force: cache ignored" if estimate.forced else ""
    table = Table(title=f"cost estimate: {estimate.domains} domain(s) ({estimate.mode} mode{forced})")
    for column in ("provider", "level", "cached", "calls", "cost (USD)", "quota left today"):
        table.add_column(column, no_wrap=True, justify="left" if column == "provider" else "right")
    for p in estimate.providers:
        left = "no quota" if p.quota_left is None else str(p.quota_left)
        if not p.within_quota:
            left = f"[red]{left} (over)[/]"
        table.add_row(
            p.provider,
            "-" if p.level is None else str(p.level),
            str(p.cached_domains),
            span(p.calls_min, p.calls_max),
            span(p.cost_min, p.cost_max, usd),
            left,
        )
    table.add_row(
        "total",
        "",
        "",
        span(estimate.calls_min, estimate.calls_max),
        span(estimate.cost_min, estimate.cost_max, usd),
        "",
    )
    out.print(table)
    out.print(
        "Level 0 is called for every domain the cache does not answer; lower levels only where the "
        "providers above leave a field group empty, so their calls are an upper bound "
        "(retries not counted). Cached answers cost nothing."
    )
    for name, reason in estimate.skipped.items():
        out.print(f"[yellow]{name} skipped[/]: {escape(reason)}")
    budget = cost.max_cost_usd()
    if budget is not None:
        verdict = "within" if estimate.cost_max <= budget else "[red]over[/]"
        out.print(
            f"{cost.BUDGET_ENV}={budget:.2f}: the upper bound {estimate.cost_max:.2f} is {verdict} budget"
        )


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _print_summary(mode, counts, rejected, totals, seconds, metadata) -> None:
    domains = " · ".join(
        f"{label.replace('_', ' ')} {counts.get(label, 0)}"
        for label in ("enriched", "partial", "not_found", "failed")
    )
    invalid = f" · invalid {len(rejected)}" + (" (listed above)" if rejected else "")
    console.print(f"[bold]enrichment summary[/] ({mode} mode, {seconds:.1f} s)", highlight=False)
    console.print(f"  domains   {domains}{invalid}", highlight=False)
    console.print(
        f"  calls     provider calls {totals['calls']} · cache hits {totals['cache_hits']} · "
        f"retries {totals['retries']} · cost (USD) {totals['cost_usd']:.2f}",
        highlight=False,
    )
    # Per provider, only when it was called: the HTTP round trip, and apart from it the time
    # calls waited for a rate-limit slot, so a slow provider and a tight limit read differently.
    for name, figures in _per_provider(metadata).items():
        calls = figures["calls"]
        console.print(
            f"  {name:<10}{calls} call{'s' if calls != 1 else ''} · latency p50 "
            f"{_ms(figures.get('latency_p50_ms'))}, p95 {_ms(figures.get('latency_p95_ms'))} · "
            f"rate-limit wait p50 {_ms(figures.get('wait_p50_ms'))}, p95 {_ms(figures.get('wait_p95_ms'))}",
            highlight=False,
        )
    for m in metadata:
        for name, reason in (m.get("skipped_providers") or {}).items():
            console.print(f"  [yellow]{name} skipped[/]: {escape(str(reason))}")
        for name, reason in (m.get("disabled_providers") or {}).items():
            console.print(f"  [red]{name} stopped[/]: {escape(str(reason))}")
    if counts.get("partial") or counts.get("failed"):
        console.print("  Some providers did not answer for some domains; see raw.provider_responses.")


def _per_provider(metadata: list[dict]) -> dict[str, dict[str, Any]]:
    """Each called provider's figures over the runs of one `enrich` (one per partition range):
    calls added up; percentiles from the run that made most calls, p95 the highest seen."""
    merged: dict[str, dict[str, Any]] = {}
    for m in metadata:
        for key, value in m.items():
            if not key.startswith("provider/") or not isinstance(value, dict) or not value.get("calls"):
                continue
            name = key.removeprefix("provider/")
            before = merged.get(name)
            if before is None:
                merged[name] = dict(value)
                continue
            best = value if value["calls"] > before["calls"] else before
            combined = {**best, "calls": before["calls"] + value["calls"]}
            for p95 in ("latency_p95_ms", "wait_p95_ms"):
                seen = [v for v in (before.get(p95), value.get(p95)) if v is not None]
                combined[p95] = max(seen) if seen else None
            merged[name] = combined
    return merged


def _program() -> str:
    """How the user called us, so the suggested commands can be pasted as they are."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is None or argv0.name != "enrichment-pipeline":
        return "enrichment-pipeline"
    try:
        return str(argv0.absolute().relative_to(Path.cwd()))
    except ValueError:
        return "enrichment-pipeline"


def _print_next_steps(url: str, *, marts_built: bool) -> None:
    from enrichment_pipeline.lib.dbt_build import shown_path
    from enrichment_pipeline.lib.serving import serving_path

    steps = [
        ("make dev", f"open the Dagster UI ({UI_URL}): runs, assets, metadata"),
        (f"{_program()} scores --top 25", "read the ICP leaderboard (--format csv|json)"),
    ]
    if marts_built:
        serving = shown_path(serving_path(url))
        steps.append((serving, "the marts for BI tools (read-only copy, swapped atomically)"))
    width = max(len(command) for command, _ in steps)
    console.print("next:", highlight=False)
    for command, what in steps:
        console.print(f"  [bold]{escape(command):<{width}}[/]  {what}", highlight=False)


LEADERBOARD_SQL = """
SELECT s.domain, s.icp_score, s.icp_tier, p.status, p.monthly_visits, p.search_vendor,
       p.ecommerce_platform, s.score_reasons
FROM marts.icp_scores s JOIN marts.company_profiles p USING (domain)
ORDER BY s.icp_score DESC, s.domain
LIMIT ?
"""


def scores(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    with Warehouse.open(settings.warehouse_url(), read_only=True) as wh:
        if not wh.has_table("marts.icp_scores"):
            raise UsageError("no scores yet: run `enrichment-pipeline enrich` first")
        board = wh.query(LEADERBOARD_SQL, [args.top])
    # The key stays punycode (joins, the API); people read the Unicode form beside it.
    rows = [
        {
            "domain": r["domain"],
            "domain_unicode": display_domain(r["domain"]),
            **{k: v for k, v in r.items() if k != "domain"},
            "score_reasons": json.loads(r["score_reasons"] or "[]"),
        }
        for r in board.iter_rows(named=True)
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["domain", "domain_unicode"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "score_reasons": "; ".join(r["score_reasons"])})
        print(out.getvalue(), end="")
    else:
        table = Table(title="ICP leaderboard")
        cells = []
        for i, r in enumerate(rows, 1):
            shown = r["domain_unicode"]
            if shown != r["domain"]:
                shown = f"{shown} ({r['domain']})"
            visits = f"{r['monthly_visits']:,.0f}" if r["monthly_visits"] is not None else "-"
            cells.append(
                [
                    str(i),
                    shown,
                    f"{r['icp_score']:.1f}",
                    r["icp_tier"],
                    r["status"],
                    visits,
                    r["search_vendor"] or "-",
                    "; ".join(r["score_reasons"][:2]),
                ]
            )
        # Every column keeps its full width; only the reasons are cut to what is left.
        used = 4  # the outer borders and the reasons column's padding
        for n, column in enumerate(("#", "domain", "score", "tier", "status", "visits/mo", "search")):
            width = max([len(column), *(len(row[n]) for row in cells)])
            table.add_column(column, no_wrap=True, min_width=width)
            used += width + 3
        left = max(20, min(70, console.width - used))
        table.add_column("top reasons", overflow="ellipsis", no_wrap=True, max_width=left)
        for row in cells:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
    return 0


def _key_store():
    from enrichment_pipeline.lib.api_keys import KeyStore
    from enrichment_pipeline.lib.api_state import StateStore, state_path

    return KeyStore(StateStore(state_path()))


def api_keys_create(args: argparse.Namespace) -> int:
    from enrichment_pipeline.lib.api_keys import ApiKeyError, parse_scopes

    try:
        key, token = _key_store().create(args.name, parse_scopes(args.scopes), args.tier)
    except ApiKeyError as exc:
        raise UsageError(str(exc)) from None
    err.print(
        f"created API key {key.prefix} ({escape(key.name)}, scopes {','.join(key.scopes)}, tier {key.tier}); "
        "it is shown once, below: store it now"
    )
    # Alone on the last line of stdout, so scripts can capture it with `| tail -n1`.
    print(token, flush=True)
    return 0


def api_keys_list(args: argparse.Namespace) -> int:
    keys = _key_store().list()
    if args.format == "json":
        print(json.dumps([k.public() for k in keys], indent=2))
        return 0
    table = Table(title="API keys")
    for column in ("id", "prefix", "name", "scopes", "tier", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=True)
    for k in keys:
        table.add_row(
            k.id,
            k.prefix,
            k.name,
            ",".join(k.scopes),
            k.tier,
            k.created_at,
            k.last_used_at or "-",
            k.revoked_at or "-",
        )
    console.print(table)
    return 0


def api_keys_revoke(args: argparse.Namespace) -> int:
    from enrichment_pipeline.lib.api_keys import ApiKeyError

    try:
        key = _key_store().revoke(args.id)
    except ApiKeyError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"revoked API key {key.prefix} ({escape(key.name)})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enrichment-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_enrich = sub.add_parser("enrich", help="normalize, register and enrich domains in one Dagster run")
    p_enrich.add_argument("domains", nargs="*", metavar="DOMAIN")
    p_enrich.add_argument("--file", help="a .txt (one domain per line) or .csv file of domains")
    p_enrich.add_argument(
        "--force", action="store_true", help="ignore cached answers and call providers again"
    )
    p_enrich.add_argument(
        "--no-marts", action="store_true", help="skip the dbt marts build and the serving file after the run"
    )
    p_enrich.add_argument(
        "--dry-run",
        action="store_true",
        help="print the estimated calls and cost per provider, then exit without registering or calling",
    )
    p_enrich.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print everything: Dagster's event log and dbt's own log (otherwise in data/logs/dbt.log)",
    )
    p_enrich.set_defaults(func=enrich)
    p_scores = sub.add_parser("scores", help="print the ICP leaderboard")
    p_scores.add_argument("--top", type=int, default=25)
    p_scores.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p_scores.set_defaults(func=scores)
    p_keys = sub.add_parser("api-keys", help="create, list and revoke keys for the read API")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="create a key; prints it once, alone on the last line")
    p_create.add_argument("--name", required=True, help="who or what uses the key")
    p_create.add_argument("--scopes", default="read", help="comma-separated: read, enrich (default: read)")
    p_create.add_argument("--tier", choices=("standard", "power", "admin"), default="standard")
    p_create.set_defaults(func=api_keys_create)
    p_list = keys_sub.add_parser("list", help="list keys (prefix, scopes, tier, last used; never the key)")
    p_list.add_argument("--format", choices=("table", "json"), default="table")
    p_list.set_defaults(func=api_keys_list)
    p_revoke = keys_sub.add_parser("revoke", help="revoke a key by id (or prefix)")
    p_revoke.add_argument("id")
    p_revoke.set_defaults(func=api_keys_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster flags beta APIs (backfill policies) on every import; users can't act on that.
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, settings.SettingsError, WarehouseError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted: completed domains are saved; run again to continue")
        return 130


def run() -> None:
    """The `enrichment-pipeline` command: `main`, then an exit without the interpreter's teardown.

    Tearing down garbage-collects every object the run left behind (a 1,000-domain enrichment
    leaves its events and answers: 0.6-0.7 s of the command's time) for nothing: warehouses and
    the Dagster instance are closed by their context managers before `main` returns. Exit
    handlers still run and output is flushed; with any other thread still alive the normal exit
    is taken instead, so no work is cut short.
    """
    code = main()
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        # The reader went away (`| head`) or the disk is full: Python's own exit says 120 then.
        code = code or 120
    os._exit(code)


if __name__ == "__main__":
    run()
