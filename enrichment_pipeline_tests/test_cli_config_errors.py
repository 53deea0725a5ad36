"""Every configuration or input-file problem: one line naming the file and what is wrong, exit 2.

Each case used to print a traceback and exit 1 (the code of a failed run), or hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from enrichment_pipeline.cli import EXIT_USAGE, main
from enrichment_pipeline_tests.test_cli import home  # noqa: F401 - fixture

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def one_line_error(capsys, argv: list[str], *expected: str) -> str:
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    text = " ".join(err.split())  # rich may wrap a long line on a narrow terminal
    assert "Traceback" not in out + err
    assert err.startswith("error:"), err
    for part in expected:
        assert part in text, text
    return text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"groups: {}\n", "groups: at least one field group is needed"),
        (b"groups:\n  traffic:\n    providers: [similarweb]\n    strategy: sometimes\n", "strategy"),
        (b"groups:\n  traffic: {providers: [caf\xe9]}\n", "not UTF-8 text"),
        (b"groups: [unclosed\n", "not valid YAML"),
        (b"- just a list\n", "expected a mapping"),
        (BOMB.encode(), "aliases (*name) are not allowed"),
    ],
)
def test_bad_waterfall_file(home, monkeypatch, capsys, content: bytes, expected: str):  # noqa: F811
    path = home / "waterfall.yaml"
    path.write_bytes(content)
    monkeypatch.setenv("WATERFALL_CONFIG", str(path))
    one_line_error(capsys, ["enrich", "--dry-run", "stripe.com"], str(path), expected)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (BOMB.encode(), "aliases (*name) are not allowed"),
        (b"version: \xff\n", "not UTF-8 text"),
        (b"version: 1\ncriteria: [\n", "not valid YAML"),
    ],
)
def test_bad_icp_model_file(home, monkeypatch, capsys, content: bytes, expected: str):  # noqa: F811
    path = home / "model.yaml"
    path.write_bytes(content)
    monkeypatch.setenv("ICP_MODEL", str(path))
    one_line_error(capsys, ["enrich", "--dry-run", "stripe.com"], str(path), expected)


def test_missing_and_broken_tickers_file(home, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("ENRICHMENT_PROVIDERS", "builtwith,yahoo")
    monkeypatch.setenv("YAHOO_TICKERS_PATH", str(home / "missing.csv"))
    one_line_error(capsys, ["enrich", "--dry-run", "stripe.com"], "YAHOO_TICKERS_PATH", "missing.csv")
    bad = home / "tickers.csv"
    bad.write_bytes(b"domain,ticker\nm\xfcller.de,MUE\n")
    monkeypatch.setenv("YAHOO_TICKERS_PATH", str(bad))
    one_line_error(capsys, ["enrich", "--dry-run", "stripe.com"], str(bad), "not UTF-8 text")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_config_does_not_hang(home, monkeypatch, capsys):  # noqa: F811
    fifo = home / "waterfall.yaml"
    os.mkfifo(fifo)
    monkeypatch.setenv("WATERFALL_CONFIG", str(fifo))
    one_line_error(capsys, ["enrich", "--dry-run", "stripe.com"], str(fifo), "not a regular file")


def test_domain_file_problems(home, capsys):  # noqa: F811
    empty = home / "empty.csv"
    empty.write_text("domain\n# nothing yet\n")
    one_line_error(capsys, ["enrich", "--dry-run", "--file", str(empty)], str(empty), "no domain entries")
    latin = home / "latin.txt"
    latin.write_bytes(b"m\xfcller.de\n")
    one_line_error(capsys, ["enrich", "--dry-run", "--file", str(latin)], str(latin), "not valid UTF-8")


def test_the_installed_script_exits_2_on_a_config_error(tmp_path: Path):
    path = tmp_path / "waterfall.yaml"
    path.write_text("groups: {}\n")
    script = Path(sys.executable).with_name("enrichment-pipeline")
    env = {**os.environ, "WATERFALL_CONFIG": str(path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    done = subprocess.run(
        [str(script), "enrich", "--dry-run", "stripe.com"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_refused_entries_are_printed_capped_and_redacted(home, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("BUILTWITH_API_KEY", "SENTINEL-cli-key-42")
    path = home / "leads.txt"
    path.write_text("example.com:SENTINEL-cli-key-42\n" + "y" * 3000 + "\n")
    assert main(["enrich", "--dry-run", "--file", str(path)]) == EXIT_USAGE  # no valid domain
    out, err = capsys.readouterr()
    assert "SENTINEL-cli-key-42" not in out + err
    assert "y" * 300 not in out + err
    assert "***" in err
