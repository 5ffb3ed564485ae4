"""The schema of a region's card-service database (bj.db, tj.db, he.db), as migrations.

A released migration is history: never edit it, append a new one. Tables are STRICT so
SQLite refuses a value of the wrong type (a money amount stored as text, say); CHECK
constraints and triggers are raw SQL because sqlite-utils cannot express them.
"""

from __future__ import annotations

import sqlite_utils

from sbcard.chip.crypto import kdf
from sbcard.domain.errors import SbcardError
from sbcard.domain.regions import node_of
from sbcard.store import keystore
from sbcard.store.migrations import Migration
from sbcard.store.paths import home_of, relative_in_world

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
    # MK card maintenance. Kept here in clear until migration 12 moved them to the
    # region's sealed key store (sbcard/store/keystore.py) and dropped this table.
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


_TRANSIT_V3 = """
-- Transit terminals (validators, load machines) run by operators in this region. The
-- terminal's own state (PSAM, offline log, blacklist copy) lives in its directory under
-- <home>/terminals/<id>/; this row is the region's register of it.
CREATE TABLE terminals (
    id                TEXT PRIMARY KEY,                -- e.g. bj-subway-0001
    operator          TEXT NOT NULL,                   -- operator code: bj-subway, tj-bus, he-sjz-bus
    station           TEXT,
    node              TEXT NOT NULL CHECK (node IN ('bj', 'tj', 'he')),
    psam_id           TEXT NOT NULL,
    terminal_no       TEXT NOT NULL UNIQUE
                      CHECK (length(terminal_no) = 12 AND terminal_no NOT GLOB '*[^0-9A-Fa-f]*'),
    blacklist_version INTEGER,                         -- the version it reported at its last sync
    synced_at         TEXT,
    created_at        TEXT NOT NULL
) STRICT;
CREATE INDEX terminals_operator ON terminals (operator);

-- The two tables of records take a million rows a day: their columns are checked by the
-- code that writes them (sbcard/services/transit/host.py), SQLite keeps the money and the
-- statuses honest.
-- Operator side: offline purchase records uploaded by this region's terminals. A record
-- is one purchase on one card's purse: a re-upload of the same log entry (same card,
-- type, counter, terminal and terminal serial) is a duplicate and is stored once. The
-- same counter on another terminal or serial is *not* a duplicate: it is a counter that
-- went back (the card's image restored), stored and flagged.
-- `status`: accepted (cleared), rejected (set aside, never cleared: bad TAC, unknown
-- card) or flagged (cleared, for review: counter went back, purse balance altered,
-- blacklisted card); `flags` lists every flag raised with its details (the blacklist
-- window, the expected balance); `blacklist_version` is the terminal's at the tap.
CREATE TABLE transit_records (
    app_serial         TEXT NOT NULL,
    txn_type           TEXT NOT NULL,   -- 06 EP purchase, 09 capp purchase
    counter            INTEGER NOT NULL,
    terminal_no        TEXT NOT NULL,
    terminal_serial    INTEGER NOT NULL,
    card_number        TEXT,
    issuer_node        TEXT,
    operator           TEXT NOT NULL,
    terminal           TEXT NOT NULL,
    amount_fen         INTEGER NOT NULL CHECK (amount_fen >= 0),
    balance_before_fen INTEGER NOT NULL CHECK (balance_before_fen >= 0),
    at                 TEXT NOT NULL,
    tac                TEXT NOT NULL,
    blacklist_version  INTEGER,
    details            TEXT,            -- JSON: station, entry…
    status             TEXT NOT NULL CHECK (status IN ('accepted', 'rejected', 'flagged')),
    reason             TEXT,
    flags              TEXT,            -- JSON list
    uploaded_at        TEXT NOT NULL,
    upload_batch       TEXT NOT NULL,
    -- Terminal first: a terminal's records arrive in serial order, so the key grows at the
    -- end of that terminal's range (a million records insert without random page writes).
    PRIMARY KEY (terminal_no, terminal_serial, app_serial, txn_type, counter),
    CHECK ((status = 'accepted') = (reason IS NULL))
) STRICT;

-- One row per upload from a terminal (operator side); accepted includes flagged.
CREATE TABLE transit_uploads (
    batch       TEXT PRIMARY KEY,
    terminal    TEXT NOT NULL,
    sent        INTEGER NOT NULL CHECK (sent >= 0),
    accepted    INTEGER NOT NULL CHECK (accepted >= 0),
    duplicates  INTEGER NOT NULL CHECK (duplicates >= 0),
    rejected    INTEGER NOT NULL CHECK (rejected >= 0),
    flagged     INTEGER NOT NULL CHECK (flagged >= 0),
    uploaded_at TEXT NOT NULL,
    CHECK (sent = accepted + duplicates + rejected AND flagged <= accepted)
) STRICT;

-- Issuer side: loads (圈存) from a holder's financial account into the card's purse. A
-- row is written `pending` with its ledger transaction (holder -> FLOAT-PURSE) when the
-- host returns MAC2; `confirmed` once the card shows it credited (its TAC, or its online
-- counter past the load's); `reversed`, with a ledger transaction back, once the card
-- shows it never did. One live (pending or confirmed) load per card and online counter.
CREATE TABLE purse_loads (
    id                 TEXT PRIMARY KEY,
    card_number        TEXT NOT NULL REFERENCES cards (card_number),
    app_serial         TEXT NOT NULL CHECK (length(app_serial) = 20),
    account_no         TEXT NOT NULL REFERENCES accounts (account_no),
    online_counter     INTEGER NOT NULL CHECK (online_counter BETWEEN 0 AND 65535),
    amount_fen         INTEGER NOT NULL CHECK (amount_fen > 0),
    balance_before_fen INTEGER NOT NULL CHECK (balance_before_fen >= 0),
    terminal_no        TEXT NOT NULL CHECK (length(terminal_no) = 12),
    date_time          TEXT NOT NULL CHECK (length(date_time) = 14),  -- the 7 BCD bytes sent to the card
    status             TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'reversed')),
    mac2               TEXT NOT NULL,
    tac                TEXT,
    how                TEXT,   -- how it was settled: tac, prove, counter, log
    txn_id             TEXT NOT NULL,
    reversal_txn_id    TEXT,
    operator           TEXT NOT NULL,
    outlet             TEXT,
    created_at         TEXT NOT NULL,
    settled_at         TEXT,
    CHECK ((status = 'pending') = (settled_at IS NULL)),
    CHECK ((status = 'reversed') = (reversal_txn_id IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX purse_loads_live_counter ON purse_loads (app_serial, online_counter)
    WHERE status != 'reversed';
CREATE INDEX purse_loads_pending ON purse_loads (app_serial) WHERE status = 'pending';
CREATE INDEX purse_loads_card ON purse_loads (card_number);

-- Issuer side: the purchases on this region's cards that operators (any region) sent
-- for clearing, once each, with the issuer's verdict (TAC checked with the DTK). Keyed
-- terminal first, as they arrive; what the checks need per card is in purse_shadow.
CREATE TABLE purse_purchases (
    terminal_no        TEXT NOT NULL,
    terminal_serial    INTEGER NOT NULL,
    app_serial         TEXT NOT NULL,
    txn_type           TEXT NOT NULL,
    counter            INTEGER NOT NULL,
    card_number        TEXT,
    amount_fen         INTEGER NOT NULL CHECK (amount_fen >= 0),
    balance_before_fen INTEGER NOT NULL CHECK (balance_before_fen >= 0),
    date_time          TEXT NOT NULL,   -- YYYYMMDDhhmmss, as sent to the card
    tac                TEXT NOT NULL,
    from_node          TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('cleared', 'rejected')),
    reason             TEXT,
    flags              TEXT,            -- JSON list
    received_at        TEXT NOT NULL,
    PRIMARY KEY (terminal_no, terminal_serial, app_serial, txn_type, counter),
    CHECK ((status = 'rejected') = (reason IS NOT NULL))
) STRICT;

-- Issuer side: what each purse of this region's cards should hold, from what the issuer
-- has seen — confirmed loads less cleared purchases — and what the upload checks need of
-- its offline counters: every counter below `offline_next` is cleared (they took
-- `offline_spent_fen`); `loose` lists the cleared counters above it and the last few
-- below it ([counter, amount, date-time, terminal no, serial]); `last_offline_counter` is
-- the highest cleared and `last_offline_at` its date-time; `last_online_counter` is the
-- counter after the last confirmed load.
CREATE TABLE purse_shadow (
    app_serial           TEXT PRIMARY KEY CHECK (length(app_serial) = 20),
    card_number          TEXT NOT NULL REFERENCES cards (card_number),
    expected_balance_fen INTEGER NOT NULL,
    last_offline_counter INTEGER,
    last_offline_at      TEXT,
    offline_next         INTEGER NOT NULL DEFAULT 0,
    offline_spent_fen    INTEGER NOT NULL DEFAULT 0,
    loose                TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(loose)),
    last_online_counter  INTEGER NOT NULL DEFAULT 0,
    updated_at           TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Issuer side: transit concessions granted to a person on a card (the card's EF 0017
-- carries them). One enabled elderly free ride per person. (`start_date`/`end_date`:
-- END is an SQL keyword.)
CREATE TABLE concessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    citizen_id  TEXT NOT NULL REFERENCES persons (citizen_id),
    card_number TEXT NOT NULL REFERENCES cards (card_number),
    kind        TEXT NOT NULL CHECK (kind IN ('elderly_free_ride', 'student')),
    start_date  TEXT NOT NULL,
    end_date    TEXT,
    status      TEXT NOT NULL CHECK (status IN ('enabled', 'locked')),
    at          TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX one_elderly_free_ride_per_person ON concessions (citizen_id)
    WHERE kind = 'elderly_free_ride' AND status = 'enabled';
CREATE INDEX concessions_card ON concessions (card_number);
"""


