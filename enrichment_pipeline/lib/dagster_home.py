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
    from enrichment_pipeline.instance import install_instance_config

    # The project's instance settings (batched event writes, one planned event per run), unless
    # the user's own dagster.yaml is there.
    install_instance_config(Path(home))
    return Path(home)
