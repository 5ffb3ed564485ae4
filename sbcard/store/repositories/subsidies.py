"""The SQL of subsidy batches (``sbcard.services.subsidies``): batches, their rows, leases and reversals.

The money itself is the ledger's: a payment or a reversal is posted through
``sbcard.services.accounts.ledger``, never written here. The reads of cards and accounts
are the facts a payment checks each row against, a chunk at a time (one query per kind of
fact for the whole chunk).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from sbcard.store import rows

# card_number, status, loss_kind, loss_expires_at, created_at
CardFacts = tuple[str, str, str | None, str | None, str]
# account_no, card_number, status
AccountFacts = tuple[str, str | None, str]
# seq, citizen_id, card_number, item, period, amount_fen, note, rowid
PayableRow = tuple[int, str, str | None, str, str, int, str | None, int]


# A person's cards as the import checks them (card_number, citizen_id, status, loss_kind, loss_expires_at, created_at).
_CARD_COLUMNS = "card_number, citizen_id, status, loss_kind, loss_expires_at, created_at"
# A chunk's persons with their open account and their valid card (both by partial unique indexes).
_PERSONS_SQL = """
SELECT p.citizen_id, p.name, p.household_region, a.card_number, a.status,
       c.card_number, c.citizen_id, c.status, c.loss_kind, c.loss_expires_at, c.created_at