def _v3_transit(db: sqlite_utils.Database) -> None:
    db.executescript(_TRANSIT_V3)


_SUBSIDIES_V4 = """
-- The subsidy catalogue (fixtures/subsidies/items.csv, loaded at init). `cap_fen` is the
-- most one person may receive for one period; `fund_account` is the internal ledger
-- account (FUND-<code>) payments are drawn from; `illustrative` = 1 where no official
-- figure backs the amounts.
CREATE TABLE subsidy_items (
    code         TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    department   TEXT NOT NULL,
    period_type  TEXT NOT NULL CHECK (period_type IN ('monthly', 'yearly', 'one_off')),
    cap_fen      INTEGER NOT NULL CHECK (cap_fen > 0),
    fund_account TEXT NOT NULL,
    illustrative INTEGER NOT NULL DEFAULT 0 CHECK (illustrative IN (0, 1))
) STRICT;

-- A batch: one department's list (a file) or one generated list (免申即享). The maker
-- imports it, a checker (another operator) approves or rejects it, `pay` pays it:
--   imported -> approved | rejected;  approved -> paying -> paid.
-- `rows` = `declared_count` (a file whose control totals differ is never stored).
-- paid_* / failed_* are what paying did; failed_* include the rows invalid at import,
-- so a paid batch has paid + failed = rows and paid_fen + failed_fen = declared total.
CREATE TABLE subsidy_batches (
    id                 TEXT PRIMARY KEY,              -- e.g. TJ-S-20261122-0001
    region             TEXT NOT NULL REFERENCES regions (code),
    source             TEXT NOT NULL CHECK (source IN ('file', 'generated')),
    file_name          TEXT,
    file_sha256        TEXT CHECK (file_sha256 IS NULL OR length(file_sha256) = 64),
    declared_count     INTEGER NOT NULL CHECK (declared_count >= 0),
    declared_total_fen INTEGER NOT NULL,
    rows               INTEGER NOT NULL CHECK (rows >= 0),
    valid              INTEGER NOT NULL CHECK (valid >= 0),
    invalid            INTEGER NOT NULL CHECK (invalid >= 0),
    valid_total_fen    INTEGER NOT NULL CHECK (valid_total_fen >= 0),
    status             TEXT NOT NULL CHECK (status IN ('imported', 'approved', 'rejected', 'paying', 'paid')),
    maker              TEXT NOT NULL,
    checker            TEXT,
    reject_reason      TEXT,
    created_at         TEXT NOT NULL,
    approved_at        TEXT,                          -- approved, or rejected, at
    paid_at            TEXT,
    paid_count         INTEGER NOT NULL DEFAULT 0 CHECK (paid_count >= 0),
    paid_fen           INTEGER NOT NULL DEFAULT 0 CHECK (paid_fen >= 0),
    failed_count       INTEGER NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    failed_fen         INTEGER NOT NULL DEFAULT 0,
    CHECK (rows = valid + invalid AND rows = declared_count),
    CHECK (source = 'generated' OR (file_name IS NOT NULL AND file_sha256 IS NOT NULL)),
    CHECK (checker IS NULL OR checker != maker),      -- maker-checker, also in the database
    CHECK ((status = 'imported') = (checker IS NULL)),
    CHECK ((status = 'imported') = (approved_at IS NULL)),
    CHECK ((status = 'rejected') = (reject_reason IS NOT NULL)),
    CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CHECK (paid_count + failed_count <= rows),
    CHECK (status != 'paid'
           OR (paid_count + failed_count = rows AND paid_fen + failed_fen = declared_total_fen))
) STRICT;
CREATE UNIQUE INDEX subsidy_batches_file ON subsidy_batches (file_sha256) WHERE file_sha256 IS NOT NULL;
CREATE TRIGGER subsidy_batches_no_delete BEFORE DELETE ON subsidy_batches
BEGIN SELECT RAISE(ABORT, 'subsidy batches are kept: reject one instead'); END;
CREATE TRIGGER subsidy_batches_status_flow BEFORE UPDATE OF status ON subsidy_batches
WHEN NEW.status != OLD.status AND NOT (
       (OLD.status = 'imported' AND NEW.status IN ('approved', 'rejected'))
    OR (OLD.status = 'approved' AND NEW.status = 'paying')
    OR (OLD.status = 'paying' AND NEW.status = 'paid'))
BEGIN SELECT RAISE(ABORT, 'subsidy batch status cannot go that way'); END;

-- A batch's rows as imported, each with its verdict and, once paid, its ledger
-- transaction SUB-<batch>-<seq>. Row status: valid (to be paid), invalid (refused at
-- import), paid, failed (refused at pay time, e.g. card lost since import), reversed
-- (paid, then reversed by SUBREV-<batch>-<seq>; see subsidy_reversals).
-- `paid_card`: the card the holder's account was reached through; `note`: what the
-- operator should know (paid to the replacement card, …).
CREATE TABLE subsidy_rows (
    batch_id    TEXT NOT NULL REFERENCES subsidy_batches (id),
    seq         INTEGER NOT NULL,
    line        INTEGER NOT NULL CHECK (line >= 1),
    citizen_id  TEXT,
    name        TEXT,
    card_number TEXT,
    item        TEXT,
    period      TEXT,
    amount_fen  INTEGER,
    remark      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('valid', 'invalid', 'paid', 'failed', 'reversed')),
    reason_code TEXT,
    reason      TEXT,
    paid_card   TEXT,
    txn_id      TEXT,
    paid_at     TEXT,
    note        TEXT,
    PRIMARY KEY (batch_id, seq),
    CHECK ((status IN ('invalid', 'failed')) = (reason_code IS NOT NULL AND reason IS NOT NULL)),
    CHECK ((status IN ('paid', 'reversed')) = (txn_id IS NOT NULL AND paid_at IS NOT NULL)),
    CHECK (status = 'invalid' OR (citizen_id IS NOT NULL AND name IS NOT NULL AND item IS NOT NULL
                                  AND period IS NOT NULL AND amount_fen > 0))
) STRICT;
-- Exactly once across batches, enforced by the database: one paid row per person, item
-- and period.
CREATE UNIQUE INDEX subsidy_rows_paid_once ON subsidy_rows (citizen_id, item, period) WHERE status = 'paid';
-- A batch's rows by status: the primary key serves a whole batch; two partial indexes
-- serve the rows still to pay (pay walks them in seq order, a chunk at a time) and the
-- rows not paid (failures). Partial, so paying a row only takes it out of the first:
-- a full (batch_id, status) index would move every paid row within it, which costs a
-- million-row payment a quarter of its time.
CREATE INDEX subsidy_rows_to_pay ON subsidy_rows (batch_id, seq) WHERE status = 'valid';
CREATE INDEX subsidy_rows_not_paid ON subsidy_rows (batch_id, seq) WHERE status IN ('invalid', 'failed');
CREATE TRIGGER subsidy_rows_no_delete BEFORE DELETE ON subsidy_rows
BEGIN SELECT RAISE(ABORT, 'subsidy rows are kept as imported'); END;
CREATE TRIGGER subsidy_rows_as_imported
BEFORE UPDATE OF batch_id, seq, line, citizen_id, name, card_number, item, period, amount_fen ON subsidy_rows
BEGIN SELECT RAISE(ABORT, 'subsidy rows are kept as imported: correct and resubmit instead'); END;
CREATE TRIGGER subsidy_rows_status_flow BEFORE UPDATE OF status ON subsidy_rows
WHEN NEW.status != OLD.status AND NOT (
       (OLD.status = 'valid' AND NEW.status IN ('paid', 'failed'))
    OR (OLD.status = 'paid' AND NEW.status = 'reversed'))
BEGIN SELECT RAISE(ABORT, 'subsidy row status cannot go that way'); END;

-- Payments reversed because they were made in error: a new ledger transaction
-- (SUBREV-<batch>-<seq>, holder -> fund), never an edit. At most one per row.
CREATE TABLE subsidy_reversals (
    txn_id     TEXT PRIMARY KEY,
    batch_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    reason     TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    operator   TEXT NOT NULL,
    at         TEXT NOT NULL,
    UNIQUE (batch_id, seq),
    FOREIGN KEY (batch_id, seq) REFERENCES subsidy_rows (batch_id, seq)
) STRICT;
CREATE TRIGGER subsidy_reversals_no_update BEFORE UPDATE ON subsidy_reversals
BEGIN SELECT RAISE(ABORT, 'subsidy_reversals is append-only'); END;
CREATE TRIGGER subsidy_reversals_no_delete BEFORE DELETE ON subsidy_reversals
BEGIN SELECT RAISE(ABORT, 'subsidy_reversals is append-only'); END;

-- Who is paying a batch right now: one row while a `pay` runs, left behind if it was
-- killed (the next `pay` sees that process gone and takes over). Two live `pay`s on one
-- batch: the second is refused, naming the first. Each chunk a run commits checks its
-- `token` is still here and counts itself in `chunks`.
CREATE TABLE subsidy_pay_leases (
    batch_id   TEXT PRIMARY KEY REFERENCES subsidy_batches (id),
    token      TEXT NOT NULL,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    chunks     INTEGER NOT NULL DEFAULT 0 CHECK (chunks >= 0)
) STRICT;

-- A person's cards, whatever their status (a cancelled card tells `pay` why there is no
-- card to pay to); migration 2 indexed only the valid card of each person.
CREATE INDEX cards_citizen ON cards (citizen_id);
"""


