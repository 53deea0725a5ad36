"""`enrichment-pipeline`: exit codes, messages and output, in-process and as the installed script."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from enrichment_pipeline.cli import contiguous_ranges, main
from enrichment_pipeline.lib.sandbox import builtwith as bw
from enrichment_pipeline.lib.sandbox import similarweb as sw

ENV_PREFIXES = ("BUILTWITH_", "SIMILARWEB_", "CLEARBIT_", "APOLLO_", "EXPLORIUM_", "ENRICHMENT_", "SANDBOX_")
ENV_NAMES = ("WAREHOUSE_URL", "ICP_MODEL", "DAGSTER_HOME", "WATERFALL_CONFIG")
DOMAINS = [d for d in (f"company{i}.com" for i in range(200)) if bw.is_known(d) and sw.has_data(d)][:3]
CALLS_PER_DOMAIN = 7  # BuiltWith domain API + six SimilarWeb endpoints (the two providers these tests enable)


def _clean(mp: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            mp.delenv(name)
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    # Two providers keep the call counts simple; the waterfall over all providers is tested elsewhere.
    mp.setenv("ENRICHMENT_PROVIDERS", "builtwith,similarweb")
    mp.chdir(home)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with its own DAGSTER_HOME, and no settings from the shell."""
    _clean(monkeypatch, tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def enriched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One `enrich` of DOMAINS (two from a CSV file with a junk line) shared by the tests below.

    Yields (directory, stdout, stderr).
    """
    directory = tmp_path_factory.mktemp("enriched")
    with pytest.MonkeyPatch.context() as mp:
        _clean(mp, directory)
        (directory / "domains.csv").write_text(
            f"website,name\nhttps://www.{DOMAINS[0]}/about,A\nlocalhost,B\n{DOMAINS[1].upper()},C\n"
        )
        out, err = io.StringIO(), io.StringIO()
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        assert main(["enrich", "--file", "domains.csv", DOMAINS[2]]) == 0
    yield directory, out.getvalue(), err.getvalue()


@pytest.fixture
def in_enriched(enriched: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    _clean(monkeypatch, enriched[0])
    return enriched[0]


def _summary_value(out: str, label: str) -> str:
    match = re.search(rf"(?:^|· |  ){re.escape(label)} ([\d.]+)", out, re.MULTILINE)
    assert match, f"no {label!r} row in:\n{out}"
    return match.group(1)


# --------------------------------------------------------------------------- enrich


def test_enrich_prints_the_summary(enriched):
    directory, out, err = enriched
    assert "enrichment summary" in out
    assert "sandbox mode" in out
    assert _summary_value(out, "enriched") == str(len(DOMAINS))
    assert _summary_value(out, "partial") == "0"
    assert _summary_value(out, "failed") == "0"
    assert _summary_value(out, "invalid") == "1"
    assert "localhost" in err
    assert "Traceback" not in err
    assert _summary_value(out, "provider calls") == str(CALLS_PER_DOMAIN * len(DOMAINS))
    assert _summary_value(out, "cache hits") == "0"
    assert float(_summary_value(out, "cost (USD)")) > 0
    # Default places: the sandbox warehouse and the Dagster home given.
    assert (directory / "data" / "sandbox.duckdb").is_file()
    assert (directory / "dagster" / "dagster.yaml").is_file()


def test_enrich_output_is_short_and_ends_with_what_to_do_next(enriched):
    directory, out, err = enriched
    lines = out.strip().splitlines()
    # dbt's own log is in the file, the terminal gets one line for the whole build.
    assert "START sql" not in out + err and "PASS" not in out
    marts = next(line for line in lines if line.startswith("marts: "))
    assert re.fullmatch(r"marts: 12 models, \d+ tests passed in [\d.]+ s — log: data/logs/dbt\.log", marts)
    assert "OK created sql table model marts.dim_company" in (directory / "data/logs/dbt.log").read_text()
    # Each provider called: its HTTP latency and, apart from it, the wait for a rate-limit slot.
    builtwith = next(line for line in lines if line.strip().startswith("builtwith "))
    assert re.search(r"\d+ calls · latency p50 [\d.]+ m?s, p95 [\d.]+ m?s · rate-limit wait p50 ", builtwith)
    # What to do next: the UI, the leaderboard, the serving file.
    tail = "\n".join(lines[lines.index("next:") :])
    assert "make dev" in tail and "http://127.0.0.1:3000" in tail
    assert "scores --top 25" in tail
    assert "data/serving.duckdb" in tail
    assert len(lines) <= 15, out


def test_second_enrich_makes_no_provider_calls(in_enriched, capsys):
    assert main(["enrich", *DOMAINS]) == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "provider calls") == "0"
    assert _summary_value(out, "cache hits") == str(CALLS_PER_DOMAIN * len(DOMAINS))
    assert _summary_value(out, "enriched") == str(len(DOMAINS))


def test_missing_file_is_a_usage_error(home, capsys):
    assert main(["enrich", "--file", "nope.txt"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "nope.txt" in lines[0]
    assert not (home / "data").exists(), "nothing should be created for a failed command"


def test_missing_file_with_a_long_path_is_still_one_line(home, capsys):
    missing = home / ("very-long-directory-name-" * 3) / "domains-that-do-not-exist.txt"
    assert main(["enrich", "--file", str(missing)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert str(missing) in err


@pytest.mark.parametrize("argv", [["enrich", "--file", "x[/]y.txt"], ["enrich", "[/]"]])
def test_user_text_is_not_rich_markup(home, capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "[/]" in err


def test_file_name_is_shown_verbatim(home, capsys):
    assert main(["enrich", "--file", "[bold]x.txt"]) == 2
    assert "[bold]x.txt" in capsys.readouterr().err


def test_only_invalid_domains_is_a_usage_error(home, capsys):
    assert main(["enrich", "localhost", "not a domain", "http://127.0.0.1/"]) == 2
    err = capsys.readouterr().err
    assert "no valid domain" in err
    assert "localhost" in err
    assert "Traceback" not in err
    assert not (home / "data").exists()


def test_no_domains_at_all_is_a_usage_error(home, capsys):
    assert main(["enrich"]) == 2
    assert "--file" in capsys.readouterr().err


def test_bad_mode_names_the_variable(home, monkeypatch, capsys):
    monkeypatch.setenv("ENRICHMENT_MODE", "bogus")
    assert main(["enrich", DOMAINS[0]]) == 2
    err = capsys.readouterr().err
    assert "ENRICHMENT_MODE" in err
    assert "bogus" in err
    assert "Traceback" not in err


def test_bad_provider_list_names_the_variable(home, monkeypatch, capsys):
    monkeypatch.setenv("ENRICHMENT_PROVIDERS", "builtwith,bogus")
    assert main(["enrich", DOMAINS[0]]) == 2
    assert "ENRICHMENT_PROVIDERS" in capsys.readouterr().err


def test_enrich_of_non_contiguous_partitions(in_enriched, capsys):
    with dg.DagsterInstance.get() as instance:
        keys = instance.get_dynamic_partitions("domains")
    assert len(keys) == 3
    # The first and the last partition are not neighbours: two ranges, so two runs.
    assert main(["enrich", keys[0], keys[-1]]) == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "provider calls") == "0"


def test_verbose_prints_dbt_log_and_dagster_events(in_enriched, capsys):
    assert main(["enrich", *DOMAINS, "--verbose"]) == 0
    captured = capsys.readouterr()
    assert "OK created sql table model marts.dim_company" in captured.out
    assert re.search(r"^marts: 12 models, \d+ tests passed", captured.out, re.MULTILINE)


def test_live_mode_without_any_key_can_call_nothing(home, monkeypatch, capsys):
    monkeypatch.setenv("ENRICHMENT_MODE", "live")  # builtwith and similarweb only, and no key
    assert main(["enrich", DOMAINS[0]]) == 2
    err = capsys.readouterr().err
    assert "no provider can be called" in err
    assert "BUILTWITH_API_KEY" in err and "SIMILARWEB_API_KEY" in err
    assert "ENRICHMENT_MODE=sandbox" in err
    assert "Traceback" not in err
    assert not (home / "data").exists(), "nothing should run"


def test_live_mode_without_keys_says_so_up_front(home, monkeypatch, capsys):
    monkeypatch.setenv("ENRICHMENT_MODE", "live")
    monkeypatch.setenv("ENRICHMENT_PROVIDERS", "builtwith,yahoo")  # Yahoo Finance needs no key
    # --dry-run: the warning comes before anything else, and no provider is called.
    assert main(["enrich", DOMAINS[0], "--dry-run"]) == 0
    first = capsys.readouterr().err.strip().splitlines()[0]
    assert "live mode with no API key set" in first
    assert "only yahoo" in first and "BUILTWITH_API_KEY" in first


def test_live_mode_with_some_keys_names_the_skipped(home, monkeypatch, capsys):
    monkeypatch.setenv("ENRICHMENT_MODE", "live")
    monkeypatch.setenv("BUILTWITH_API_KEY", "k")
    assert main(["enrich", DOMAINS[0], "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "calling builtwith" in err and "SIMILARWEB_API_KEY" in err


def test_unicode_domains_beside_the_punycode_key(home, capsys):
    assert main(["enrich", "https://www.Bücher.de/", "--no-marts"]) == 0
    capsys.readouterr()
    assert main(["scores", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["domain"], row["domain_unicode"]) == ("xn--bcher-kva.de", "bücher.de")
    assert main(["scores", "--format", "csv"]) == 0
    (line,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (line["domain"], line["domain_unicode"]) == ("xn--bcher-kva.de", "bücher.de")
    assert main(["scores"]) == 0
    assert "bücher.de (xn--bcher-kva.de)" in capsys.readouterr().out
    from enrichment_pipeline.lib.warehouse import Warehouse

    with Warehouse.open(f"duckdb:///{home / 'data' / 'sandbox.duckdb'}", read_only=True) as wh:
        profile = wh.query("SELECT domain, domain_unicode FROM marts.company_profiles")
    assert profile.rows() == [("xn--bcher-kva.de", "bücher.de")]


def test_progress_line_shows_calls_and_rate_per_provider():
    from rich.console import Console

    from enrichment_pipeline.cli import _make_reporter, provider_rates
    from enrichment_pipeline.lib.http_policy import ProviderStats

    stats = {
        "builtwith": ProviderStats(calls=120),
        "similarweb": ProviderStats(calls=0),
        "yahoo": ProviderStats(calls=10),
    }
    assert provider_rates(stats, 10.0) == "builtwith 120 calls (12.0/s) · yahoo 10 (1.0/s)"
    assert provider_rates({"yahoo": ProviderStats()}, 1.0) == ""

    out = io.StringIO()
    reporter = _make_reporter(Console(file=out, width=200), every_s=0.0)
    reporter.watch(stats)
    reporter.update(50, 100)
    reporter.update(100, 100)  # the end needs no progress line: the summary follows
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"fetched 50/100 domains in \d+ s · builtwith 120 calls \([\d.]+/s\) · yahoo 10 \([\d.]+/s\)",
        lines[0],
    )
    quiet = io.StringIO()
    slow = _make_reporter(Console(file=quiet), every_s=3600.0)
    slow.watch(stats)
    slow.update(1, 100)
    assert quiet.getvalue() == ""  # a short run prints no progress lines at all


# --------------------------------------------------------------------------- scores


def test_scores_json(in_enriched, capsys):
    assert main(["scores", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["domain"] for r in rows) == sorted(DOMAINS)
    scores = [r["icp_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    for r in rows:
        assert 0 <= r["icp_score"] <= 100
        assert r["icp_tier"] in ("hot", "warm", "cool", "cold")
        assert r["status"] == "enriched"
        assert isinstance(r["score_reasons"], list)


def test_scores_csv(in_enriched, capsys):
    assert main(["scores", "--format", "csv", "--top", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2
    assert {"domain", "icp_score", "icp_tier", "status", "score_reasons"} <= set(rows[0])
    assert all(r["domain"] in DOMAINS for r in rows)


def test_scores_table(in_enriched, capsys):
    assert main(["scores"]) == 0
    out = capsys.readouterr().out
    assert "ICP leaderboard" in out
    for d in DOMAINS:
        assert d in out


def test_scores_top_must_be_positive(in_enriched, capsys):
    assert main(["scores", "--top", "0"]) == 2
    assert "--top" in capsys.readouterr().err


def test_scores_before_any_enrich(home, capsys):
    assert main(["scores"]) == 2
    err = capsys.readouterr().err
    assert "enrich" in err
    assert "Traceback" not in err


def test_unknown_format_is_rejected_by_argparse(home, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scores", "--format", "xml"])
    assert exc.value.code == 2


# --------------------------------------------------------------------------- the installed script


def _in_fresh_home(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """`command` in a new process with its own DAGSTER_HOME and no settings from the shell."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith(ENV_PREFIXES) or k in ENV_NAMES)}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster")
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_console_script_runs(tmp_path):
    script = Path(sys.executable).with_name("enrichment-pipeline")
    assert script.is_file(), "the package is not installed in this virtualenv"
    enrich = _in_fresh_home(tmp_path, str(script), "enrich", *DOMAINS[:2])
    assert enrich.returncode == 0, enrich.stderr
    assert "enrichment summary" in enrich.stdout
    assert "Traceback" not in enrich.stderr
    scores = _in_fresh_home(tmp_path, str(script), "scores", "--format", "json")
    assert scores.returncode == 0, scores.stderr
    assert sorted(r["domain"] for r in json.loads(scores.stdout)) == sorted(DOMAINS[:2])


