"""Provider keys never reach the event log, the Python logs, stdout/stderr or the warehouse file."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dagster as dg
import httpx
import polars as pl

from enrichment_pipeline.lib.redaction import MASK
from enrichment_pipeline.lib.warehouse import duckdb_path
from enrichment_pipeline_tests.defs.helpers import Recorder, read_table, run_pipeline, sandbox_domains

BUILTWITH_KEY = "SENTINEL-KEY-7d3a9"
SIMILARWEB_KEY = "SENTINEL-KEY-7d3a9b"  # contains the other key: the longer one must be masked whole
DOMAINS = sandbox_domains(3)
ECHO_DOMAIN = DOMAINS[1]


def _echo_url(request: httpx.Request) -> httpx.Response | None:
    """Like real APIs that quote the request (key included) in their error bodies."""
    if ECHO_DOMAIN not in str(request.url):
        return None
    if request.url.path.startswith("/v1/website/"):
        meta = {"status": "Error", "error_code": 400, "error_message": f"bad request {request.url}"}
        return httpx.Response(400, json={"meta": meta})
    return httpx.Response(400, json={"Errors": [{"Message": f"cannot parse {request.url}", "Code": -1}]})


def test_keys_are_redacted_everywhere(instance, warehouse_url, monkeypatch, caplog, capfd):
    monkeypatch.setenv("BUILTWITH_API_KEY", BUILTWITH_KEY)
    monkeypatch.setenv("SIMILARWEB_API_KEY", SIMILARWEB_KEY)
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(_echo_url)

    result = run_pipeline(instance, warehouse_url, DOMAINS, transport=recorder.transport())
    assert result.success

    # The keys really were sent, and really were echoed back.
    urls = recorder.urls()
    assert any(f"KEY={BUILTWITH_KEY}&" in u or u.endswith(f"KEY={BUILTWITH_KEY}") for u in urls)
    assert any(f"api_key={SIMILARWEB_KEY}" in u for u in urls)

    # 1. Every event of the run, serialized the way the instance stores it.
    events = instance.all_logs(result.run_id)
    assert events
    leaking = [
        e.dagster_event_type or e.user_message for e in events if BUILTWITH_KEY in dg.serialize_value(e)
    ]
    assert not leaking
    assert not [e for e in events if BUILTWITH_KEY in str(e)]

    # 2. Python logging at DEBUG and whatever went to the terminal.
    assert caplog.records
    assert BUILTWITH_KEY not in caplog.text
    assert not [r for r in caplog.records if BUILTWITH_KEY in r.getMessage()]
    out, err = capfd.readouterr()
    assert BUILTWITH_KEY not in out + err

    # 3. The stored answers: masked, and the longer key masked whole (no "***b" left over).
    raw = read_table(warehouse_url, "raw.provider_responses")
    text = pl.concat_str(pl.col("payload").fill_null(""), pl.col("detail").fill_null(""), separator="|")
    stored = raw.select(text.alias("t"))["t"]
    assert not stored.str.contains(BUILTWITH_KEY, literal=True).any()
    echoed = raw.filter(pl.col("domain") == ECHO_DOMAIN)
    assert set(echoed["status"]) == {"error"}
    assert echoed["payload"].str.contains(MASK, literal=True).all()
    assert not stored.str.contains(f"{MASK}b", literal=True).any()

    # 4. The bytes of the DuckDB file (and its WAL, if one was left) after every connection closed.
    db = duckdb_path(warehouse_url)
    files = [p for p in (db, Path(f"{db}.wal")) if p.exists()]
    assert files
    for path in files:
        assert BUILTWITH_KEY.encode() not in path.read_bytes(), path.name


ODD_KEY = "Sentinel/Key+9c2e=="  # characters that travel percent-encoded


def _echo_reencoded(request: httpx.Request) -> httpx.Response | None:
    """Servers that quote the key re-encoded their own way: lowercase hex, partly decoded, as a number."""
    if ECHO_DOMAIN not in str(request.url):
        return None
    url = str(request.url)
    lowered = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), url)
    partly = url.replace("%2F", "/")
    message = f"bad request {lowered} (also {partly}, {url.upper()})"
    if request.url.path.startswith("/v1/website/"):
        meta = {"status": "Error", "error_code": 400, "error_message": message}
        return httpx.Response(400, json={"meta": meta})
    return httpx.Response(400, json={"Errors": [{"Message": message, "Code": 12345678}]})


def test_reencoded_and_numeric_echoes_are_redacted_in_stored_payloads(instance, warehouse_url, monkeypatch):
    monkeypatch.setenv("BUILTWITH_API_KEY", ODD_KEY)
    monkeypatch.setenv("SIMILARWEB_API_KEY", "12345678")  # an all-digit key, echoed as a JSON number
    recorder = Recorder(_echo_reencoded)
    result = run_pipeline(instance, warehouse_url, DOMAINS, transport=recorder.transport())
    assert result.success
    raw = read_table(warehouse_url, "raw.provider_responses")
    echoed = raw.filter(pl.col("domain") == ECHO_DOMAIN)
    text = " ".join(echoed["payload"].fill_null("").to_list() + echoed["detail"].fill_null("").to_list())
    assert MASK in text
    lowered = text.lower()
    for form in ("sentinel/key", "sentinel%2fkey", "key+9c2e", "key%2b9c2e", "12345678"):
        assert form not in lowered, form
    events = "".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id)).lower()
    assert "sentinel%2fkey" not in events and "sentinel/key" not in events