def _v4_subsidies(db: sqlite_utils.Database) -> None:
    db.executescript(_SUBSIDIES_V4)


_MEDICAL_V5 = """
-- Insured side (参保地): every claim settled for this region's insured persons, whatever
-- the hospital. `split` is the settlement as sbcard.domain.medical gives it (items, the
-- year before and after); `lines` the claim's lines ([code, quantity, unit price fen]),
-- kept to re-settle what a partial refund leaves. `txn_id` is the claim's ledger
-- transaction (null when no money moves in this region's ledger: everything in cash).
-- An offline claim (settled at the point of sale against the card, reconciled later)
-- keeps what the holder paid there (`offline_self_fen`) and the difference settled with
-- them (`adjustment_fen` = offline self - self: credited when positive, debited when
-- negative; `owed_fen` the part their account could not take: + the holder owes, - owed
-- to them). A refund (退费) writes `reversal_txn_id`; a partial one re-settles the
-- remaining items as a new claim whose `refund_of` names this one.
CREATE TABLE medical_claims (
    claim_id              TEXT PRIMARY KEY,
    card_number           TEXT NOT NULL REFERENCES cards (card_number),
    citizen_id            TEXT NOT NULL REFERENCES persons (citizen_id),
    hospital              TEXT NOT NULL,
    hospital_node         TEXT NOT NULL CHECK (hospital_node IN ('bj', 'tj', 'he')),
    hospital_level        INTEGER NOT NULL CHECK (hospital_level IN (1, 2, 3)),
    year                  INTEGER NOT NULL,
    mode                  TEXT NOT NULL CHECK (mode IN ('online', 'offline')),
    status                TEXT NOT NULL CHECK (status IN ('settled', 'refunded')),
    refund_of             TEXT REFERENCES medical_claims (claim_id),
    insurance_type        TEXT NOT NULL CHECK (insurance_type IN ('employee', 'resident')),
    retired               INTEGER NOT NULL CHECK (retired IN (0, 1)),
    cross_region          INTEGER NOT NULL CHECK (cross_region IN (0, 1)),
    registered            INTEGER NOT NULL CHECK (registered IN (0, 1)),
    referral_or_emergency INTEGER NOT NULL CHECK (referral_or_emergency IN (0, 1)),
    use_account           INTEGER NOT NULL CHECK (use_account IN (0, 1)),
    self_pay              TEXT NOT NULL CHECK (self_pay IN ('cash', 'account')),
    total_fen             INTEGER NOT NULL CHECK (total_fen > 0),
    fund_fen              INTEGER NOT NULL CHECK (fund_fen >= 0),
    account_fen           INTEGER NOT NULL CHECK (account_fen >= 0),
    self_fen              INTEGER NOT NULL CHECK (self_fen >= 0),
    deductible_fen        INTEGER NOT NULL CHECK (deductible_fen >= 0),
    ratio_pct             INTEGER NOT NULL CHECK (ratio_pct BETWEEN 0 AND 100),
    cap_reached           INTEGER NOT NULL CHECK (cap_reached IN (0, 1)),
    offline_self_fen      INTEGER CHECK (offline_self_fen >= 0),
    adjustment_fen        INTEGER NOT NULL DEFAULT 0,
    owed_fen              INTEGER NOT NULL DEFAULT 0,
    split                 TEXT NOT NULL CHECK (json_valid(split)),
    lines                 TEXT NOT NULL CHECK (json_valid(lines)),
    txn_id                TEXT,
    reversal_txn_id       TEXT,
    at                    TEXT NOT NULL,   -- at the point of sale
    recorded_at           TEXT NOT NULL,
    refunded_at           TEXT,
    CHECK (fund_fen + account_fen + self_fen = total_fen),
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL)),
    CHECK ((mode = 'offline') = (offline_self_fen IS NOT NULL))
) STRICT;
CREATE INDEX medical_claims_card ON medical_claims (card_number);
CREATE INDEX medical_claims_citizen ON medical_claims (citizen_id, year);
CREATE INDEX medical_claims_hospital ON medical_claims (hospital);

-- Insured side: a holder's accumulators for a calendar year (they start again on 1
-- January). The row is made by the year's first claim (or `medical year`); an
-- employee's personal account gets the policy's annual allocation then
-- (`allocated_fen`, one `allocation` entry below).
CREATE TABLE medical_years (
    citizen_id          TEXT NOT NULL REFERENCES persons (citizen_id),
    year                INTEGER NOT NULL,
    deductible_paid_fen INTEGER NOT NULL CHECK (deductible_paid_fen >= 0),
    fund_paid_fen       INTEGER NOT NULL CHECK (fund_paid_fen >= 0),
    allocated_fen       INTEGER NOT NULL CHECK (allocated_fen >= 0),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (citizen_id, year)
) STRICT;

-- Insured side: personal accounts (个人账户), one holder's entries each; the balance is
-- their sum and never below 0 (the ledger's FUND-MEDICAL-ACCOUNTS is the aggregate).
CREATE TABLE medical_account_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    citizen_id TEXT NOT NULL REFERENCES persons (citizen_id),
    year       INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen != 0),
    kind       TEXT NOT NULL CHECK (kind IN ('allocation', 'claim', 'refund')),
    claim_id   TEXT,
    at         TEXT NOT NULL
) STRICT;
CREATE INDEX medical_account_entries_citizen ON medical_account_entries (citizen_id);
CREATE TRIGGER medical_account_entries_no_update BEFORE UPDATE ON medical_account_entries
BEGIN SELECT RAISE(ABORT, 'medical_account_entries is append-only'); END;
CREATE TRIGGER medical_account_entries_no_delete BEFORE DELETE ON medical_account_entries
BEGIN SELECT RAISE(ABORT, 'medical_account_entries is append-only'); END;

-- Hospital side (就医地): claims a point of sale of this region's hospitals settled
-- offline, against the card, while the insured region could not be reached; sent to it
-- by `medical reconcile` (or the next online claim for that region). `request` is what
-- goes to the insured region, `offline` the split the point of sale made, `result` the
-- insured region's answer (or its refusal, for staff).
CREATE TABLE medical_offline_queue (
    claim_id      TEXT PRIMARY KEY,
    hospital      TEXT NOT NULL,
    card_number   TEXT NOT NULL,  -- any region's card: no reference
    insured_node  TEXT NOT NULL CHECK (insured_node IN ('bj', 'tj', 'he')),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'reconciled', 'refused')),
    request       TEXT NOT NULL CHECK (json_valid(request)),
    offline       TEXT NOT NULL CHECK (json_valid(offline)),
    result        TEXT CHECK (result IS NULL OR json_valid(result)),
    queued_at     TEXT NOT NULL,
    reconciled_at TEXT,
    CHECK ((status = 'queued') = (reconciled_at IS NULL))
) STRICT;
CREATE INDEX medical_offline_queued ON medical_offline_queue (insured_node, queued_at) WHERE status = 'queued';
"""