def _run_entry_point(
    tmp_path: Path,
    prelude: str,
    argv: tuple[str, ...] = ("scores", "--top", "0"),
    stdout: Any = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    code = (
        f"{prelude}\n"
        "import sys\n"
        f"sys.argv = ['enrichment-pipeline', *{list(argv)!r}]\n"
        "from enrichment_pipeline.cli import run\n"
        "run()\n"
    )
    # Buffered output, as a user's shell gives it: the flush before the exit is what is tested.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster")
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def test_the_command_skips_teardown_but_keeps_exit_handlers_output_and_code(tmp_path):
    done = _run_entry_point(tmp_path, "import atexit; atexit.register(lambda: print('handler ran'))")
    assert done.returncode == 2, done.stderr
    assert done.stdout == "handler ran\n"  # printed into a pipe (buffered), flushed before the exit
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_exit_120_not_a_traceback(tmp_path):
    printed_then_done = "import enrichment_pipeline.cli as cli\ncli.main = lambda: print('done') or 0"
    with open("/dev/full", "w") as full:
        done = _run_entry_point(tmp_path, printed_then_done, stdout=full)
    assert done.returncode == 120, done.stderr  # what Python's own exit says
    assert "Traceback" not in done.stderr
    with open("/dev/full", "w") as full:
        refused = _run_entry_point(
            tmp_path, "import atexit; atexit.register(lambda: print('x'))", stdout=full
        )
    assert refused.returncode == 2  # the command's own failure wins over the failed flush
    assert "Traceback" not in refused.stderr


def test_the_command_waits_for_a_thread_still_working(tmp_path):
    marker = tmp_path / "written"
    prelude = (
        "import threading, time, pathlib\n"
        f"def late(): time.sleep(0.5); pathlib.Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=late).start()"
    )
    done = _run_entry_point(tmp_path, prelude)
    assert done.returncode == 2, done.stderr
    assert marker.read_text() == "done"


def test_enrich_loads_with_the_collector_paused_and_runs_with_it_on(tmp_path):
    """Dagster, the definitions, the instance and the job are frozen once loaded (lib/gc_policy.py);
    the run itself has the collector as usual (seen as the run starts: at exit they are thawed)."""
    code = (
        "import atexit, gc, sys\n"
        "import dagster\n"
        "seen = []\n"
        "started = dagster.JobDefinition.execute_in_process\n"
        "def spy(job, *args, **kwargs):\n"
        "    seen.append((gc.isenabled(), gc.get_freeze_count()))\n"
        "    return started(job, *args, **kwargs)\n"
        "dagster.JobDefinition.execute_in_process = spy\n"
        "atexit.register(lambda: print('collector', *seen[0]))\n"
        f"sys.argv = ['enrichment-pipeline', 'enrich', '--no-marts', {DOMAINS[0]!r}]\n"
        "from enrichment_pipeline.cli import run\n"
        "run()\n"
    )
    done = _in_fresh_home(tmp_path, sys.executable, "-W", "ignore", "-c", code)
    assert done.returncode == 0, done.stderr
    _, enabled, frozen = done.stdout.splitlines()[-1].split()
    assert enabled == "True"
    assert int(frozen) > 100_000  # Dagster and the definitions alone are several hundred thousand


def test_the_installed_command_is_the_fast_exit_entry_point():
    script = Path(sys.executable).with_name("enrichment-pipeline")
    assert "from enrichment_pipeline.cli import run" in script.read_text()


# --------------------------------------------------------------------------- contiguous_ranges

KEYS = ["a.com", "b.com", "c.com", "d.com", "e.com"]


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (["a.com", "b.com", "c.com"], [("a.com", "c.com")]),
        (KEYS, [("a.com", "e.com")]),
        (["c.com"], [("c.com", "c.com")]),
        (["a.com", "c.com", "d.com"], [("a.com", "a.com"), ("c.com", "d.com")]),
        (["e.com", "a.com", "c.com"], [("a.com", "a.com"), ("c.com", "c.com"), ("e.com", "e.com")]),
        (["d.com", "b.com", "c.com", "b.com"], [("b.com", "d.com")]),
        ([], []),
    ],
)
def test_contiguous_ranges(wanted, expected):
    assert contiguous_ranges(KEYS, wanted) == expected


