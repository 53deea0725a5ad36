"""dbt never shows the warehouse password: it travels as a `DBT_ENV_SECRET_` variable.

Reproduces the old leak: with the password in `DBT_PG_PASSWORD`, any model or `--inline` query could
render `env_var('DBT_PG_PASSWORD')` into dbt's output and its compiled files, and dbt masked nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from enrichment_pipeline.defs.dbt.project import DBT_PROJECT_DIR
from enrichment_pipeline.lib.dbt_env import dbt_env, dbt_environment

pytestmark = pytest.mark.postgres
PASSWORD = "SENTINEL-dbt-pw-77a1"


def _dbt(args: list[str], tmp_path: Path, *, artifacts: bool = False) -> str:
    """What dbt printed and logged (and, with `artifacts`, the files it wrote under target/)."""
    dbt = Path(sys.executable).with_name("dbt")
    done = subprocess.run(
        [str(dbt), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        env={**os.environ, "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    files = [p for p in tmp_path.rglob("*") if p.is_file() and (artifacts or "target" not in p.parts)]
    return done.stdout + done.stderr + "".join(p.read_text(errors="replace") for p in files)


def test_the_password_is_masked_in_dbt_output_and_refused_in_models(postgres_server_url: str, tmp_path):
    parts = urlsplit(postgres_server_url)
    user = parts.netloc.rpartition("@")[0].split(":")[0] or "postgres"
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD}@{host}"))  # trust auth: ignored
    with dbt_environment(dbt_env(url)):
        # Anything dbt prints or logs that contains the password is masked (here, compiled SQL that
        # quotes it; the compiled file itself keeps what --vars said, which no model can do below).
        echoed = _dbt(
            ["compile", "--inline", "select '{{ var(\"echo\") }}' as x", "--vars", f"{{echo: {PASSWORD}}}"],
            tmp_path / "echo",
        )
        # A model cannot read the variable at all.
        read = _dbt(
            ["compile", "--inline", "select '{{ env_var(\"DBT_ENV_SECRET_PG_PASSWORD\") }}' as x"],
            tmp_path / "read",
            artifacts=True,
        )
    assert "select '*****' as x" in echoed, echoed[-2000:]
    assert PASSWORD not in echoed
    assert PASSWORD not in read
    assert "DBT_ENV_SECRET_" in read  # dbt says why it refused
