"""`python -m enrichment_pipeline.api` (`make api`): serve the API with uvicorn on API_HOST:API_PORT."""

from __future__ import annotations

import logging
import sys

import uvicorn

from enrichment_pipeline.api.app import create_app
from enrichment_pipeline.api.config import ApiConfig
from enrichment_pipeline.lib.settings import SettingsError


def main() -> int:
    try:
        config = ApiConfig.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source = (
        "PostgreSQL" if config.warehouse_url.startswith("postgres") else f"snapshot {config.snapshot_path}"
    )
    logging.getLogger("enrichment_pipeline.api").info(
        "serving %s on http://%s:%s", source, config.host, config.port
    )
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        # Longer than clients' usual pool idle time, so a reused connection is rarely closed under them.
        timeout_keep_alive=65,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
