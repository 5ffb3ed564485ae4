"""Opening a node's SQLite database with the settings the whole service relies on.

- `isolation_level=None`: the sqlite3 module never opens transactions behind our back;
  `UnitOfWork` issues BEGIN IMMEDIATE / COMMIT / ROLLBACK itself (sqlite-utils nests
  its own writes inside ours as savepoints).
- WAL: terminals' uploads and staff queries read while a use case writes.
- busy_timeout: a second process waits for the write lock instead of failing at once.
- foreign_keys: off by default in SQLite; the schema's references mean nothing without it.
- synchronous=NORMAL: with WAL a power cut may lose the last commits but never corrupts
  the file - the usual trade-off for WAL.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import sqlite_utils

from sbcard.domain.errors import SbcardError

BUSY_TIMEOUT_MS = 5000


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path`, configured for the service."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise SbcardError("store.open_failed", f"cannot open database {path}: {exc}") from exc
    if mode.lower() != "wal":
        conn.close()
        raise SbcardError("store.no_wal", f"database {path} cannot use WAL mode (got {mode})")
    return sqlite_utils.Database(conn)


def content_digest(db: sqlite_utils.Database) -> str:
    """SHA-256 over the schema and every row, in a stable order.

    Two databases with the same digest hold the same data: used to prove that re-running
    `sbcard init` changes nothing and that a seeded simulation is reproducible.
    """
    digest = hashlib.sha256()
    for line in db.conn.iterdump():
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
