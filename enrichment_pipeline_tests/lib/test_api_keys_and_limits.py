"""Key storage, minute limits and webhook rules of the read API, as plain functions."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from enrichment_pipeline.lib import webhooks
from enrichment_pipeline.lib.api_keys import ApiKeyError, KeyStore, parse_scopes
from enrichment_pipeline.lib.api_state import StateStore
from enrichment_pipeline.lib.rate_limits import MinuteLimiter


def test_keys_are_random_stored_as_digests_and_revocable(tmp_path):
    store = KeyStore(StateStore(tmp_path / "s.sqlite3"))
    key, token = store.create("crm", ("read", "enrich"), "power")
    other = store.create("crm", ("read",))[1]
    assert token != other and token.startswith(f"epk_{key.id}_") and len(token.split("_", 2)[2]) == 43
    row = (
        sqlite3.connect(tmp_path / "s.sqlite3")
        .execute("SELECT * FROM api_keys WHERE id = ?", (key.id,))
        .fetchone()
    )
    assert token not in repr(row) and hashlib.sha256(token.encode()).hexdigest() in row
    assert store.authenticate(token).scopes == ("read", "enrich")
    assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    secret = token.split("_", 2)[2]
    assert store.authenticate(f"epk_{'0' * 12}_{secret}") is None
    assert store.authenticate("") is None
    store.revoke(key.prefix)
    assert store.authenticate(token) is None
    with pytest.raises(ApiKeyError, match="already revoked"):
        store.revoke(key.id)
    with pytest.raises(ApiKeyError, match="no API key"):
        store.revoke("nope")
    assert next(k for k in store.list() if k.id == key.id).last_used_at is not None


def test_a_key_revoked_by_another_process_stops_working_within_the_check_interval(tmp_path, monkeypatch):
    from enrichment_pipeline.lib import api_keys

    now = [100.0]
    monkeypatch.setattr(api_keys.time, "monotonic", lambda: now[0])
    state = tmp_path / "s.sqlite3"
    serving, cli = KeyStore(StateStore(state)), KeyStore(StateStore(state))
    key, token = cli.create("crm")
    assert serving.authenticate(token) is not None
    cli.revoke(key.id)  # another connection: the serving process's memory does not know yet
    now[0] += api_keys.CHANGES_CHECKED_EVERY_S / 2
    assert serving.authenticate(token) is not None
    now[0] += api_keys.CHANGES_CHECKED_EVERY_S
    assert serving.authenticate(token) is None
    other = cli.create("crm2")[1]
    assert serving.authenticate(other) is not None  # a new key needs no wait: it is looked up


def test_scopes_and_tiers_are_checked():
    assert parse_scopes("read, ENRICH,read") == ("read", "enrich")
    with pytest.raises(ApiKeyError):
        parse_scopes("admin")
    with pytest.raises(ApiKeyError):
        parse_scopes(" , ")


def test_minute_windows_per_key_and_kind(tmp_path):
    now = [120.0]
    limiter = MinuteLimiter(StateStore(tmp_path / "s.sqlite3"), clock=lambda: now[0])
    decisions = [limiter.hit("k", "standard", "write") for _ in range(21)]
    assert all(d.allowed for d in decisions[:20]) and not decisions[20].allowed
    assert decisions[20].headers()["Retry-After"] == "60" and decisions[19].remaining == 0
    assert limiter.hit("k", "standard", "read").allowed  # reads are counted apart
    assert limiter.hit("other", "standard", "write").allowed
    now[0] = 150.5
    assert limiter.hit("k", "standard", "write").reset_s == 30
    now[0] = 180.0
    assert limiter.hit("k", "standard", "write").allowed  # the next minute
    assert limiter.hit("k", "admin", "write").headers() == {}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://10.0.0.1/x",
        "http://192.168.1.1/x",
        "http://[fd00::1]/x",
        "http://169.254.169.254/latest",
        "http://0.0.0.0/x",
        "gopher://example.com/",
        "http://u:p@example.com/",
        "https:///nohost",
    ],
)
def test_webhook_targets_refused(url):
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_url(url, private_ok=False)


def test_webhook_private_targets_allowed_when_asked_and_public_ips_pass():
    assert webhooks.check_url("http://127.0.0.1:9/x", private_ok=True)
    assert webhooks.check_url("https://93.184.215.14/hook", private_ok=False)


def test_delivery_stops_on_a_refusal_and_retries_errors(monkeypatch):
    import httpx

    answers = iter([503, 400])
    seen = []
    transport = httpx.MockTransport(lambda request: httpx.Response(next(answers)))
    ok = webhooks.deliver(
        "https://93.184.215.14/hook",
        b"{}",
        "k",
        record=seen.append,
        max_attempts=5,
        sleep=lambda s: None,
        transport=transport,
        private_ok=False,
    )
    assert not ok and [a.http_status for a in seen] == [503, 400]


def test_two_processes_count_against_one_allowance(tmp_path):
    """Two limiters on one state file (as two API worker processes are) share each key's minute."""
    state = tmp_path / "s.sqlite3"
    now = [120.0]
    first = MinuteLimiter(StateStore(state), clock=lambda: now[0])
    second = MinuteLimiter(StateStore(state), clock=lambda: now[0])
    allowed = [(first if i % 2 else second).hit("k", "standard", "write").allowed for i in range(30)]
    assert allowed == [True] * 20 + [False] * 10
    assert not first.hit("k", "standard", "write").allowed
    assert second.hit("k", "standard", "read").remaining == 99
    assert first.hit("k", "admin", "write").limit is None  # unlimited keys are not counted
    now[0] = 180.0
    assert second.hit("k", "standard", "write").remaining == 19
