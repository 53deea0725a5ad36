"""TLS to PostgreSQL: `require` / `verify-full` are enforced (no plaintext fallback), on the real server.

The test server accepts plaintext only, so asking for TLS must fail, clearly and without the password:
that is what keeps a remote warehouse's password off the network when TLS is asked for.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from enrichment_pipeline.lib.warehouse import Warehouse, WarehouseError

pytestmark = pytest.mark.postgres
PASSWORD = "SENTINEL-pg-pw-31c"


def _with(url: str, query: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    user, _, host = netloc.rpartition("@")
    netloc = f"{user.split(':')[0] or 'postgres'}:{password}@{host or netloc}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_asking_for_tls_never_falls_back_to_plaintext(postgres_server_url: str, mode: str, tmp_path):
    url = _with(postgres_server_url, f"sslmode={mode}&sslrootcert={tmp_path / 'ca.pem'}")
    with pytest.raises(WarehouseError) as error:
        Warehouse.open(url).close()
    message = str(error.value)
    assert "SSL" in message or "certificate" in message or "root" in message, message
    assert PASSWORD not in message


def test_pgsslmode_applies_when_the_url_sets_none(postgres_server_url: str, monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "require")
    with pytest.raises(WarehouseError, match="SSL"):
        Warehouse.open(_with(postgres_server_url, "")).close()
    monkeypatch.setenv("PGSSLMODE", "disable")
    Warehouse.open(_with(postgres_server_url, "")).close()  # trust auth: the password is ignored
