"""Dagster instance settings of the project: its event-log storages and its `dagster.yaml` template.

Dagster reads a few switches from environment variables (`DAGSTER_EVENT_BATCH_SIZE`,
`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`). A variable is easy to forget in one of the
processes that write events (CLI, webserver, daemon, code server, run workers), so the project's
event-log storages carry those settings instead: every process that loads the instance from
`dagster.yaml` gets the same ones. They also set the daemon's passes over backfills and sensors,
which Dagster keeps as constants (`daemon_pace.py`). `install_instance_config` puts the template into a
DAGSTER_HOME (`make run|dev` and the CLI call it; `python -m enrichment_pipeline.instance`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

# The instance config `make` and the CLI install into a DAGSTER_HOME.
DAGSTER_YAML_TEMPLATE = Path(__file__).with_name("dagster.yaml")
# First line of every version of the template: a file that starts with it is ours to refresh.
TEMPLATE_MARKER = "# Dagster instance of the project"
# What earlier versions of the CLI wrote into a new DAGSTER_HOME.
_LEGACY_CONFIG = "telemetry:\n  enabled: false\n"


def install_instance_config(home: Path) -> str:
    """Write the project's `dagster.yaml` into `home` unless a user's own file is there.

    Returns "installed", "updated", "current" or "kept" (a file the user wrote stays untouched).
    """
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    template = DAGSTER_YAML_TEMPLATE.read_text()
    if not target.exists():
        state = "installed"
    else:
        current = target.read_text()
        if current == template:
            return "current"
        if not (current.startswith(TEMPLATE_MARKER) or current == _LEGACY_CONFIG):
            return "kept"
        state = "updated"
    tmp = target.with_name(f".dagster.yaml.{os.getpid()}.tmp")
    tmp.write_text(template)
    tmp.replace(target)
    return state


def main() -> int:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        print("DAGSTER_HOME is not set", file=sys.stderr)
        return 2
    state = install_instance_config(Path(home))
    if state == "kept":
        print(
            f"{home}/dagster.yaml is your own: kept. The project's settings are in {DAGSTER_YAML_TEMPLATE}",
            file=sys.stderr,
        )
    elif state != "current":
        print(f"{home}/dagster.yaml {state} from the project's template", file=sys.stderr)
    return 0


def postgres_env(database_url: str) -> dict[str, str]:
    """The `DAGSTER_PG_*` variables deploy/dagster.yaml reads, for a PostgreSQL database URL."""
    parts = urlsplit(database_url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "localhost",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": unquote(parts.username or "postgres"),
        "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }
