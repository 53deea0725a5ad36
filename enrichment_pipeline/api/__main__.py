"""`python -m enrichment_pipeline.api` (`make api`): serve the API with uvicorn on API_HOST:API_PORT."""

from __future__ import annotations

import logging
import logging.config
import sys

import uvicorn

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.api.config import ApiConfig
from enrichment_pipeline.lib.settings import SettingsError

# Given to uvicorn too, which applies it in every worker process (they do not inherit it).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
}


def main() -> int:
    try:
        config = ApiConfig.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(LOG_CONFIG)
    source = (
        "PostgreSQL" if config.warehouse_url.startswith("postgres") else f"snapshot {config.snapshot_path}"
    )
    logging.getLogger("enrichment_pipeline.api").info(
        "serving %s on http://%s:%s with %d worker process(es)",
        source,
        config.host,
        config.port,
        config.workers,
    )
    uvicorn.run(
        # Several workers need the app by name: each process builds its own from the environment.
        create_app(config) if config.workers == 1 else f"{create_app.__module__}:create_app",
        factory=config.workers > 1,
        workers=config.workers,
        host=config.host,
        port=config.port,
        log_level="warning",
        log_config=LOG_CONFIG,
        access_log=False,
        # Longer than clients' usual pool idle time, so a reused connection is rarely closed under them.
        timeout_keep_alive=65,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
