"""The read API's own small state: keys, enrichment jobs, webhook deliveries (one SQLite file).

Kept apart from the warehouse on purpose: the API reads the warehouse (or its
serving snapshot) only, and DuckDB lets a single process write a file, so the
API's writes (a key's last use, a new job) must never compete with the
pipeline's writer. SQLite in WAL mode lets the CLI (`api-keys create`) and the
running API share the file safely.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path

STATE_ENV = "API_STATE_DB"
DEFAULT_STATE = "data/api_state.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    scopes TEXT NOT NULL,
    tier TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT
);
CREATE TABLE IF NOT EXISTS enrichment_jobs (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    status TEXT NOT NULL,
    domains TEXT NOT NULL,
    rejected TEXT NOT NULL,
    force INTEGER NOT NULL,
    webhook_url TEXT,
    estimate TEXT,
    run_ids TEXT NOT NULL DEFAULT '[]',
    results TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS enrichment_jobs_key ON enrichment_jobs (key_id, created_at);
CREATE TABLE IF NOT EXISTS rate_windows (
    key_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key_id, kind)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    url TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    duration_ms REAL,
    PRIMARY KEY (job_id, attempt)
);
"""


def state_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(STATE_ENV, "").strip() or DEFAULT_STATE).expanduser()


class StateStore:
    """One SQLite connection per thread on one file; schema created on first open."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.connect() as conn:
            conn.executescript(_SCHEMA)

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: autocommit; `with conn` still wraps a transaction.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self.connect().execute(sql, params)

    def data_version(self) -> int:
        """Changes when another connection (another thread, the CLI) committed a change."""
        return self.connect().execute("PRAGMA data_version").fetchone()[0]

    def transaction(self) -> _Transaction:
        return _Transaction(self.connect())


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
