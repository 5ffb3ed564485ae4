"""Opening a node's SQLite database with the settings the whole service relies on.

- `isolation_level=None`: the sqlite3 module never opens transactions behind our back;
  `UnitOfWork` issues BEGIN IMMEDIATE / COMMIT / ROLLBACK itself (sqlite-utils nests
  its own writes inside ours as savepoints).
- WAL: terminals' uploads and staff queries read while a use case writes.
- busy_timeout: a second process waits for the write lock instead of failing at once.
- foreign_keys: off by default in SQLite; the schema's references mean nothing without it.
- synchronous=NORMAL: with WAL a power cut may lose the last commits but never corrupts
  the file - the usual trade-off for WAL.

``SchemaCachedDatabase``: sqlite-utils asks ``sqlite_master`` for the names of every table
and view each time a table is named (``db["cards"]``) or checked to exist; a use case names
dozens. The names are kept until the schema changes (``PRAGMA schema_version``, which any
connection's DDL moves on), so one cheap pragma replaces each scan of the schema. Its
``query`` runs a plain ``SELECT`` straight on the connection: sqlite-utils wraps every query
in a savepoint (three statements instead of one) only so that a statement which turns out
to write can be undone before it refuses it, and a ``SELECT`` never writes; anything else
still goes through sqlite-utils.

``STATEMENT_CACHE``: sqlite3 keeps the compiled form of the connection's last statements;
a day of the simulator runs a few hundred distinct ones per database, more than its default
of 128, and compiling one costs more than running it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.utils import dedupe_keys

from sbcard.domain.errors import InvalidInput, SbcardError

BUSY_TIMEOUT_MS = 5000
STATEMENT_CACHE = 1024


def open_db(path: Path, *, shared: bool = False) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path`, configured for the service.

    ``shared``: the connection may be used (one thread at a time) and closed by another
    thread than the one that opened it — the network service's worlds, closed when their
    worker thread ends.
    """
    if Path(path).is_dir():
        raise InvalidInput("store.is_directory", f"{path} is a directory, not a database file")
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                               cached_statements=STATEMENT_CACHE, check_same_thread=not shared)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise SbcardError("store.open_failed", f"cannot open database {path}: {exc}") from exc
    if mode.lower() != "wal":
        conn.close()
        raise SbcardError("store.no_wal", f"database {path} cannot use WAL mode (got {mode})")
    return SchemaCachedDatabase(conn)


class SchemaCachedDatabase(sqlite_utils.Database):
    """A ``sqlite_utils.Database`` whose table and view names are read again only when the schema changes."""

    _names: tuple[int, tuple[str, ...], tuple[str, ...]] | None = None

    def _schema_names(self) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
        version = self.conn.execute("PRAGMA schema_version").fetchone()[0]
        if self._names is None or self._names[0] != version:
            rows = self.conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
            self._names = (version, tuple(n for t, n in rows if t == "table"), tuple(n for t, n in rows if t == "view"))
        return self._names

    def table_names(self, fts4: bool = False, fts5: bool = False) -> list[str]:
        if fts4 or fts5:
            return super().table_names(fts4=fts4, fts5=fts5)
        return list(self._schema_names()[1])

    def view_names(self) -> list[str]:
        return list(self._schema_names()[2])

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        if self._tracer is not None or sql.lstrip()[:6].upper() != "SELECT":
            return super().query(sql, params)
        cursor = self.conn.execute(sql) if params is None else self.conn.execute(sql, params)
        keys = [d[0] for d in cursor.description]
        if len(set(keys)) != len(keys):
            keys = dedupe_keys(keys)
        return (dict(zip(keys, row)) for row in cursor)


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