def _v5_medical(db: sqlite_utils.Database) -> None:
    db.executescript(_MEDICAL_V5)


_VENUES_V6 = """
-- Venue side (the venue's region): every card a venue's gate decided on, admitted (free
-- entries too) or refused, append-only. The gate is a terminal of this region
-- (`terminals`, operator = the venue's code). `entry_no` is the card's n-th admission
-- at the venue that day (what a daily limit counts, by the card's purse serial);
-- `counter` and `terminal_serial` name the purse purchase that paid for it (the gate's
-- offline record, what `transit upload` sends), null for a free entry; `recovered`: the
-- entry was paid by a purchase a tear had left in flight (prove | log). `price_fen` is
-- what was due (a refusal for want of balance keeps it).
CREATE TABLE venue_visits (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    venue           TEXT NOT NULL,
    terminal        TEXT NOT NULL REFERENCES terminals (id),
    card_number     TEXT,
    app_serial      TEXT NOT NULL,
    issuer_node     TEXT,
    day             TEXT NOT NULL,   -- YYYY-MM-DD, service (Beijing) time
    at              TEXT NOT NULL,
    result          TEXT NOT NULL CHECK (result IN ('ok', 'refused')),
    code            TEXT,            -- a refusal's code
    reason          TEXT,
    price_fen       INTEGER NOT NULL CHECK (price_fen >= 0),
    full_price_fen  INTEGER NOT NULL CHECK (full_price_fen >= 0),
    rule            TEXT,
    student         INTEGER NOT NULL CHECK (student IN (0, 1)),
    age             INTEGER,
    entry_no        INTEGER CHECK (entry_no >= 1),
    counter         INTEGER,
    terminal_serial INTEGER,
    recovered       TEXT CHECK (recovered IS NULL OR recovered IN ('prove', 'log')),
    CHECK ((result = 'ok') = (entry_no IS NOT NULL)),
    CHECK ((result = 'ok') = (code IS NULL))
) STRICT;
CREATE INDEX venue_visits_admitted ON venue_visits (venue, app_serial, day) WHERE result = 'ok';
CREATE INDEX venue_visits_card ON venue_visits (card_number);
CREATE TRIGGER venue_visits_no_update BEFORE UPDATE ON venue_visits
BEGIN SELECT RAISE(ABORT, 'venue_visits is append-only'); END;
CREATE TRIGGER venue_visits_no_delete BEFORE DELETE ON venue_visits
BEGIN SELECT RAISE(ABORT, 'venue_visits is append-only'); END;

-- Library side: the holders a library registered at their first loan (the social
-- security card is the reader's card). Keyed by the person, so a replacement card (a
-- new number) finds the same loans and fines; `card_number` is the card last used.
CREATE TABLE library_readers (
    library       TEXT NOT NULL,
    citizen_id    TEXT NOT NULL CHECK (length(citizen_id) = 18),
    card_number   TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (library, citizen_id)
) STRICT;
CREATE INDEX library_readers_card ON library_readers (card_number);

-- Loans: open until `returned_at`; an item is out to one reader at a time. At the return
-- the days late and the fine are fixed (0 when on time).
CREATE TABLE library_loans (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    library       TEXT NOT NULL,
    citizen_id    TEXT NOT NULL,
    card_number   TEXT NOT NULL,   -- the card it was borrowed with
    item          TEXT NOT NULL,
    borrowed_at   TEXT NOT NULL,
    due_date      TEXT NOT NULL,   -- YYYY-MM-DD
    returned_at   TEXT,
    returned_with TEXT,            -- the card at the return
    overdue_days  INTEGER CHECK (overdue_days >= 0),
    fine_fen      INTEGER CHECK (fine_fen >= 0),
    FOREIGN KEY (library, citizen_id) REFERENCES library_readers (library, citizen_id),
    CHECK ((returned_at IS NULL) = (overdue_days IS NULL)),
    CHECK ((returned_at IS NULL) = (fine_fen IS NULL)),
    CHECK ((returned_at IS NULL) = (returned_with IS NULL))
) STRICT;
CREATE UNIQUE INDEX library_loans_item_out ON library_loans (library, item) WHERE returned_at IS NULL;
CREATE INDEX library_loans_reader ON library_loans (library, citizen_id);

-- Overdue fines, one per late loan: `owed` (it blocks further loans at that library)
-- until a purse purchase at the library's gate pays it (`terminal`, `counter`,
-- `terminal_serial` name that purchase, whose record `transit upload` sends).
CREATE TABLE library_fines (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    library         TEXT NOT NULL,
    citizen_id      TEXT NOT NULL,
    loan_id         INTEGER NOT NULL UNIQUE REFERENCES library_loans (id),
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    status          TEXT NOT NULL CHECK (status IN ('owed', 'paid')),
    created_at      TEXT NOT NULL,
    paid_at         TEXT,
    terminal        TEXT,
    counter         INTEGER,
    terminal_serial INTEGER,
    CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CHECK ((status = 'paid') = (terminal IS NOT NULL))
) STRICT;
CREATE INDEX library_fines_owed ON library_fines (library, citizen_id) WHERE status = 'owed';
CREATE TRIGGER library_fines_status_flow BEFORE UPDATE OF status ON library_fines
WHEN NEW.status != OLD.status AND NOT (OLD.status = 'owed' AND NEW.status = 'paid')
BEGIN SELECT RAISE(ABORT, 'a paid fine stays paid'); END;
CREATE TRIGGER library_fines_no_delete BEFORE DELETE ON library_fines
BEGIN SELECT RAISE(ABORT, 'library fines are kept'); END;
"""