FROM persons p
LEFT JOIN accounts a ON a.citizen_id = p.citizen_id AND a.status != 'closed'
LEFT JOIN cards c ON c.citizen_id = p.citizen_id AND c.status IN ('issued', 'active', 'lost')
WHERE p.citizen_id IN {}"""
_STAGE = "temp.subsidy_stage"
# The columns of a batch's row that an import stages and stores.
ROW_COLUMNS = ("seq", "line", "citizen_id", "name", "card_number", "item", "period", "amount_fen", "remark",
               "status", "reason_code", "reason", "note")


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _in_json(sql: str) -> str:
    """``sql`` with its ``IN {}`` bound to one JSON parameter (any number of values)."""
    return sql.format("(SELECT value FROM json_each(?))")


class SubsidiesRepository:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- the catalogue -------------------------------------------------------------------

    def catalogue(self) -> list[dict[str, Any]]:
        """The subsidy items' rows, by code."""
        return list(self.db.query("SELECT * FROM subsidy_items ORDER BY code"))

    # --- batches -------------------------------------------------------------------------

    def all_batches(self) -> list[dict[str, Any]]:
        """The region's batches, oldest first."""
        return list(self.db.query("SELECT * FROM subsidy_batches ORDER BY created_at, id"))

    def batch_of_file(self, sha256: str) -> tuple[str, str, str] | None:
        """(id, status, file name) of the batch imported from the file with this SHA-256, if any."""
        return self.db.execute("SELECT id, status, file_name FROM subsidy_batches WHERE file_sha256 = ?",
                               [sha256]).fetchone()

    def generated_before(self, region: str, item: str, period: str) -> tuple[str, str] | None:
        """(id, status) of a generated batch of the region for the item and period that was not rejected."""
        for batch_id, status in self.db.execute(
                "SELECT id, status FROM subsidy_batches WHERE source = 'generated' AND region = ? "
                "AND status != 'rejected' ORDER BY id", [region]).fetchall():
            if self.db.execute("SELECT 1 FROM subsidy_rows WHERE batch_id = ? AND item = ? AND period = ? LIMIT 1",
                               [batch_id, item, period]).fetchone():
                return batch_id, status
        return None

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        found = list(self.db.query("SELECT * FROM subsidy_batches WHERE id = ?", [batch_id]))
        return found[0] if found else None

    def approve(self, batch_id: str, *, checker: str, at: str) -> None:
        self.db.execute("UPDATE subsidy_batches SET status = 'approved', checker = ?, approved_at = ? WHERE id = ?",
                        [checker, at, batch_id])

    def reject(self, batch_id: str, *, checker: str, at: str, reason: str) -> None:
        self.db.execute("UPDATE subsidy_batches SET status = 'rejected', checker = ?, approved_at = ?, "
                        "reject_reason = ? WHERE id = ?", [checker, at, reason, batch_id])

    def start_paying(self, batch_id: str, *, failed_count: int, failed_fen: int) -> None:
        """approved → paying, the rows invalid at import counted as failed."""
        self.db.execute("UPDATE subsidy_batches SET status = 'paying', failed_count = ?, failed_fen = ? WHERE id = ?",
                        [failed_count, failed_fen, batch_id])

    def add_to_counters(self, batch_id: str, *, paid: int, paid_fen: int, failed: int, failed_fen: int) -> None:
        self.db.execute("UPDATE subsidy_batches SET paid_count = paid_count + ?, paid_fen = paid_fen + ?, "
                        "failed_count = failed_count + ?, failed_fen = failed_fen + ? WHERE id = ?",
                        [paid, paid_fen, failed, failed_fen, batch_id])

    def mark_paid(self, batch_id: str, paid_at: str) -> None:
        """The batch is paid and its lease returned."""
        self.db.execute("UPDATE subsidy_batches SET status = 'paid', paid_at = ? WHERE id = ?", [paid_at, batch_id])
        self.db.execute("DELETE FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id])
        self.db.execute("DELETE FROM subsidy_pay_lease_sightings WHERE batch_id = ?", [batch_id])

    # --- rows ----------------------------------------------------------------------------

    def status_totals(self, batch_id: str) -> list[tuple[str, int, int]]:
        """(status, rows, amount) of the batch's rows, by status."""
        return [(status, int(n), int(fen)) for status, n, fen in self.db.execute(
            "SELECT status, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows WHERE batch_id = ? "
            "GROUP BY status ORDER BY status", [batch_id])]

    def reason_totals(self, batch_id: str) -> list[tuple[str, str, int, int]]:
        """(status, reason code, rows, amount) of the batch's invalid and failed rows, the commonest first."""
        return [(status, code, int(n), int(fen)) for status, code, n, fen in self.db.execute(
            "SELECT status, reason_code, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows "
            "WHERE batch_id = ? AND status IN ('invalid', 'failed') GROUP BY status, reason_code "
            "ORDER BY count(*) DESC, status, reason_code", [batch_id])]

    def item_totals(self, batch_id: str) -> list[tuple[str, str, int, int]]:
        """(item, period, rows, amount) of the batch's rows."""
        return [(item, period, int(n), int(fen)) for item, period, n, fen in self.db.execute(
            "SELECT item, period, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows WHERE batch_id = ? "
            "GROUP BY item, period ORDER BY item, period", [batch_id])]

    def noted(self, batch_id: str) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM subsidy_rows WHERE batch_id = ? AND note IS NOT NULL",
                                   [batch_id]).fetchone()
        return int(count)

    def unpaid_rows(self, batch_id: str) -> Iterator[tuple[Any, ...]]:
        """(seq, citizen_id, name, card_number, item, period, amount_fen, remark, reason_code, reason) of each
        invalid or failed row, in seq order."""
        return self.db.execute(
            "SELECT seq, citizen_id, name, card_number, item, period, amount_fen, remark, reason_code, "
            "reason FROM subsidy_rows WHERE batch_id = ? AND status IN ('invalid', 'failed') ORDER BY seq",
            [batch_id])

    def paid_in(self, item: str, period: str, cids: Sequence[str]) -> list[tuple[str, str]]:
        """(citizen_id, batch) of the paid rows of these persons for the item and period."""
        if not cids:
            return []
        return self.db.execute(_in_json("SELECT citizen_id, batch_id FROM subsidy_rows WHERE status = 'paid' "
                                        "AND item = ? AND period = ? AND citizen_id IN {}"),
                               [item, period, json.dumps(list(cids))]).fetchall()

    def row_totals(self, batch_id: str) -> dict[str, tuple[int, int]]:
        """status → (rows, sum of their amounts) of the batch."""
        return {status: (int(n), int(fen)) for status, n, fen in self.db.execute(
            "SELECT status, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows WHERE batch_id = ? "
            "GROUP BY status", [batch_id])}

    def failed_by_reason(self, batch_id: str) -> list[tuple[str, int, int]]:
        """(reason code, rows, amount) of the batch's invalid and failed rows, the commonest first."""
        return [(code, int(n), int(fen)) for code, n, fen in self.db.execute(
            "SELECT reason_code, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows "
            "WHERE batch_id = ? AND status IN ('invalid', 'failed') GROUP BY reason_code "
            "ORDER BY count(*) DESC, reason_code", [batch_id])]

    def to_pay(self, batch_id: str) -> tuple[int, int]:
        count, fen = self.db.execute("SELECT count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows "
                                     "WHERE batch_id = ? AND status = 'valid'", [batch_id]).fetchone()
        return int(count), int(fen)

    def items_to_pay(self, batch_id: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT item FROM subsidy_rows WHERE batch_id = ? AND status = 'valid'", [batch_id])]

    def valid_rows_after(self, batch_id: str, seq: int, limit: int) -> list[PayableRow]:
        """The next ``limit`` valid rows after ``seq``, in ``seq`` order."""
        return self.db.execute(
            "SELECT seq, citizen_id, card_number, item, period, amount_fen, note, rowid FROM subsidy_rows "
            "WHERE batch_id = ? AND status = 'valid' AND seq > ? ORDER BY seq LIMIT ?",
            [batch_id, seq, limit]).fetchall()

    def row(self, batch_id: str, seq: int) -> dict[str, Any] | None:
        found = list(self.db.query("SELECT * FROM subsidy_rows WHERE batch_id = ? AND seq = ?", [batch_id, seq]))
        return found[0] if found else None

    def mark_rows_paid(self, paid: Sequence[tuple[str, str, str, str | None, int]]) -> int:
        """(paid card, txn id, paid at, note, rowid) of each row still valid; how many were marked."""
        return self.db.conn.executemany(
            "UPDATE subsidy_rows SET status = 'paid', paid_card = ?, txn_id = ?, paid_at = ?, note = ? "
            "WHERE rowid = ? AND status = 'valid'", paid).rowcount

    def mark_rows_failed(self, failed: Sequence[tuple[str, str, int]]) -> int:
        """(reason code, reason, rowid) of each row still valid; how many were marked."""
        return self.db.conn.executemany(
            "UPDATE subsidy_rows SET status = 'failed', reason_code = ?, reason = ? "
            "WHERE rowid = ? AND status = 'valid'", failed).rowcount

    def paid_keys(self, cids: Sequence[str]) -> dict[tuple[str, str, str], tuple[str, int]]:
        """(person, item, period) → (batch, seq) of each paid row of these persons."""
        return {(r[0], r[1], r[2]): (r[3], r[4]) for r in self.db.execute(
            f"SELECT citizen_id, item, period, batch_id, seq FROM subsidy_rows "
            f"WHERE status = 'paid' AND citizen_id IN ({_marks(cids)})", list(cids))}

    # --- the facts a row is checked and paid on -----------------------------------------

    def persons_with_cards(self, cids: Sequence[str]) -> list[tuple[Any, ...]]:
        """(citizen_id, name, household_region, open account's card, its status, *valid card) of each of these
        persons registered here (the card's six columns None when the person holds no valid card)."""
        if not cids:
            return []
        return self.db.execute(_in_json(_PERSONS_SQL), [json.dumps(list(cids))]).fetchall()

    def registered(self, cids: Sequence[str]) -> list[str]:
        """Those of these persons registered here."""
        if not cids:
            return []
        return [cid for (cid,) in self.db.execute(
            _in_json("SELECT citizen_id FROM persons WHERE citizen_id IN {}"), [json.dumps(list(cids))])]

    def directory_cards_of(self, cids: Sequence[str]) -> list[str]:
        """The numbers of these persons' cards in the hub's card directory (on the hub's database)."""
        if not cids:
            return []
        return [n for (n,) in self.db.execute(
            _in_json("SELECT card_number FROM card_directory WHERE citizen_id IN {}"), [json.dumps(list(cids))])]

    def cards_by_number(self, numbers: Sequence[str]) -> list[tuple[Any, ...]]:
        """(card_number, citizen_id, status, loss_kind, loss_expires_at, created_at) of each of these cards here."""
        if not numbers:
            return []
        return self.db.execute(_in_json(f"SELECT {_CARD_COLUMNS} FROM cards WHERE card_number IN {{}}"),
                               [json.dumps(list(numbers))]).fetchall()

    def persons_born_by(self, latest_birth: str) -> list[tuple[str, str, str]]:
        """(citizen_id, name, household_region) of everyone born on or before the day, by citizen ID."""
        return self.db.execute(
            "SELECT citizen_id, name, household_region FROM persons WHERE birth_date <= ? ORDER BY citizen_id",
            [latest_birth]).fetchall()

    def fund_accounts(self) -> dict[str, str]:
        """item code → its fund account, for every item of the catalogue."""
        return {r[0]: r[1] for r in self.db.execute("SELECT code, fund_account FROM subsidy_items")}

    def cards_of(self, cids: Sequence[str]) -> dict[str, list[CardFacts]]:
        found: dict[str, list[CardFacts]] = {}
        for cid, *card in self.db.execute(
                f"SELECT citizen_id, card_number, status, loss_kind, loss_expires_at, created_at FROM cards "
                f"WHERE citizen_id IN ({_marks(cids)})", list(cids)):
            found.setdefault(cid, []).append(tuple(card))  # type: ignore[arg-type]
        return found

    def open_accounts_of(self, cids: Sequence[str]) -> dict[str, AccountFacts]:
        return {r[0]: r[1:] for r in self.db.execute(
            f"SELECT citizen_id, account_no, card_number, status FROM accounts "
            f"WHERE kind = 'holder' AND status != 'closed' AND citizen_id IN ({_marks(cids)})", list(cids))}

    # --- an import's staged rows --------------------------------------------------------

    @contextmanager
    def staging(self, *, cache_kib: int, stage_cache_kib: int) -> Iterator[None]:
        """A temporary table of this connection for an import's checked rows, dropped after; the page caches
        of the database and of the temporary one set to these sizes meanwhile."""
        db = self.db
        (cache,) = db.execute("PRAGMA cache_size").fetchone()
        (temp_cache,) = db.execute("PRAGMA temp.cache_size").fetchone()
        db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        db.execute(f"PRAGMA temp.cache_size = -{int(stage_cache_kib)}")
        db.execute(f"DROP TABLE IF EXISTS {_STAGE}")
        db.execute(f"""CREATE TABLE {_STAGE} (
            seq INTEGER PRIMARY KEY, line INTEGER NOT NULL, citizen_id TEXT, name TEXT, card_number TEXT, item TEXT,
            period TEXT, amount_fen INTEGER NOT NULL, remark TEXT, status TEXT NOT NULL, reason_code TEXT,
            reason TEXT, note TEXT)""")
        try:
            yield
        finally:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            db.execute(f"DROP TABLE IF EXISTS {_STAGE}")
            db.execute(f"PRAGMA cache_size = {int(cache)}")
            db.execute(f"PRAGMA temp.cache_size = {int(temp_cache)}")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction (BEGIN, not IMMEDIATE: no write lock on the region), for checking every chunk
        of an import against the same state while writing only to the temporary staging table."""
        self.db.execute("BEGIN")
        try:
            yield
            self.db.execute("COMMIT")
        finally:
            if self.db.conn.in_transaction:
                self.db.execute("ROLLBACK")

    def stage(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows (``ROW_COLUMNS``) into the staging table."""
        self.db.conn.executemany(
            f"INSERT INTO {_STAGE} ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})", rows)

    def store_staged(self, batch: dict[str, Any]) -> None:
        """The staged rows as the batch's rows, and the batch's header, inside the caller's transaction."""
        self.db.execute("PRAGMA defer_foreign_keys = ON")  # the rows go in before their batch
        self.db.execute(f"INSERT INTO subsidy_rows (batch_id, {', '.join(ROW_COLUMNS)}) "
                        f"SELECT ?, {', '.join(ROW_COLUMNS)} FROM {_STAGE} ORDER BY seq", [batch["id"]])
        self.db["subsidy_batches"].insert(batch)

    # --- the pay lease -------------------------------------------------------------------

    def lease(self, batch_id: str) -> dict[str, Any] | None:
        found = list(self.db.query("SELECT * FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id]))
        return found[0] if found else None

    def lease_shown(self, batch_id: str) -> dict[str, Any] | None:
        """Who holds the lease (host, pid, started_at, chunks, renewed_at), as a summary shows it."""
        found = list(self.db.query("SELECT host, pid, started_at, chunks, coalesce(renewed_at, started_at) AS "
                                   "renewed_at FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id]))
        return found[0] if found else None

    def replace_lease(self, lease: dict[str, Any]) -> None:
        """The lease is this one (any earlier lease of the batch is dropped)."""
        self.db.execute("DELETE FROM subsidy_pay_leases WHERE batch_id = ?", [lease["batch_id"]])
        self.db.execute("DELETE FROM subsidy_pay_lease_sightings WHERE batch_id = ?", [lease["batch_id"]])
        self.db["subsidy_pay_leases"].insert(lease)

    def sighting(self, batch_id: str, observer: str) -> dict[str, Any] | None:
        """What ``observer`` (a machine) last saw of the batch's lease: token, chunks, seen_at (its clock)."""
        found = list(self.db.query("SELECT token, chunks, seen_at FROM subsidy_pay_lease_sightings "
                                   "WHERE batch_id = ? AND observer = ?", [batch_id, observer]))
        return found[0] if found else None

    def note_sighting(self, batch_id: str, observer: str, token: str, chunks: int, seen_at: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO subsidy_pay_lease_sightings (batch_id, observer, token, chunks, "
                        "seen_at) VALUES (?, ?, ?, ?, ?)", [batch_id, observer, token, chunks, seen_at])

    def hold_lease(self, batch_id: str, token: str, renewed_at: str) -> bool:
        """Count one more chunk on the lease and renew it, if it is still this token's; whether it was."""
        cur = self.db.execute("UPDATE subsidy_pay_leases SET chunks = chunks + 1, renewed_at = ? "
                              "WHERE batch_id = ? AND token = ?", [renewed_at, batch_id, token])
        return cur.rowcount == 1

    def release_lease(self, batch_id: str, token: str) -> None:
        self.db.execute("DELETE FROM subsidy_pay_leases WHERE batch_id = ? AND token = ?", [batch_id, token])

    # --- reversals -----------------------------------------------------------------------

    def reversal(self, batch_id: str, seq: int) -> tuple[str, str, str, str] | None:
        """(txn id, operator, at, reason) of the row's reversal, if it was reversed."""
        return self.db.execute("SELECT txn_id, operator, at, reason FROM subsidy_reversals "
                               "WHERE batch_id = ? AND seq = ?", [batch_id, seq]).fetchone()

    def reversal_totals(self, batch_id: str) -> tuple[int, int]:
        count, fen = self.db.execute(
            "SELECT count(*), coalesce(sum(amount_fen), 0) FROM subsidy_reversals WHERE batch_id = ?",
            [batch_id]).fetchone()
        return int(count), int(fen)

    def record_reversal(self, reversal: dict[str, Any]) -> None:
        """The reversal's row, and its payment row marked reversed."""
        rows.insert(self.db, "subsidy_reversals", reversal)
        self.db.execute("UPDATE subsidy_rows SET status = 'reversed' WHERE batch_id = ? AND seq = ? "
                        "AND status = 'paid'", [reversal["batch_id"], reversal["seq"]])