def test_contiguous_ranges_cover_exactly_the_wanted_keys():
    wanted = ["b.com", "e.com", "d.com"]
    covered = [
        k
        for start, end in contiguous_ranges(KEYS, wanted)
        for k in KEYS[KEYS.index(start) : KEYS.index(end) + 1]
    ]
    assert sorted(covered) == sorted(wanted)


def test_provider_figures_add_up_over_the_runs_of_one_enrich():
    from enrichment_pipeline.cli import _per_provider

    first = {"calls": 1, "latency_p50_ms": 1.0, "latency_p95_ms": 9.0, "wait_p50_ms": 0.0, "wait_p95_ms": 0.0}
    second = {
        "calls": 2,
        "latency_p50_ms": 3.0,
        "latency_p95_ms": 4.0,
        "wait_p50_ms": 1.0,
        "wait_p95_ms": 5.0,
    }
    merged = _per_provider(
        [
            {"provider/clearbit": first, "calls": 1},
            {"provider/clearbit": second, "provider/apollo": {"calls": 0}},
        ]
    )
    assert merged == {
        "clearbit": {
            "calls": 3,
            "latency_p50_ms": 3.0,
            "latency_p95_ms": 9.0,
            "wait_p50_ms": 1.0,
            "wait_p95_ms": 5.0,
        }
    }