def _v6_venues(db: sqlite_utils.Database) -> None:
    db.executescript(_VENUES_V6)


_CLEARING_V7 = """
-- Operator side: records whose card's issuer the hub could not reach at upload (its link
-- down, `sbcard.services.exchange.links`). Kept here, once each (the key of transit_records), until
-- the next upload or `clearing run` routes them; they then reach transit_records with the
-- issuer's verdict. The columns are the record's as the terminal sent it. Append-only:
-- which are routed is told by transit_routings (`seq` at most its issuer's highest `to_seq`).
CREATE TABLE transit_awaiting (
    seq                INTEGER PRIMARY KEY,
    app_serial         TEXT NOT NULL,
    txn_type           TEXT NOT NULL,
    counter            INTEGER NOT NULL,
    terminal_no        TEXT NOT NULL,
    terminal_serial    INTEGER NOT NULL,
    amount_fen         INTEGER NOT NULL CHECK (amount_fen >= 0),
    balance_before_fen INTEGER NOT NULL,
    date_time          TEXT NOT NULL,   -- YYYYMMDDhhmmss, as sent to the card
    tac                TEXT,
    issuer_id          TEXT,
    issuer_node        TEXT NOT NULL CHECK (issuer_node IN ('bj', 'tj', 'he')),
    card_number        TEXT,
    terminal           TEXT NOT NULL,
    operator           TEXT NOT NULL,
    blacklist_version  INTEGER,
    record_status      TEXT NOT NULL,   -- the terminal's: ok | mac2_failed
    details            TEXT,            -- JSON
    upload_batch       TEXT NOT NULL,
    uploaded_at        TEXT NOT NULL,
    UNIQUE (terminal_no, terminal_serial, app_serial, txn_type, counter)
) STRICT;
CREATE INDEX transit_awaiting_issuer ON transit_awaiting (issuer_node);
CREATE TRIGGER transit_awaiting_no_update BEFORE UPDATE ON transit_awaiting
BEGIN SELECT RAISE(ABORT, 'transit_awaiting is append-only'); END;
CREATE TRIGGER transit_awaiting_no_delete BEFORE DELETE ON transit_awaiting
BEGIN SELECT RAISE(ABORT, 'transit_awaiting is append-only'); END;

-- Each routing of awaiting records to an issuer: its records `from_seq`..`to_seq` (those of
-- that issuer in the range), how many, when.
CREATE TABLE transit_routings (
    id          INTEGER PRIMARY KEY,
    issuer_node TEXT NOT NULL CHECK (issuer_node IN ('bj', 'tj', 'he')),
    from_seq    INTEGER NOT NULL,
    to_seq      INTEGER NOT NULL CHECK (to_seq >= from_seq),
    records     INTEGER NOT NULL CHECK (records > 0),
    routed_at   TEXT NOT NULL
) STRICT;
CREATE INDEX transit_routings_issuer ON transit_routings (issuer_node, to_seq);

-- Uploads now count the records left awaiting their issuer.
CREATE TABLE transit_uploads_v7 (
    batch       TEXT PRIMARY KEY,
    terminal    TEXT NOT NULL,
    sent        INTEGER NOT NULL CHECK (sent >= 0),
    accepted    INTEGER NOT NULL CHECK (accepted >= 0),
    duplicates  INTEGER NOT NULL CHECK (duplicates >= 0),
    rejected    INTEGER NOT NULL CHECK (rejected >= 0),
    flagged     INTEGER NOT NULL CHECK (flagged >= 0),
    uploaded_at TEXT NOT NULL,
    awaiting    INTEGER NOT NULL DEFAULT 0 CHECK (awaiting >= 0),
    CHECK (sent = accepted + duplicates + rejected + awaiting AND flagged <= accepted)
) STRICT;
INSERT INTO transit_uploads_v7 (batch, terminal, sent, accepted, duplicates, rejected, flagged, uploaded_at, awaiting)
    SELECT batch, terminal, sent, accepted, duplicates, rejected, flagged, uploaded_at, 0 FROM transit_uploads;
DROP TABLE transit_uploads;
ALTER TABLE transit_uploads_v7 RENAME TO transit_uploads;

-- Issuer side: the operator each purchase is owed to (from the upload), and the clearing
-- day (YYYY-MM-DD) that took it (an accepted one only: status cleared): set once, never
-- changed, so no record is cleared twice.
ALTER TABLE purse_purchases ADD COLUMN operator TEXT;
ALTER TABLE purse_purchases ADD COLUMN clearing_day TEXT;
CREATE INDEX purse_purchases_unclear ON purse_purchases (received_at)
    WHERE status = 'cleared' AND clearing_day IS NULL;
CREATE INDEX purse_purchases_flagged_on ON purse_purchases (clearing_day) WHERE flags IS NOT NULL;
CREATE INDEX transit_records_rejected ON transit_records (uploaded_at) WHERE status = 'rejected';
CREATE TRIGGER purse_purchases_cleared_once BEFORE UPDATE OF clearing_day ON purse_purchases
WHEN OLD.clearing_day IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a purchase is cleared once'); END;

-- Insured side: the clearing day that took a claim's settlement, and the one that took its
-- refund (a refund is a negative amount in the clearing of its own day). Set once.
ALTER TABLE medical_claims ADD COLUMN clearing_day TEXT;
ALTER TABLE medical_claims ADD COLUMN refund_clearing_day TEXT;
CREATE INDEX medical_claims_unclear ON medical_claims (recorded_at) WHERE clearing_day IS NULL;
CREATE INDEX medical_claims_refund_unclear ON medical_claims (refunded_at)
    WHERE refunded_at IS NOT NULL AND refund_clearing_day IS NULL;
CREATE TRIGGER medical_claims_cleared_once BEFORE UPDATE OF clearing_day ON medical_claims
WHEN OLD.clearing_day IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a claim is cleared once'); END;
CREATE TRIGGER medical_claims_refund_cleared_once BEFORE UPDATE OF refund_clearing_day ON medical_claims
WHEN OLD.refund_clearing_day IS NOT NULL OR NEW.refund_clearing_day IS NOT NULL AND OLD.refunded_at IS NULL
BEGIN SELECT RAISE(ABORT, 'a refund is cleared once, and only a refund that happened'); END;

-- This region's part of each day's clearing (清分): one row per clearing day it took part
-- in, with what it found (counts, gaps in the cards' counters, routed records).
CREATE TABLE clearing_runs (
    day     TEXT PRIMARY KEY CHECK (length(day) = 10),
    run_at  TEXT NOT NULL,
    summary TEXT NOT NULL CHECK (json_valid(summary))
) STRICT;
CREATE TRIGGER clearing_runs_no_update BEFORE UPDATE ON clearing_runs
BEGIN SELECT RAISE(ABORT, 'clearing_runs is append-only'); END;
CREATE TRIGGER clearing_runs_no_delete BEFORE DELETE ON clearing_runs
BEGIN SELECT RAISE(ABORT, 'clearing_runs is append-only'); END;

-- Clearing lines this region is a party to: the payer (the card's issuer, the insured
-- region) owes the payee (the operator's, the hospital's region) `amount_fen` for `count`
-- records (transit: accepted purchases, `flagged` of them flagged) or claims (medical: net
-- of `refunds`) of `party` (operator or hospital code). The payer's row is written by its
-- clearing (`sent_at`: when the hub took it); the payee's row when the hub delivered it
-- (same region: one row). `txn_id`: this region's ledger transaction for it.
CREATE TABLE clearing_lines (
    day        TEXT NOT NULL CHECK (length(day) = 10),
    kind       TEXT NOT NULL CHECK (kind IN ('transit', 'medical')),
    payer_node TEXT NOT NULL CHECK (payer_node IN ('bj', 'tj', 'he')),
    payee_node TEXT NOT NULL CHECK (payee_node IN ('bj', 'tj', 'he')),
    party      TEXT NOT NULL,
    count      INTEGER NOT NULL CHECK (count >= 0),
    amount_fen INTEGER NOT NULL,
    flagged    INTEGER NOT NULL DEFAULT 0 CHECK (flagged >= 0),
    refunds    INTEGER NOT NULL DEFAULT 0 CHECK (refunds >= 0),
    txn_id     TEXT,
    created_at TEXT NOT NULL,
    sent_at    TEXT,
    PRIMARY KEY (day, kind, payer_node, payee_node, party)
) STRICT;
CREATE INDEX clearing_lines_unsent ON clearing_lines (day) WHERE sent_at IS NULL;
CREATE TRIGGER clearing_lines_no_delete BEFORE DELETE ON clearing_lines
BEGIN SELECT RAISE(ABORT, 'clearing_lines are kept'); END;
CREATE TRIGGER clearing_lines_fixed BEFORE UPDATE OF day, kind, payer_node, payee_node, party, count, amount_fen,
    flagged, refunds ON clearing_lines
BEGIN SELECT RAISE(ABORT, 'a clearing line never changes'); END;
"""


