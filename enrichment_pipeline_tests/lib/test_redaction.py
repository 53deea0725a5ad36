"""The redactor closes every form a key is echoed in; auth objects and headers never print a key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib.providers.apollo import Apollo
from enrichment_pipeline.lib.providers.builtwith import BuiltWith
from enrichment_pipeline.lib.providers.clearbit import Clearbit
from enrichment_pipeline.lib.providers.explorium import Explorium
from enrichment_pipeline.lib.providers.similarweb import SimilarWeb
from enrichment_pipeline.lib.redaction import MASK, Redactor, environment_secrets, shown
from enrichment_pipeline.lib.settings import ProviderSettings

KEY = "Sentinel/Key+7d3a=="


@pytest.mark.parametrize(
    "echoed",
    [
        "Sentinel%2FKey%2B7d3a%3D%3D",  # fully encoded, uppercase hex (what httpx sends)
        "Sentinel%2fKey%2b7d3a%3d%3d",  # lowercase hex, as some servers re-encode
        "Sentinel%2FKey+7d3a==",  # partly encoded
        "Sentinel/Key%2B7d3a%3d=",  # partly, mixed case
        "%53entinel/Key+7d3a==",  # an unreserved letter encoded too
        "sentinel/key+7d3a==",  # lowercased by the echoing server
        "SENTINEL/KEY+7D3A==",
    ],
)
def test_every_encoding_and_case_of_the_key_is_masked(echoed: str) -> None:
    assert Redactor([KEY]).text(f"bad request /v1?key={echoed}&x=1") == f"bad request /v1?key={MASK}&x=1"


def test_space_as_plus_and_multibyte_characters() -> None:
    redactor = Redactor(["pass wörd!"])
    for form in ("pass+w%C3%B6rd%21", "pass%20w%c3%b6rd!", "pass wörd!"):
        assert redactor.text(f"<{form}>") == f"<{MASK}>"


def test_numeric_json_values_that_spell_a_key_are_masked() -> None:
    redactor = Redactor(["12345678"])
    body = json.loads('{"echo": {"api_key": 12345678, "n": 5, "f": 1234567.8, "ok": true}}')
    assert redactor.obj(body) == {"echo": {"api_key": MASK, "n": 5, "f": 1234567.8, "ok": True}}
    assert "12345678" not in json.dumps(Redactor(["12345678"]).obj([12345678, 9912345678]))


@pytest.mark.parametrize("provider", [BuiltWith(), SimilarWeb(), Clearbit(), Apollo(), Explorium()])
def test_auth_and_settings_never_print_the_key(provider) -> None:
    auth = provider.auth(KEY)
    assert KEY not in repr(auth) and KEY not in str(auth)
    settings = ProviderSettings(name=provider.name, base_url="https://x.test", api_key=KEY)
    assert KEY not in repr(settings)
    # The headers httpx builds from it (a request's, a client's) mask the key like Authorization.
    request = httpx.Request("GET", "https://x.test/v1", headers=dict(auth.headers))
    assert KEY not in repr(request.headers)
    assert KEY not in repr(httpx.Headers(dict(auth.headers)))


def test_environment_secrets_cover_keys_passwords_and_url_passwords() -> None:
    env = {
        "BUILTWITH_API_KEY": "bw-key-1234",
        "DAGSTER_PG_PASSWORD": "dagster-pw",
        "DBT_ENV_SECRET_PG_PASSWORD": "dbt-pw-5678",
        "ENRICHMENT_WEBHOOK_SECRET": "hook-secret",
        "WAREHOUSE_URL": "postgresql://etl:p%40ss-word@db.internal:5432/wh",
        "ENRICHMENT_MODE": "live",
        "HOME": "/root",
    }
    secrets = set(environment_secrets(env))
    assert {"bw-key-1234", "dagster-pw", "dbt-pw-5678", "hook-secret", "p%40ss-word", "p@ss-word"} <= secrets
    assert not {"live", "/root"} & secrets
    redactor = Redactor.from_environment(env)
    assert redactor.text("x p@ss-word y bw-key-1234") == f"x {MASK} y {MASK}"


def test_shown_caps_escapes_and_redacts() -> None:
    redactor = Redactor(["SENTINEL-1234"])
    text = shown("a\nforged line\x1b[31m SENTINEL-1234 " + "x" * 500, redactor)
    assert "\n" not in text and "\x1b" not in text and "SENTINEL" not in text
    assert text.startswith("a\\nforged line\\x1b[31m *** ")
    assert len(text) < 240 and text.endswith(" more characters)")
    # A file name with an undecodable byte (surrogate-escaped by os.listdir) is shown, not crashed on.
    assert shown("list\udcff.txt") == "list\\xff.txt"


# --- the one-pass shortcut for JSON answers agrees with the walk over every string ---------------

SECRETS = ["bench-KEY-1234", "12345678", "pass word", "Sentinel/Key+7d3a=="]


def _forms(secret: str) -> list[str]:
    """How an answer may echo `secret`: verbatim, recased, percent-encoded, `+` for a space,
    as basic credentials, or with a letter Unicode folds onto an ASCII one (Kelvin sign, long s)."""
    import base64
    from urllib.parse import quote

    return [
        secret,
        secret.upper(),
        secret.swapcase(),
        quote(secret, safe=""),
        quote(secret, safe="").lower(),
        secret.replace(" ", "+"),
        base64.b64encode(f"{secret}:".encode()).decode().lower(),
        secret.replace("K", "\u212a").replace("k", "\u212a").replace("s", "\u017f"),
    ]


_ECHOES = st.sampled_from([form for secret in SECRETS for form in _forms(secret)])
_TEXT = st.one_of(
    st.text(max_size=12),
    _ECHOES,
    st.builds(lambda a, e, b: a + e + b, st.text(max_size=4), _ECHOES, st.text(max_size=4)),
)
_LEAF = st.one_of(
    _TEXT, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(), st.just(12345678)
)
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=_JSON, chosen=st.sets(st.sampled_from(SECRETS), min_size=1))
def test_the_shortcut_never_keeps_what_the_walk_would_mask(value, chosen) -> None:
    redactor = Redactor(chosen)
    walked = redactor._walk(value)
    assert json.dumps(redactor.obj(value)) == json.dumps(walked)  # as text: NaN never equals itself
    if isinstance(value, dict | list) and redactor._plainly_clean(value):
        assert json.dumps(walked) == json.dumps(value)


def test_the_shortcut_is_taken_for_a_plain_answer_and_refused_where_it_cannot_decide() -> None:
    redactor = Redactor(["bench-KEY-1234"])
    answer = {"Results": [{"Result": {"Paths": [{"Technologies": [{"Name": "nginx", "FirstDetected": 1}]}]}}]}
    assert redactor._plainly_clean(answer)
    assert redactor.obj(answer) is answer  # nothing rebuilt
    assert not redactor._plainly_clean({"url": "https://x.test/?q=a%20b"})  # a % may hide an encoded key
    assert not redactor._plainly_clean({"name": "Zürich AG"})  # non-ASCII: Unicode case folds
    assert not redactor._plainly_clean({"echo": "BENCH-key-1234"})
    assert redactor.obj({"echo": "BENCH-key-1234"}) == {"echo": MASK}
    for escaped in ('quo"te-key', "tab\tkey-1", "back\\slash"):  # JSON would escape it in the dump
        assert not Redactor([escaped])._plainly_clean(answer)


def test_every_recorded_provider_answer_takes_the_shortcut() -> None:
    """The real answers kept as fixtures (all providers) are redacted in one pass, not walked."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    answers = [json.loads(f.read_text()) for f in sorted(fixtures.rglob("*.json"))]
    answers = [a for a in answers if isinstance(a, dict | list)]
    assert len(answers) >= 30
    redactor = Redactor(["bench-KEY-1234", "sk_live_0123456789abcdef"])
    assert all(redactor._plainly_clean(answer) for answer in answers)
