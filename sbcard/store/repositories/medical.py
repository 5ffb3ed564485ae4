"""The SQL of medical settlement (``sbcard.services.medical``): claims, years, personal accounts, registrations.

On the insured region: its holders' claims, their year-to-date accumulators, their personal
accounts (个人账户) and their cross-region registrations (备案). On the hospital's region:
its claim ids and the queue of claims settled offline. The money of a claim is the
ledger's (``sbcard.services.accounts.ledger``), never written here.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

# The accumulators of a holder's year, in the order ``sbcard.domain.medical.YearToDate`` takes them.
YEAR_COLUMNS = ("deductible_paid_fen, fund_paid_fen, eligible_fen, inpatient_deductible_paid_fen, "
                "inpatient_fund_paid_fen")


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> int:
    """One row, by plain SQL: a claim writes several, and the schema's checks are SQLite's anyway."""
    cur = db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
    return int(cur.lastrowid or 0)


class MedicalRepository:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- the insured: cards and enrolments ------------------------------------------------

    def card(self, card_number: str) -> dict[str, Any] | None:
        found = list(self.db.query("SELECT * FROM cards WHERE card_number = ?", [card_number]))
        return found[0] if found else None

    def enrolment(self, citizen_id: str) -> tuple[str | None, str, int] | None:
        """(insured_region, insurance_type, retired) of the holder's enrolment, or None."""
        return self.db.execute("SELECT insured_region, insurance_type, retired FROM enrolments WHERE citizen_id = ?",
                               [citizen_id]).fetchone()

    def card_with_enrolment(self, card_number: str) -> dict[str, Any] | None:
        """card_number, citizen_id, insured_region, insurance_type, retired (None when not enrolled)."""
        found = list(self.db.query(
            "SELECT c.card_number, c.citizen_id, e.insured_region, e.insurance_type, e.retired "
            "FROM cards c LEFT JOIN enrolments e USING (citizen_id) WHERE c.card_number = ?", [card_number]))
        return found[0] if found else None

    # --- claims --------------------------------------------------------------------------

    def claim(self, claim_id: str) -> dict[str, Any] | None:
        found = list(self.db.query("SELECT * FROM medical_claims WHERE claim_id = ?", [claim_id]))
        return found[0] if found else None

    def has_claim(self, claim_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM medical_claims WHERE claim_id = ?", [claim_id]).fetchone() is not None

    def insert_claim(self, row: dict[str, Any]) -> None:
        _insert(self.db, "medical_claims", row)

    def mark_refunded(self, claim_id: str, *, reversal_txn_id: str | None, at: str) -> None:
        self.db.execute("UPDATE medical_claims SET status = 'refunded', reversal_txn_id = ?, refunded_at = ? "
                        "WHERE claim_id = ?", [reversal_txn_id, at, claim_id])

    def mark_owed_settled(self, claim_id: str, *, txn_id: str, at: str) -> None:
        self.db.execute("UPDATE medical_claims SET owed_txn_id = ?, owed_settled_at = ? WHERE claim_id = ?",
                        [txn_id, at, claim_id])

    def claims(self, *, card_number: str | None = None, hospital: str | None = None) -> list[dict[str, Any]]:
        """The region's claims, newest last, optionally one card's or one hospital's."""
        where, args = [], []
        if card_number:
            where.append("card_number = ?")
            args.append(card_number)
        if hospital:
            where.append("hospital = ?")
            args.append(hospital)
        sql = "SELECT * FROM medical_claims" + (" WHERE " + " AND ".join(where) if where else "")
        return list(self.db.query(sql + " ORDER BY at, claim_id", args))

    def settled_claims(self, citizen_id: str, year: int) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM medical_claims WHERE citizen_id = ? AND year = ? AND "
                                   "status = 'settled'", [citizen_id, year]).fetchone()
        return int(count)

    # --- years and personal accounts -----------------------------------------------------

    def year(self, citizen_id: str, year: int) -> tuple[int, ...] | None:
        """The year's accumulators (``YEAR_COLUMNS``) and then ``allocated_fen``, or None (no row yet)."""
        return self.db.execute(f"SELECT {YEAR_COLUMNS}, allocated_fen FROM medical_years "
                               "WHERE citizen_id = ? AND year = ?", [citizen_id, year]).fetchone()

    def insert_year(self, row: dict[str, Any]) -> None:
        _insert(self.db, "medical_years", row)

    def save_year(self, citizen_id: str, year: int, accumulators: tuple[int, int, int, int, int],
                  updated_at: str) -> None:
        """The year's accumulators (``YEAR_COLUMNS``' order)."""
        self.db.execute("UPDATE medical_years SET deductible_paid_fen = ?, fund_paid_fen = ?, eligible_fen = ?, "
                        "inpatient_deductible_paid_fen = ?, inpatient_fund_paid_fen = ?, updated_at = ? "
                        "WHERE citizen_id = ? AND year = ?", [*accumulators, updated_at, citizen_id, year])

    def insert_account_entry(self, row: dict[str, Any]) -> None:
        _insert(self.db, "medical_account_entries", row)

    def personal_balance(self, citizen_id: str) -> int:
        (total,) = self.db.execute(
            "SELECT coalesce(sum(amount_fen), 0) FROM medical_account_entries WHERE citizen_id = ?",
            [citizen_id]).fetchone()
        return int(total)

    def existing_accounts(self, wanted: tuple[str, ...]) -> set[str]:
        """Those of these ledger accounts that exist."""
        return {r[0] for r in self.db.execute(
            f"SELECT account_no FROM accounts WHERE account_no IN ({', '.join('?' * len(wanted))})", wanted)}

    # --- registrations (备案) -------------------------------------------------------------

    def live_registrations(self, citizen_id: str, province: str, *, newest_first: bool = False
                           ) -> list[dict[str, Any]]:
        """The holder's registrations for ``province`` not cancelled."""
        return list(self.db.query(
            "SELECT * FROM medical_registrations WHERE citizen_id = ? AND province = ? AND cancelled_at IS NULL"
            + (" ORDER BY id DESC" if newest_first else ""), [citizen_id, province]))

    def registrations(self, citizen_id: str) -> list[dict[str, Any]]:
        """The holder's registrations, oldest first."""
        return list(self.db.query("SELECT * FROM medical_registrations WHERE citizen_id = ? ORDER BY valid_from, id",
                                  [citizen_id]))

    def registration(self, registration_id: int, citizen_id: str | None = None) -> dict[str, Any] | None:
        sql, args = "SELECT * FROM medical_registrations WHERE id = ?", [registration_id]
        if citizen_id is not None:
            sql, args = sql + " AND citizen_id = ?", [registration_id, citizen_id]
        found = list(self.db.query(sql, args))
        return found[0] if found else None

    def insert_registration(self, row: dict[str, Any]) -> int:
        """The new registration's id."""
        return _insert(self.db, "medical_registrations", row)

    def cancel_registration(self, registration_id: int, at: str) -> None:
        self.db.execute("UPDATE medical_registrations SET cancelled_at = ? WHERE id = ?", [at, registration_id])

    # --- the hospital's region: the offline queue ----------------------------------------

    def queue(self, row: dict[str, Any]) -> None:
        self.db["medical_offline_queue"].insert(row)

    def queued(self, insured_node: str | None = None) -> list[dict[str, Any]]:
        """The claims still waiting, oldest first (only ``insured_node``'s, if given)."""
        sql = "SELECT * FROM medical_offline_queue WHERE status = 'queued'"
        args: list[Any] = []
        if insured_node:
            sql += " AND insured_node = ?"
            args.append(insured_node)
        return list(self.db.query(sql + " ORDER BY queued_at, claim_id", args))

    def has_queued(self, insured_node: str) -> bool:
        return self.db.execute("SELECT 1 FROM medical_offline_queue WHERE status = 'queued' AND insured_node = ? "
                               "LIMIT 1", [insured_node]).fetchone() is not None

    def mark_queued(self, claim_id: str, *, status: str, result: str, at: str) -> None:
        self.db.execute("UPDATE medical_offline_queue SET status = ?, result = ?, reconciled_at = ? "
                        "WHERE claim_id = ? AND status = 'queued'", [status, result, at, claim_id])

    def queued_claim(self, claim_id: str) -> dict[str, Any] | None:
        found = list(self.db.query("SELECT * FROM medical_offline_queue WHERE claim_id = ?", [claim_id]))
        return found[0] if found else None

    def queue_entries(self, *, card_number: str | None, hospital: str | None,
                      status: str | None) -> list[dict[str, Any]]:
        where, args = [], []
        for column, value in (("card_number", card_number), ("hospital", hospital), ("status", status)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM medical_offline_queue" + (" WHERE " + " AND ".join(where) if where else "")
        return list(self.db.query(sql + " ORDER BY queued_at, claim_id", args))
