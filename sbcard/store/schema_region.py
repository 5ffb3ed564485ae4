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


_ISSUANCE_V2 = """
-- The registry: people known to this region's card service (insured here or living here).
CREATE TABLE persons (
    citizen_id       TEXT PRIMARY KEY CHECK (length(citizen_id) = 18),
    name             TEXT NOT NULL CHECK (length(trim(name)) > 0),
    sex              TEXT NOT NULL CHECK (sex IN ('M', 'F')),
    birth_date       TEXT NOT NULL,
    ethnicity        INTEGER NOT NULL DEFAULT 1 CHECK (ethnicity BETWEEN 1 AND 98),
    phone            TEXT,
    address          TEXT,
    photo_ref        TEXT,
    household_region TEXT NOT NULL REFERENCES regions (code),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;

-- Insurance enrolment; the insured region issues the person's card (跨省通办 included).
CREATE TABLE enrolments (
    citizen_id     TEXT PRIMARY KEY REFERENCES persons (citizen_id),
    insured_region TEXT NOT NULL REFERENCES regions (code),
    insurance_type TEXT NOT NULL CHECK (insurance_type IN ('employee', 'resident')),
    retired        INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
    since          TEXT NOT NULL
) STRICT;

-- Guardians of minors; a guardian may be registered in another region (no foreign key).
CREATE TABLE guardians (
    minor_id    TEXT NOT NULL REFERENCES persons (citizen_id),
    guardian_id TEXT NOT NULL CHECK (length(guardian_id) = 18),
    relation    TEXT NOT NULL,
    PRIMARY KEY (minor_id, guardian_id)
) STRICT;

-- Service outlets of this region (fixtures/outlets.csv).
CREATE TABLE outlets (
    code      TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    region    TEXT NOT NULL REFERENCES regions (code),
    kind      TEXT NOT NULL CHECK (kind IN ('outlet', 'bank_branch', 'experience_centre', 'self_service')),
    address   TEXT,
    low_stock INTEGER NOT NULL DEFAULT 20 CHECK (low_stock >= 0)
) STRICT;

-- Blank card stock, one row per physical blank (its chip serial), held by an outlet.
CREATE TABLE blank_cards (
    chip_serial TEXT PRIMARY KEY CHECK (length(chip_serial) = 16),
    outlet      TEXT NOT NULL REFERENCES outlets (code),
    path        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('in_stock', 'used', 'spoiled')),
    received_at TEXT NOT NULL,
    used_at     TEXT,
    used_for    TEXT
) STRICT;
CREATE INDEX blank_cards_outlet ON blank_cards (outlet, status);

-- Applications (申领): instant at an outlet, or online (made centrally and mailed).
-- `outlet` may belong to another region when the person applies away from home.
CREATE TABLE applications (
    id               TEXT PRIMARY KEY,
    citizen_id       TEXT NOT NULL REFERENCES persons (citizen_id),
    outlet           TEXT NOT NULL,
    outlet_region    TEXT NOT NULL REFERENCES regions (code),
    channel          TEXT NOT NULL CHECK (channel IN ('instant', 'online')),
    kind             TEXT NOT NULL CHECK (kind IN ('first', 'newborn', 'replacement')),
    delivery_address TEXT,
    guardian_id      TEXT,
    status           TEXT NOT NULL
                     CHECK (status IN ('applied', 'in_production', 'mailed', 'delivered', 'issued', 'withdrawn')),
    operator         TEXT NOT NULL,
    card_number      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CHECK ((channel = 'online') = (delivery_address IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX one_open_application_per_person ON applications (citizen_id)
    WHERE status IN ('applied', 'in_production', 'mailed');

-- Cards this region issued. At most one valid card per person (the hub enforces it
-- across regions; this index within the region).
CREATE TABLE cards (
    card_number     TEXT PRIMARY KEY CHECK (length(card_number) = 9),
    card_id_code    TEXT NOT NULL UNIQUE CHECK (length(card_id_code) = 32),
    citizen_id      TEXT NOT NULL REFERENCES persons (citizen_id),
    application_id  TEXT NOT NULL REFERENCES applications (id),
    chip_serial     TEXT NOT NULL UNIQUE,
    app_serial      TEXT NOT NULL UNIQUE CHECK (length(app_serial) = 20),
    status          TEXT NOT NULL CHECK (status IN ('issued', 'active', 'lost', 'replaced', 'cancelled')),
    loss_kind       TEXT CHECK (loss_kind IN ('temporary', 'formal')),
    loss_expires_at TEXT,
    issue_date      TEXT NOT NULL,
    expiry_date     TEXT NOT NULL,
    outlet          TEXT NOT NULL,
    replaces        TEXT REFERENCES cards (card_number),
    virtual_path    TEXT,  -- where the simulator keeps this card's chip (emulator), if it does
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK ((status = 'lost') = (loss_kind IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX one_valid_card_per_person ON cards (citizen_id)
    WHERE status IN ('issued', 'active', 'lost');

-- Everything that happened to a card, with who, where, when and why. Append-only.
CREATE TABLE card_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    card_number TEXT NOT NULL REFERENCES cards (card_number),
    at          TEXT NOT NULL,
    event       TEXT NOT NULL,
    operator    TEXT NOT NULL,
    outlet      TEXT,
    reason      TEXT,
    details     TEXT CHECK (details IS NULL OR json_valid(details))
) STRICT;
CREATE INDEX card_events_card ON card_events (card_number);
CREATE TRIGGER card_events_no_update BEFORE UPDATE ON card_events
BEGIN SELECT RAISE(ABORT, 'card_events is append-only'); END;
CREATE TRIGGER card_events_no_delete BEFORE DELETE ON card_events
BEGIN SELECT RAISE(ABORT, 'card_events is append-only'); END;

-- Counters for numbers the region allocates (card numbers, application serials,
-- application ids, bank accounts): one row per name, bumped inside the use case's
-- transaction so a rolled-back issuance never burns a number.
CREATE TABLE sequences (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL CHECK (value >= 0)
) STRICT;

-- Accounts of the region's double-entry ledger. Holder accounts are the cards'
-- financial accounts (金融账户): they follow the person from card to card. Internal
-- accounts: cash at an outlet, subsidy funds, the purse float, clearing with others.
CREATE TABLE accounts (
    account_no  TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('holder', 'cash', 'fund', 'purse_float', 'clearing')),
    citizen_id  TEXT REFERENCES persons (citizen_id),
    card_number TEXT REFERENCES cards (card_number),
    status      TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    opened_at   TEXT NOT NULL,
    closed_at   TEXT,
    CHECK ((kind = 'holder') = (citizen_id IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX one_open_holder_account ON accounts (citizen_id) WHERE status != 'closed';

-- Ledger entries: every transaction (txn_id) is two or more entries summing to zero.
-- Append-only; a correction is a new transaction.
CREATE TABLE ledger_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id     TEXT NOT NULL,
    account_no TEXT NOT NULL REFERENCES accounts (account_no),
    amount_fen INTEGER NOT NULL CHECK (amount_fen != 0),
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    operator   TEXT NOT NULL,
    outlet     TEXT,
    memo       TEXT
) STRICT;
CREATE INDEX ledger_entries_account ON ledger_entries (account_no);
CREATE INDEX ledger_entries_txn ON ledger_entries (txn_id);
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

-- Purse balances left on replaced cards, refunded to the holder once the old card's
-- clearing window has passed (late offline taps may still arrive until then).
CREATE TABLE purse_refunds (
    old_card   TEXT PRIMARY KEY REFERENCES cards (card_number),
    new_card   TEXT REFERENCES cards (card_number),
    amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
    due_at     TEXT NOT NULL,
    paid_at    TEXT,
    txn_id     TEXT
) STRICT;

-- Messages to other nodes, written in the same transaction as the change they report
-- (the outbox pattern): delivery happens after commit, is retried until acknowledged,
-- and the receiver applies each idempotency key once.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    to_node         TEXT NOT NULL CHECK (to_node IN ('bj', 'tj', 'he', 'hub')),
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
) STRICT;
CREATE INDEX outbox_pending ON outbox (delivered_at) WHERE delivered_at IS NULL;

-- Messages received from other nodes, once each.
CREATE TABLE inbox (
    idempotency_key TEXT PRIMARY KEY,
    from_node       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    result          TEXT CHECK (result IS NULL OR json_valid(result))
) STRICT;
"""


def _v2_issuance(db: sqlite_utils.Database) -> None:
    db.executescript(_ISSUANCE_V2)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "regions, operators, audit log, issuer keys", _v1_initial),
    Migration(2, "registry, outlets, stock, applications, cards, accounts, ledger, outbox", _v2_issuance),
)