def _v7_clearing(db: sqlite_utils.Database) -> None:
    db.executescript(_CLEARING_V7)


# Look-ups every card's loads and cash make, by the card: without these they read every
# account (the card's financial account) and every load (a load's counter used before),
# so a region of a million cards paid a million rows per load.
_INDEXES_V8 = """
CREATE INDEX accounts_card ON accounts (card_number) WHERE card_number IS NOT NULL;
CREATE INDEX purse_loads_counter ON purse_loads (app_serial, online_counter);
"""


def _v8_indexes(db: sqlite_utils.Database) -> None:
    db.executescript(_INDEXES_V8)


# Nothing half-written (docs/protections/never-half-written.md). A gate's paid admission is
# one visit, known by its gate and PSAM serial: rebuilt from the gate's log after a crash,
# never twice. A replaced card's purse refund is read from the chip (`chip`) or, when the
# old card cannot be read, taken from the clearing records once its window has passed
# (`clearing`: `amount_fen` is fixed at payment); `adjusted_fen` is what later-cleared
# records of the old card changed since (negative: taken back from the holder). An
# offline claim's `owed_fen` is settled by staff once (`owed_txn_id`, `owed_settled_at`).
_HALF_WRITTEN_V9 = """
CREATE UNIQUE INDEX venue_visits_purchase ON venue_visits (terminal, terminal_serial)
    WHERE result = 'ok' AND terminal_serial IS NOT NULL;
ALTER TABLE purse_refunds ADD COLUMN basis TEXT NOT NULL DEFAULT 'chip' CHECK (basis IN ('chip', 'clearing'));
ALTER TABLE purse_refunds ADD COLUMN adjusted_fen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE medical_claims ADD COLUMN owed_txn_id TEXT;
ALTER TABLE medical_claims ADD COLUMN owed_settled_at TEXT;
"""


def _v9_half_written(db: sqlite_utils.Database) -> None:
    db.executescript(_HALF_WRITTEN_V9)


# Upload provenance (docs/protections/upload-provenance.md): the batches a host refused
# (a MAC that does not verify: nothing of them was taken), and the UMK master key from
# which terminals' upload keys are diversified. A world made before it gets its UMK here,
# derived from its MK master (a world's keys stay reproducible from its seed); a new world
# has no keys yet at this step and gets its UMK with the others (``_ensure_issuer_keys``).
_UPLOAD_REFUSALS_V10 = """
CREATE TABLE transit_upload_refusals (
    id          INTEGER PRIMARY KEY,
    terminal    TEXT NOT NULL,
    sent        INTEGER NOT NULL CHECK (sent >= 0),
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    mac         TEXT,
    refused_at  TEXT NOT NULL
) STRICT;
CREATE TRIGGER transit_upload_refusals_no_update BEFORE UPDATE ON transit_upload_refusals
BEGIN SELECT RAISE(ABORT, 'transit_upload_refusals is append-only'); END;
CREATE TRIGGER transit_upload_refusals_no_delete BEFORE DELETE ON transit_upload_refusals
BEGIN SELECT RAISE(ABORT, 'transit_upload_refusals is append-only'); END;
"""
UMK_LABEL = "sbcard upload master "


