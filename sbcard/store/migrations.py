"""A small, strict migration runner for the nodes' databases.

Each database kind ("region", "hub") has an ordered list of `Migration`s numbered 1, 2, 3…
Every database records who it is and how far it has come:

- `schema_meta(key, value)`: `kind`, `schema_version`, `created_at` and, for a region,
  `region_code` - so a Tianjin file copied over `bj.db`, or a hub file opened as a region,
  is refused instead of silently served;
- `schema_migrations(version, name, applied_at)`: one row per applied migration, never
  updated or deleted (triggers enforce it) - the database's own upgrade history.

Each migration runs in its own transaction together with its bookkeeping, so a crash
leaves the database at a whole version. A database newer than the code is refused: old
code must not write into a schema it does not understand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import attrs
import sqlite_utils

from sbcard.domain.errors import SbcardError
from sbcard.store.unit_of_work import UnitOfWork

KINDS = ("region", "hub")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY CHECK (version >= 1),
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS schema_migrations_no_update
BEFORE UPDATE ON schema_migrations
BEGIN SELECT RAISE(ABORT, 'schema_migrations is append-only'); END;
CREATE TRIGGER IF NOT EXISTS schema_migrations_no_delete
BEFORE DELETE ON schema_migrations
BEGIN SELECT RAISE(ABORT, 'schema_migrations is append-only'); END;
"""


@attrs.frozen
class Migration:
    """One step of a schema's history; `apply` runs inside the migration's transaction."""

    version: int = attrs.field(validator=attrs.validators.ge(1))
    name: str = attrs.field(validator=attrs.validators.min_len(1))
    apply: Callable[[sqlite_utils.Database], None]


def timestamp(dt: datetime) -> str:
    """ISO 8601 with offset: how every timestamp is stored (sorts and parses back)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"refusing to store a naive datetime: {dt!r}")
    return dt.isoformat()


def schema_version(db: sqlite_utils.Database) -> int:
    """The database's schema version; 0 for a database never migrated."""
    return int(read_meta(db).get("schema_version", "0"))


def read_meta(db: sqlite_utils.Database) -> dict[str, str]:
    if not db["schema_meta"].exists():
        return {}
    return {row["key"]: row["value"] for row in db.query("SELECT key, value FROM schema_meta")}


def migrate(
    db: sqlite_utils.Database,
    kind: str,
    migrations: Sequence[Migration],
    now: Callable[[], datetime],
    *,
    region_code: str | None = None,
) -> list[str]:
    """Bring `db` up to the last of `migrations`; return the names applied, in order.

    `now` supplies `applied_at` and `created_at` (an injected clock: `clock.now`).
    `region_code` (required for a region database, absent for the hub) is recorded on
    creation and checked on every later open.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown database kind {kind!r}")
    if (kind == "region") != (region_code is not None):
        raise ValueError("a region database needs its region_code; the hub has none")
    _check_sequence(migrations)
    _bootstrap(db, kind, region_code, now)
    latest = migrations[-1].version if migrations else 0
    current = schema_version(db)
    if current > latest:
        raise SbcardError(
            "store.newer_schema",
            f"{kind} database has schema version {current}, this sbcard knows up to "
            f"{latest}: upgrade sbcard",
        )
    applied: list[str] = []
    for migration in migrations[current:]:
        with UnitOfWork(db) as uow:
            # Another process may have applied it while we waited for the lock.
            if schema_version(uow.db) >= migration.version:
                continue
            migration.apply(uow.db)
            uow.db["schema_migrations"].insert(
                {
                    "version": migration.version,
                    "name": migration.name,
                    "applied_at": timestamp(now()),
                }
            )
            _set_meta(uow.db, schema_version=str(migration.version))
            uow.commit()
        applied.append(migration.name)
    return applied


def _bootstrap(
    db: sqlite_utils.Database,
    kind: str,
    region_code: str | None,
    now: Callable[[], datetime],
) -> None:
    """Create the bookkeeping tables and the database's identity, or check it.

    An existing identity is only read: no write lock, so opening a world never waits behind
    (nor fails behind, "database is locked") a long write of another process, such as a
    subsidy pay chunk or a production batch. Only a new database takes the lock, and looks
    again under it.
    """
    meta = read_meta(db)
    if not meta:
        with UnitOfWork(db) as uow:
            meta = read_meta(uow.db)
            if not meta:
                if uow.db.table_names():
                    raise SbcardError(
                        "store.not_sbcard", "database has tables but no sbcard schema_meta"
                    )
                uow.db.executescript(_BOOKKEEPING)
                identity = {"kind": kind, "schema_version": "0", "created_at": timestamp(now())}
                if region_code is not None:
                    identity["region_code"] = region_code
                _set_meta(uow.db, **identity)
                uow.commit()
                return
    if meta.get("kind") != kind:
        raise SbcardError(
            "store.wrong_kind",
            f"database is a {meta.get('kind', 'unknown')} database, expected a {kind} database",
        )
    if meta.get("region_code") != region_code:
        raise SbcardError(
            "store.wrong_region",
            f"database belongs to region {meta.get('region_code')}, expected {region_code}",
        )


def _set_meta(db: sqlite_utils.Database, **values: str) -> None:
    db["schema_meta"].upsert_all(
        [{"key": key, "value": value} for key, value in values.items()], pk="key"
    )


def _check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3… without gaps: {versions}")
