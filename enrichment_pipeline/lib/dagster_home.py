"""The Dagster instance directory the CLI and the API share (`DAGSTER_HOME`, default `data/dagster`)."""

from __future__ import annotations

import os
from pathlib import Path


def ensure_dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        # Persistent, so `make dev` shows the runs the CLI and the API made.
        home = str(Path.cwd() / "data" / "dagster")
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    config = Path(home) / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return Path(home)
