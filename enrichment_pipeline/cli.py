"""`enrichment-pipeline`: enrich domains through the Dagster graph, print the leaderboard."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from enrichment_pipeline.lib import cost, settings
from enrichment_pipeline.lib.dagster_home import ensure_dagster_home
from enrichment_pipeline.lib.domains import Rejected, normalize_domains, read_domain_file
from enrichment_pipeline.lib.partition_keys import contiguous_ranges
from enrichment_pipeline.lib.warehouse import Warehouse, WarehouseError, duckdb_path

EXIT_USAGE = 2
EXIT_RUN_FAILED = 1

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
            raw.extend(read_domain_file(file))
        except FileNotFoundError:
            raise UsageError(f"no such file: {file}") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {file}: {exc}") from None
    if not raw:
        raise UsageError("give domains as arguments or with --file PATH")
    return normalize_domains(raw)


def _progress_reporter(progress: Progress):
    from enrichment_pipeline.defs.resources import ProgressReporter

    class BarReporter(ProgressReporter):
        def __init__(self) -> None:
            self.task = None

        def update(self, done: int, total: int) -> None:
            if self.task is None:
                self.task = progress.add_task("fetching", total=total)
            progress.update(self.task, completed=done, total=total)

    return BarReporter()


def enrich(args: argparse.Namespace) -> int:
    from enrichment_pipeline.lib.providers.registry import PROVIDER_NAMES
    from enrichment_pipeline.lib.waterfall import load_waterfall

    # Every configuration problem is a usage error before anything runs.
    mode = settings.enrichment_mode()
    settings.enabled_providers(PROVIDER_NAMES)
    settings.sandbox_epoch()
    load_waterfall().check_providers(PROVIDER_NAMES)
    valid, rejected = _collect(args.domains, args.file)
    for bad in rejected:
        err.print(f"[yellow]invalid[/] {escape(repr(bad.raw))}: {escape(bad.reason)}")
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
    import dagster as dg

    from enrichment_pipeline.definitions import defs
    from enrichment_pipeline.defs.operations.jobs import ENRICH_JOB_NAME, MARTS_JOB_NAME
    from enrichment_pipeline.defs.partitions import domains_partitions
    from enrichment_pipeline.defs.raw.assets import RAW_KEY

    started = time.perf_counter()
    instance = dg.DagsterInstance.get()
    name = domains_partitions.name
    known = set(instance.get_dynamic_partitions(name))
    new = [d for d in valid if d not in known]
    if new:
        instance.add_dynamic_partitions(name, new)
    due, cached_keys = _due_domains(url, valid, mode, force=bool(args.force))
    job = defs.resolve_job_def(ENRICH_JOB_NAME)
    run_config = {
        "ops": {"raw__provider_responses": {"config": {"force": bool(args.force)}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    metadata: list[dict] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        reporter = _progress_reporter(progress)
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
            marts = defs.resolve_job_def(MARTS_JOB_NAME).execute_in_process(
                run_config=quiet, instance=instance, tags={"enrichment/source": "cli"}, raise_on_error=False
            )
            if not marts.success:
                err.print("[yellow]the enrichment is stored, but building the marts failed:[/]")
                return _run_failed(marts)

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
    _print_summary(mode, counts, rejected, totals, seconds, metadata)
    return 0


def _due_domains(url: str, domains: list[str], mode: settings.Mode, *, force: bool) -> tuple[list[str], int]:
    """The domains a run would call a provider for, and the cached answers of the others."""
    if force:
        return list(domains), 0
    from datetime import UTC, datetime

    from enrichment_pipeline.lib.waterfall import load_waterfall

    if url.startswith("duckdb:") and not duckdb_path(url).exists():
        return list(domains), 0
    providers, _ = cost.configured_providers(mode)
    now = datetime.now(UTC)
    with Warehouse.open(url, read_only=url.startswith("duckdb:")) as wh:
        needs = cost.domain_needs(wh, domains, now, mode, providers, load_waterfall())
        due = [d for d in domains if any(n.calls_max > 0 for n in needs[d].values())]
        settled = set(domains) - set(due)
        cached_keys = 0
        if settled:
            for provider, _ in providers:
                fresh, _ = cost.cache_state(wh, provider.name, sorted(settled), mode, now)
                cached_keys += len(fresh)
    return due, cached_keys


def _run_failed(result) -> int:
    failures = [
        e.step_key or "run"
        for e in result.all_events
        if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
    ]
    err.print(
        f"[red]run {result.run_id} failed[/] at {escape(', '.join(dict.fromkeys(failures)))}; "
        "see `make dev` for the full log"
    )
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


def _print_summary(mode, counts, rejected, totals, seconds, metadata) -> None:
    table = Table(title=f"enrichment summary ({mode} mode)", show_header=False)
    for label in ("enriched", "partial", "not_found", "failed"):
        table.add_row(label.replace("_", " "), str(counts.get(label, 0)))
    table.add_row("invalid", str(len(rejected)))
    table.add_row("provider calls", str(totals["calls"]))
    table.add_row("cache hits", str(totals["cache_hits"]))
    table.add_row("retries", str(totals["retries"]))
    table.add_row("cost (USD)", f"{totals['cost_usd']:.2f}")
    table.add_row("seconds", f"{seconds:.1f}")
    console.print(table)
    for m in metadata:
        for name, reason in (m.get("skipped_providers") or {}).items():
            console.print(f"[yellow]{name} skipped[/]: {escape(str(reason))}")
        for name, reason in (m.get("disabled_providers") or {}).items():
            console.print(f"[red]{name} stopped[/]: {escape(str(reason))}")
    if counts.get("partial") or counts.get("failed"):
        console.print("Some providers did not answer for some domains; see raw.provider_responses.")
    for bad in rejected:
        console.print(f"invalid {escape(repr(bad.raw))}: {escape(bad.reason)}")


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
    rows = [
        {**r, "score_reasons": json.loads(r["score_reasons"] or "[]")} for r in board.iter_rows(named=True)
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(board.columns))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "score_reasons": "; ".join(r["score_reasons"])})
        print(out.getvalue(), end="")
    else:
        table = Table(title="ICP leaderboard")
        for column in ("#", "domain", "score", "tier", "status", "visits/mo", "search"):
            table.add_column(column, no_wrap=True, min_width=len(column) if column != "tier" else 4)
        table.add_column("top reasons", overflow="ellipsis", no_wrap=True, max_width=70)
        for i, r in enumerate(rows, 1):
            visits = f"{r['monthly_visits']:,.0f}" if r["monthly_visits"] is not None else "-"
            table.add_row(
                str(i),
                r["domain"],
                f"{r['icp_score']:.1f}",
                r["icp_tier"],
                r["status"],
                visits,
                r["search_vendor"] or "-",
                "; ".join(r["score_reasons"][:2]),
            )
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


if __name__ == "__main__":
    sys.exit(main())