def _v10_upload_provenance(db: sqlite_utils.Database) -> None:
    db.executescript(_UPLOAD_REFUSALS_V10)
    rows = {row[0]: row for row in db.execute(
        "SELECT purpose, algorithm, key_version, key_hex, created_at FROM issuer_keys")}
    if "MK" in rows and "UMK" not in rows:
        _, algorithm, version, key_hex, created_at = rows["MK"]
        db.execute("INSERT INTO issuer_keys (purpose, algorithm, key_version, key_hex, created_at) "
                   "VALUES ('UMK', ?, ?, ?, ?)",
                   [algorithm, version, kdf(bytes.fromhex(key_hex), UMK_LABEL, len(key_hex) // 2).hex().upper(),
                    created_at])


# Worlds made before this recorded card files by absolute path: a copy of such a world wrote into
# the original's cards. Each recorded path becomes relative to the home (sbcard/store/paths.py).
_RECORDED_PATHS = (("blank_cards", "chip_serial", "path"), ("cards", "card_number", "virtual_path"))


def _v11_relative_paths(db: sqlite_utils.Database) -> None:
    home = home_of(db)
    if home is None:
        return
    for table, key, column in _RECORDED_PATHS:
        rows = db.execute(f"SELECT {key}, {column} FROM {table} WHERE {column} LIKE '/%'").fetchall()
        changed = [(new, k) for k, stored in rows if (new := relative_in_world(home, stored)) != stored]
        db.conn.executemany(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", changed)


def _v12_keys_out(db: sqlite_utils.Database) -> None:
    """Seal the ``issuer_keys`` rows into ``<home>/<node>.keys`` and drop the table, its pages zeroed.

    The store is written before the table is dropped: a crash in between leaves both, and
    the next open seals the same keys again (a store never takes a different key for a purpose).
    """
    if not db["issuer_keys"].exists():
        return
    rows = [dict(row) for row in db.query(
        "SELECT purpose, algorithm, key_version, key_hex, created_at FROM issuer_keys ORDER BY purpose")]
    if rows:
        home = home_of(db)
        code = db.execute("SELECT value FROM schema_meta WHERE key = 'region_code'").fetchone()[0]
        if home is None:
            raise SbcardError("keys.no_store", "an in-memory region database has no key store for its keys")
        node = node_of(code)
        keystore.add_keys(keystore.keystore_path(home, node), rows, node=node, region_code=code)
    secure = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete = ON")  # the freed pages are zeroed, not left holding the keys
    try:
        db.execute("DROP TABLE issuer_keys")
    finally:
        db.execute(f"PRAGMA secure_delete = {int(secure)}")


def _v13_residence(db: sqlite_utils.Database) -> None:
    """The registry's residence status (issue 16): 户籍 (hukou) or a 居住证 (permit) in the
    province the person lives in, neither (none), or not recorded (unknown: every person
    registered before this migration). Beijing's elderly free bus checks it when granted."""
    if "residence" not in db["persons"].columns_dict:  # a world set back to an older version keeps its column
        db.execute("ALTER TABLE persons ADD COLUMN residence TEXT NOT NULL DEFAULT 'unknown' "
                   "CHECK (residence IN ('hukou', 'permit', 'none', 'unknown'))")
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'concessions'").fetchone()[0]
    if "bj_elderly_free_bus" in sql:
        return
    # Beijing's elderly free bus (EF 0017 type 03) is a kind of its own; SQLite cannot change a
    # CHECK, so the table is rebuilt (nothing references it) with its rows and indexes.
    db.executescript(_CONCESSIONS_V13)


_CONCESSIONS_V13 = """
CREATE TABLE concessions_v13 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    citizen_id  TEXT NOT NULL REFERENCES persons (citizen_id),
    card_number TEXT NOT NULL REFERENCES cards (card_number),
    kind        TEXT NOT NULL CHECK (kind IN ('elderly_free_ride', 'student', 'bj_elderly_free_bus')),
    start_date  TEXT NOT NULL,
    end_date    TEXT,
    status      TEXT NOT NULL CHECK (status IN ('enabled', 'locked')),
    at          TEXT NOT NULL
) STRICT;
INSERT INTO concessions_v13 (id, citizen_id, card_number, kind, start_date, end_date, status, at)
    SELECT id, citizen_id, card_number, kind, start_date, end_date, status, at FROM concessions;
DROP TABLE concessions;
ALTER TABLE concessions_v13 RENAME TO concessions;
CREATE UNIQUE INDEX one_elderly_free_ride_per_person ON concessions (citizen_id)
    WHERE kind = 'elderly_free_ride' AND status = 'enabled';
CREATE UNIQUE INDEX one_bj_elderly_free_bus_per_person ON concessions (citizen_id)
    WHERE kind = 'bj_elderly_free_bus' AND status = 'enabled';
CREATE INDEX concessions_card ON concessions (card_number);
"""


_MEDICAL_V14 = """
-- Insured side: cross-region registrations (异地就医备案, 国医保发〔2022〕22号) of this region's
-- insured persons, made by staff or the holder (`operator`: the staff member, or 'holder').
-- `province` is the place of treatment's; `valid_to` NULL: open-ended (long-term kinds).
-- A settlement looks up the registration valid on the day of treatment; a cancelled one
-- (`cancelled_at`) no longer counts. Claims now say their episode, the visit the hospital
-- declared, and the terms they were settled on (kind, cut); years count the outpatient
-- eligible money (the band) and the inpatient accumulators apart. Old rows: outpatient,
-- no kind or cut recorded.
CREATE TABLE IF NOT EXISTS medical_registrations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    citizen_id   TEXT NOT NULL REFERENCES persons (citizen_id),
    kind         TEXT NOT NULL CHECK (kind IN ('retired_resettled', 'long_term_resident', 'posted_worker',
                                               'referral', 'other_temporary')),
    province     TEXT NOT NULL CHECK (province IN ('110000', '120000', '130000')),
    valid_from   TEXT NOT NULL,
    valid_to     TEXT,
    operator     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    cancelled_at TEXT,
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
) STRICT;
CREATE INDEX IF NOT EXISTS medical_registrations_citizen ON medical_registrations (citizen_id, province);
"""


_MEDICAL_V14_COLUMNS = (
    ("medical_claims", "episode", "TEXT NOT NULL DEFAULT 'outpatient' CHECK (episode IN ('outpatient', 'inpatient'))"),
    ("medical_claims", "visit", "TEXT NOT NULL DEFAULT '' CHECK (visit IN ('', 'referral', 'emergency'))"),
    ("medical_claims", "registration_kind", "TEXT"),
    ("medical_claims", "cut_points", "INTEGER CHECK (cut_points BETWEEN 0 AND 100)"),
    ("medical_years", "eligible_fen", "INTEGER NOT NULL DEFAULT 0 CHECK (eligible_fen >= 0)"),
    ("medical_years", "inpatient_deductible_paid_fen",
     "INTEGER NOT NULL DEFAULT 0 CHECK (inpatient_deductible_paid_fen >= 0)"),
    ("medical_years", "inpatient_fund_paid_fen", "INTEGER NOT NULL DEFAULT 0 CHECK (inpatient_fund_paid_fen >= 0)"),
)


def _v14_medical_registrations(db: sqlite_utils.Database) -> None:
    """The table and the columns, each only if missing (a world faked back to an older version keeps them)."""
    db.executescript(_MEDICAL_V14)
    for table, column, definition in _MEDICAL_V14_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


_STAFF_V15 = """
-- Staff accounts (sbcard.services.outlets.staff): an operator with a credential. The
-- password is kept only as its argon2 hash; `must_change` until the person sets their own.
-- `failed_signins` counts wrong passwords in a row; `locked_until` is set when they reach
-- the limit (sbcard.domain.staff), `state` 'locked' by an administrator until unlocked.
CREATE TABLE IF NOT EXISTS staff_accounts (
    operator       TEXT PRIMARY KEY REFERENCES operators (code),
    staff_role     TEXT NOT NULL CHECK (staff_role IN
                       ('counter', 'finance_maker', 'finance_checker', 'supervisor', 'auditor', 'admin')),
    outlet         TEXT,                      -- the scope's outlet, NULL for the whole region
    password_hash  TEXT NOT NULL,
    must_change    INTEGER NOT NULL DEFAULT 1 CHECK (must_change IN (0, 1)),
    state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'locked')),
    failed_signins INTEGER NOT NULL DEFAULT 0,
    locked_until   TEXT,
    password_set_at TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL
) STRICT;

-- Signed-in sessions: only a hash of the token is kept, so a copy of the database signs
-- nobody in. `kind` 'bearer' for API clients, 'cookie' for browsers (which also carry the
-- CSRF token, kept hashed too).
CREATE TABLE IF NOT EXISTS staff_sessions (
    token_hash TEXT PRIMARY KEY,
    operator   TEXT NOT NULL REFERENCES operators (code),
    kind       TEXT NOT NULL CHECK (kind IN ('bearer', 'cookie')),
    csrf_hash  TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at   TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS staff_sessions_operator ON staff_sessions (operator);

-- Wrong sign-ins with codes no account has, counted and locked out as an account's are
-- (so the answers do not tell which codes exist); `subject` is a hash of the code.
CREATE TABLE IF NOT EXISTS signin_throttle (
    subject      TEXT PRIMARY KEY,
    failed       INTEGER NOT NULL,
    locked_until TEXT
) STRICT;

-- The first answer to each Idempotency-Key of a signed-in caller (or terminal): a retry of
-- the same request gets it again; the same key with another request is refused. `status`
-- 0 while the first request is being served (a second process then answers "in progress").
CREATE TABLE IF NOT EXISTS idempotency_keys (
    caller       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (caller, key)
) STRICT;
"""

_OPERATORS_V15 = """
CREATE TABLE operators_v15 (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('counter', 'finance', 'supervisor', 'auditor', 'admin')),
    region     TEXT NOT NULL REFERENCES regions (code),
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO operators_v15 (code, name, role, region, created_at)
    SELECT code, name, role, region, created_at FROM operators;
DROP TABLE operators;
ALTER TABLE operators_v15 RENAME TO operators;
"""


def _v15_staff(db: sqlite_utils.Database) -> None:
    """Operators may be auditors and administrators; staff accounts, sessions, idempotency keys."""
    sql = next(iter(db.execute("SELECT sql FROM sqlite_master WHERE name = 'operators'")))[0]
    if "'auditor'" not in sql:
        # no other table references operators yet, so the table is rebuilt with foreign keys as they are
        db.executescript(_OPERATORS_V15)
    db.executescript(_STAFF_V15)


_TERMINAL_CREDENTIALS_V16 = """
-- A terminal's host credential is derived (sbcard.chip.terminal_auth), never stored; what the
-- region keeps is whether the terminal may still use it, and the nonces it used lately.
ALTER TABLE terminals ADD COLUMN revoked_at TEXT;
ALTER TABLE terminals ADD COLUMN revoked_reason TEXT;

-- Nonces of signed terminal requests, kept past the timestamp window: a replay is refused.
CREATE TABLE IF NOT EXISTS terminal_nonces (
    terminal TEXT NOT NULL,
    nonce    TEXT NOT NULL,
    seen_at  INTEGER NOT NULL,  -- Unix seconds of the host's clock
    PRIMARY KEY (terminal, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terminal_nonces_seen ON terminal_nonces (seen_at);
"""


def _v16_terminal_credentials(db: sqlite_utils.Database) -> None:
    """Terminals' host credentials: revocation, and the nonces of signed requests."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(terminals)")}
    if "revoked_at" not in columns:
        db.executescript(_TERMINAL_CREDENTIALS_V16)


_PAY_LEASE_HEARTBEAT_V17 = """
-- The pay lease's heartbeat: every chunk a run commits renews it; a lease not renewed for
-- payment.STALE_LEASE is stale and the next pay takes it over, wherever its payer ran
-- (a payer on another machine that died, a pid reused). NULL (a lease of before): its start.
ALTER TABLE subsidy_pay_leases ADD COLUMN renewed_at TEXT;
"""


def _v17_pay_lease_heartbeat(db: sqlite_utils.Database) -> None:
    """The subsidy pay lease's heartbeat (``renewed_at``), for taking over a stale lease."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(subsidy_pay_leases)")}
    if "renewed_at" not in columns:
        db.executescript(_PAY_LEASE_HEARTBEAT_V17)


_PAY_LEASE_SIGHTINGS_V18 = """
-- What a pay call saw of a live-looking lease, on its own machine's clock: a lease is stale
-- only once its token and chunks have not changed for payment.STALE_LEASE as one observer
-- saw them, never by comparing the holder's clock (renewed_at) with the taker's.
CREATE TABLE IF NOT EXISTS subsidy_pay_lease_sightings (
    batch_id TEXT NOT NULL REFERENCES subsidy_batches (id),
    observer TEXT NOT NULL,
    token    TEXT NOT NULL,
    chunks   INTEGER NOT NULL,
    seen_at  TEXT NOT NULL,
    PRIMARY KEY (batch_id, observer)
) STRICT;
"""


def _v18_pay_lease_sightings(db: sqlite_utils.Database) -> None:
    """The pay lease's sightings: staleness judged on the taker's own clock alone."""
    db.executescript(_PAY_LEASE_SIGHTINGS_V18)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "regions, operators, audit log, issuer keys", _v1_initial),
    Migration(2, "registry, outlets, stock, applications, cards, accounts, ledger, outbox", _v2_issuance),
    Migration(3, "transit: terminals, uploaded records, purse loads and shadow, concessions", _v3_transit),
    Migration(4, "subsidies: items, batches, rows", _v4_subsidies),
    Migration(5, "medical: claims, year accumulators, personal accounts, offline queue", _v5_medical),
    Migration(6, "venues: gates' visits, library readers and loans", _v6_venues),
    Migration(7, "clearing: records awaiting their issuer, clearing days, lines and runs", _v7_clearing),
    Migration(8, "indexes: accounts by card, purse loads by card and counter", _v8_indexes),
    Migration(9, "nothing half-written: one visit per gate purchase, purse refunds from clearing, owed settled",
              _v9_half_written),
    Migration(10, "upload provenance: refused upload batches, the UMK master", _v10_upload_provenance),
    Migration(11, "card files recorded relative to the world's home", _v11_relative_paths),
    Migration(12, "issuer master keys moved out to the region's key store", _v12_keys_out),
    Migration(13, "registry: residence status (户籍 / 居住证) for the elderly transit concessions", _v13_residence),
    Migration(14, "medical: cross-region registrations, episodes, terms of each claim, band and inpatient years",
              _v14_medical_registrations),
    Migration(15, "staff accounts: auditors and administrators, credentials, sessions, idempotency keys",
              _v15_staff),
    Migration(16, "terminals' host credentials: revocation, nonces of signed requests", _v16_terminal_credentials),
    Migration(17, "subsidy pay lease: heartbeat, so that a stale lease is taken over", _v17_pay_lease_heartbeat),
    Migration(18, "subsidy pay lease: sightings, staleness on the taker's own clock", _v18_pay_lease_sightings),
)
