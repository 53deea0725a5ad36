"""The redactor closes every form a key is echoed in; auth objects and headers never print a key."""

from __future__ import annotations

import json

import httpx
import pytest

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
