"""The schema of a region's card-service database (bj.db, tj.db, he.db), as migrations.

A released migration is history: never edit it, append a new one. Tables are STRICT so
SQLite refuses a value of the wrong type (a money amount stored as text, say); CHECK
constraints and triggers are raw SQL because sqlite-utils cannot express them.
"""

from __future__ import annotations

import sqlite_utils

from sbcard.store.migrations import Migration

# GB/T 2260 divisions of the whole Jing-Jin-Ji area, so every node can name any region
# (a Tianjin card's issuer, a Hebei operator's district) without asking another node.
# Shared with the hub's first migration.
REGIONS_V1 = """
CREATE TABLE regions (
    code   TEXT PRIMARY KEY CHECK (code GLOB '[1-9][0-9][0-9][0-9][0-9][0-9]'),
    name   TEXT NOT NULL,
    level  TEXT NOT NULL CHECK (level IN ('province', 'prefecture', 'county')),
    parent TEXT REFERENCES regions (code),
    CHECK ((level = 'province') = (parent IS NULL))
) STRICT;
"""

_OPERATORS_AND_AUDIT_V1 = """
CREATE TABLE operators (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('counter', 'finance', 'supervisor')),
    region     TEXT NOT NULL REFERENCES regions (code),
    created_at TEXT NOT NULL
) STRICT;

-- Every state change made by staff (DESIGN.md, Audit). `operator` is deliberately not a
-- foreign key: the log must also record the system's own actions and must never be
-- blocked by the state of other tables. Corrections are new entries.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    operator TEXT NOT NULL,
    outlet   TEXT,
    action   TEXT NOT NULL,
    subject  TEXT,
    reason   TEXT,
    details  TEXT CHECK (details IS NULL OR json_valid(details))
) STRICT;
CREATE INDEX audit_log_subject ON audit_log (subject);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"""


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.executescript(REGIONS_V1)
    db.executescript(_OPERATORS_AND_AUDIT_V1)
    # The region's issuer master keys, from which each card's keys are diversified by
    # its serial number: DPK purchase, DLK load, DTK TAC, DAMK application maintenance,
    # MK card maintenance. In production these never leave an HSM; the simulator keeps
    # them here in clear so that the emulated issuer and clearing can compute with them.
    db["issuer_keys"].create(
        {
            "purpose": str,
            "algorithm": str,
            "key_version": int,
            "key_hex": str,
            "created_at": str,
        },
        pk="purpose",
        not_null=["algorithm", "key_version", "key_hex", "created_at"],
        strict=True,
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "regions, operators, audit log, issuer keys", _v1_initial),
)
