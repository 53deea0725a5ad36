"""`python -m enrichment_pipeline.api` (`make api`): serve the API with uvicorn on API_HOST:API_PORT."""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import uvicorn

from enrichment_pipeline.api import processes
from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.api.config import ApiConfig
from enrichment_pipeline.lib.settings import SettingsError

# Given to uvicorn too, and applied in every worker process (they do not inherit it).
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
    options: dict[str, Any] = dict(
        log_level="warning",
        access_log=False,
        # Longer than clients' usual pool idle time, so a reused connection is rarely closed under them.
        timeout_keep_alive=65,
    )
    if config.workers > 1:
        return processes.serve(config.host, config.port, config.workers, options, LOG_CONFIG)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_config=LOG_CONFIG, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
