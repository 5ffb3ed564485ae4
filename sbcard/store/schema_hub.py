"""The schema of the hub's database (hub.db), the national exchange, as migrations.

A released migration is history: never edit it, append a new one.
"""

from __future__ import annotations

import sqlite_utils

from sbcard.store.migrations import Migration
from sbcard.store.schema_region import REGIONS_V1

_DIRECTORY_AND_BLACKLIST_V1 = """
-- Where each card lives and what state it is in: a terminal or another region asks here,
-- the issuing region remains the owner of the card's record.
CREATE TABLE card_directory (
    card_number    TEXT PRIMARY KEY CHECK (length(card_number) = 9),
    card_id_code   TEXT NOT NULL UNIQUE CHECK (length(card_id_code) = 32),
    citizen_id     TEXT NOT NULL CHECK (length(citizen_id) = 18),
    issuing_region TEXT NOT NULL REFERENCES regions (code),
    status         TEXT NOT NULL
                   CHECK (status IN ('issued', 'active', 'lost', 'replaced', 'cancelled')),
    updated_at     TEXT NOT NULL
) STRICT;
CREATE INDEX card_directory_citizen ON card_directory (citizen_id);

-- The blacklist is published in numbered versions that terminals copy; an entry adds or
-- removes one card relative to the previous version. A published entry never changes.
-- card_number is not a foreign key: a national blacklist may name cards from outside JJJ.
CREATE TABLE blacklist_entries (
    version     INTEGER NOT NULL REFERENCES blacklist_versions (version),
    card_number TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    reason      TEXT,
    PRIMARY KEY (version, card_number)
) STRICT;
CREATE TRIGGER blacklist_entries_no_update BEFORE UPDATE ON blacklist_entries
BEGIN SELECT RAISE(ABORT, 'blacklist_entries is append-only'); END;
CREATE TRIGGER blacklist_entries_no_delete BEFORE DELETE ON blacklist_entries
BEGIN SELECT RAISE(ABORT, 'blacklist_entries is append-only'); END;

-- Every cross-region message, recorded once under its idempotency key: a retried upload
-- or settlement finds its earlier result here instead of being applied twice.
CREATE TABLE messages (
    idempotency_key TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    from_node       TEXT NOT NULL,
    to_node         TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    result          TEXT CHECK (result IS NULL OR json_valid(result))
) STRICT;
"""


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.executescript(REGIONS_V1)
    db["blacklist_versions"].create(
        {"version": int, "published_at": str, "note": str},
        pk="version",
        not_null=["published_at"],
        strict=True,
    )
    db.executescript(_DIRECTORY_AND_BLACKLIST_V1)


_CONCESSION_REVOCATIONS_V2 = """
-- Transit concessions revoked on a card (the elderly free ride moved to the holder's new
-- card): published with the blacklist's numbered versions, so a terminal that reports
-- version N holds both lists as of N. The card itself stays valid; a terminal charges it
-- the full fare. A published entry never changes.
CREATE TABLE concession_revocations (
    version     INTEGER NOT NULL REFERENCES blacklist_versions (version),
    card_number TEXT NOT NULL CHECK (length(card_number) = 9),
    kind        TEXT NOT NULL CHECK (kind IN ('elderly_free_ride', 'student')),
    reason      TEXT,
    PRIMARY KEY (card_number, kind)
) STRICT;
CREATE INDEX concession_revocations_version ON concession_revocations (version);
CREATE TRIGGER concession_revocations_no_update BEFORE UPDATE ON concession_revocations
BEGIN SELECT RAISE(ABORT, 'concession_revocations is append-only'); END;
CREATE TRIGGER concession_revocations_no_delete BEFORE DELETE ON concession_revocations
BEGIN SELECT RAISE(ABORT, 'concession_revocations is append-only'); END;
"""


def _v2_concession_revocations(db: sqlite_utils.Database) -> None:
    db.executescript(_CONCESSION_REVOCATIONS_V2)


_LINKS_V3 = """
-- Whether the hub can reach each region's host (the simulator cuts links; staff mark an
-- outage with `sbcard hub link NODE --down`). No row: the link is up.
CREATE TABLE links (
    node       TEXT PRIMARY KEY CHECK (node IN ('bj', 'tj', 'he')),
    up         INTEGER NOT NULL CHECK (up IN (0, 1)),
    changed_at TEXT,
    note       TEXT
) STRICT;
"""


def _v3_links(db: sqlite_utils.Database) -> None:
    db.executescript(_LINKS_V3)


_SETTLEMENT_V4 = """
-- Every clearing line the regions sent through the hub (a copy of the payer's row in its
-- region's clearing_lines), and when the hub delivered it to the payee's region (null:
-- not yet, e.g. the payee's link is down; a same-region line needs no delivery).
CREATE TABLE clearing_lines (
    day          TEXT NOT NULL CHECK (length(day) = 10),
    kind         TEXT NOT NULL CHECK (kind IN ('transit', 'medical')),
    payer_node   TEXT NOT NULL CHECK (payer_node IN ('bj', 'tj', 'he')),
    payee_node   TEXT NOT NULL CHECK (payee_node IN ('bj', 'tj', 'he')),
    party        TEXT NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    amount_fen   INTEGER NOT NULL,
    flagged      INTEGER NOT NULL DEFAULT 0 CHECK (flagged >= 0),
    refunds      INTEGER NOT NULL DEFAULT 0 CHECK (refunds >= 0),
    received_at  TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (day, kind, payer_node, payee_node, party)
) STRICT;
CREATE INDEX clearing_lines_undelivered ON clearing_lines (payee_node) WHERE delivered_at IS NULL;
CREATE TRIGGER hub_clearing_lines_no_delete BEFORE DELETE ON clearing_lines
BEGIN SELECT RAISE(ABORT, 'clearing_lines are kept'); END;
CREATE TRIGGER hub_clearing_lines_fixed BEFORE UPDATE OF day, kind, payer_node, payee_node, party, count,
    amount_fen, flagged, refunds ON clearing_lines
BEGIN SELECT RAISE(ABORT, 'a clearing line never changes'); END;

-- The day's settlement (结算) between the regions, recorded once (idempotency key
-- `settlement/<day>`, also in messages): the matrix payer -> payee of every line of the
-- day, each region's net position (sums to zero) and the per operator/hospital totals.
CREATE TABLE settlements (
    day             TEXT PRIMARY KEY CHECK (length(day) = 10),
    idempotency_key TEXT NOT NULL UNIQUE,
    matrix          TEXT NOT NULL CHECK (json_valid(matrix)),
    net             TEXT NOT NULL CHECK (json_valid(net)),
    parties         TEXT NOT NULL CHECK (json_valid(parties)),
    result          TEXT NOT NULL CHECK (json_valid(result)),  -- the clearing run's answer for the day
    recorded_at     TEXT NOT NULL
) STRICT;
CREATE TRIGGER settlements_no_update BEFORE UPDATE ON settlements
BEGIN SELECT RAISE(ABORT, 'settlements is append-only'); END;
CREATE TRIGGER settlements_no_delete BEFORE DELETE ON settlements
BEGIN SELECT RAISE(ABORT, 'settlements is append-only'); END;
"""


def _v4_settlement(db: sqlite_utils.Database) -> None:
    db.executescript(_SETTLEMENT_V4)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "regions, card directory, blacklist, message log", _v1_initial),
    Migration(2, "transit concessions revoked on cards, versioned with the blacklist", _v2_concession_revocations),
    Migration(3, "links: which regions the hub can reach", _v3_links),
    Migration(4, "settlement: clearing lines through the hub, the day's settlement", _v4_settlement),
)
