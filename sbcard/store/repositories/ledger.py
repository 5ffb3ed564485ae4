"""The SQL of the ledger (``sbcard.services.accounts``): accounts and their append-only entries.

Only ``sbcard.services.accounts.ledger`` writes through it: every entry of ``ledger_entries``
is posted by the ledger's own functions, which check the transaction is balanced, new (or
the same again) and within the accounts' bounds. The reads here serve the ledger and the
capabilities that ask it what was posted (a subsidy batch's transactions, a payment's legs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import sqlite_utils

from sbcard.store import rows

# (txn_id, account_no, amount_fen, kind, at, operator, outlet, memo)
EntryRow = tuple[str, str, int, str, str, str, str | None, str | None]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


class LedgerRepository:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- accounts ------------------------------------------------------------------------

    def account(self, account_no: str) -> dict[str, Any] | None:
        return rows.get(self.db, "accounts", "account_no", account_no)

    def kind_of(self, account_no: str) -> str | None:
        row = self.db.execute("SELECT kind FROM accounts WHERE account_no = ?", [account_no]).fetchone()
        return row[0] if row else None

    def kinds_and_statuses(self, numbers: Sequence[str]) -> dict[str, tuple[str, str]]:
        """account_no → (kind, status) of each of these accounts that exists, in one query."""
        found = self.db.execute(
            f"SELECT account_no, kind, status FROM accounts WHERE account_no IN ({_marks(numbers)})",
            list(numbers)).fetchall()
        return {number: (kind, status) for number, kind, status in found}

    def open_account_of_citizen(self, citizen_id: str) -> str | None:
        row = self.db.execute("SELECT account_no FROM accounts WHERE citizen_id = ? AND status != 'closed'",
                              [citizen_id]).fetchone()
        return row[0] if row else None

    def open_account_of_card(self, card_number: str) -> str | None:
        row = self.db.execute(
            "SELECT account_no FROM accounts WHERE card_number = ? AND kind = 'holder' AND status != 'closed'",
            [card_number]).fetchone()
        return row[0] if row else None

    def latest_account_of_card(self, card_number: str) -> dict[str, Any] | None:
        """The holder account reached through the card: the open one, else the last closed one."""
        found = list(self.db.query(
            "SELECT * FROM accounts WHERE card_number = ? AND kind = 'holder' "
            "ORDER BY status = 'closed', opened_at DESC LIMIT 1", [card_number]))
        return found[0] if found else None

    def insert_account(self, account_no: str, kind: str, *, citizen_id: str | None, card_number: str | None,
                       opened_at: str) -> None:
        self.db.execute(
            "INSERT INTO accounts (account_no, kind, citizen_id, card_number, status, opened_at, closed_at) "
            "VALUES (?, ?, ?, ?, 'active', ?, NULL)", [account_no, kind, citizen_id, card_number, opened_at])

    def set_card(self, account_no: str, card_number: str) -> None:
        self.db.execute("UPDATE accounts SET card_number = ? WHERE account_no = ?", [card_number, account_no])

    def set_status(self, account_no: str, status: str) -> None:
        self.db.execute("UPDATE accounts SET status = ? WHERE account_no = ?", [status, account_no])

    def close(self, account_no: str, closed_at: str) -> None:
        self.db.execute("UPDATE accounts SET status = 'closed', closed_at = ? WHERE account_no = ?",
                        [closed_at, account_no])

    def replacement_of(self, card_number: str) -> str | None:
        """The card that replaced this one, if any (its account moved there)."""
        row = self.db.execute("SELECT card_number FROM cards WHERE replaces = ?", [card_number]).fetchone()
        return row[0] if row else None

    # --- entries -------------------------------------------------------------------------

    def insert_entries(self, entries: Iterable[EntryRow]) -> None:
        self.db.conn.executemany(
            "INSERT INTO ledger_entries (txn_id, account_no, amount_fen, kind, at, operator, outlet, memo) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", entries)

    def legs(self, txn_id: str) -> list[tuple[str, int]]:
        """(account_no, amount_fen) of the transaction's entries, in the order posted."""
        return [(account_no, amount) for account_no, amount in self.db.execute(
            "SELECT account_no, amount_fen FROM ledger_entries WHERE txn_id = ? ORDER BY id", [txn_id])]

    def legs_of(self, txn_ids: Sequence[str]) -> dict[str, Counter[tuple[str, int]]]:
        """txn_id → its (account_no, amount_fen) entries, for each of these transactions posted."""
        found: dict[str, Counter[tuple[str, int]]] = {}
        for txn, account_no, amount in self.db.execute(
                f"SELECT txn_id, account_no, amount_fen FROM ledger_entries WHERE txn_id IN ({_marks(txn_ids)})",
                list(txn_ids)):
            found.setdefault(txn, Counter())[(account_no, amount)] += 1
        return found

    def is_posted(self, txn_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM ledger_entries WHERE txn_id = ? LIMIT 1", [txn_id]).fetchone() is not None

    def total(self, account_no: str) -> int:
        (total,) = self.db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = ?",
                                   [account_no]).fetchone()
        return int(total)

    def known_and_total(self, account_no: str) -> tuple[bool, int]:
        """(whether the account exists, the sum of its entries), in one query."""
        known, total = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_no = ?), "
            "(SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = ?)",
            [account_no, account_no]).fetchone()
        return bool(known), int(total)

    def totals(self, account_nos: Sequence[str]) -> dict[str, int]:
        """The sum of each of these accounts' entries (accounts without entries left out), in one query."""
        return {account_no: int(total) for account_no, total in self.db.execute(
            f"SELECT account_no, sum(amount_fen) FROM ledger_entries WHERE account_no IN ({_marks(account_nos)}) "
            f"GROUP BY account_no", list(account_nos))}

    def accounts_with_totals(self, account_nos: Sequence[str]) -> dict[str, tuple[str, str, int | None]]:
        """account_no → (kind, status, sum of its entries) of each of these accounts that exists; the sum of
        holder accounts only (None for an internal account, whose entries may be millions). Two queries."""
        found = self.kinds_and_statuses(account_nos)
        holders = [number for number, (kind, _) in found.items() if kind == "holder"]
        totals = self.totals(holders) if holders else {}
        return {number: (kind, status, totals.get(number, 0) if kind == "holder" else None)
                for number, (kind, status) in found.items()}

    def entries(self, account_no: str) -> list[dict[str, Any]]:
        return list(self.db.query(
            "SELECT txn_id, at, kind, amount_fen, memo, operator, outlet FROM ledger_entries "
            "WHERE account_no = ? ORDER BY id", [account_no]))

    def txn_totals(self, txn_prefix: str) -> tuple[int, int, int]:
        """(sum of credits, net sum, distinct transactions) of the transactions whose id starts with the prefix."""
        # GLOB, not LIKE: it is case-sensitive, so SQLite walks the txn_id index for the prefix.
        credited, net, txns = self.db.execute(
            "SELECT coalesce(sum(CASE WHEN amount_fen > 0 THEN amount_fen END), 0), coalesce(sum(amount_fen), 0), "
            "count(DISTINCT txn_id) FROM ledger_entries WHERE txn_id GLOB ?", [_glob_prefix(txn_prefix)]).fetchone()
        return int(credited), int(net), int(txns)


def _glob_prefix(prefix: str) -> str:
    """A GLOB pattern matching the ids that start with ``prefix`` (its own *, ? and [ taken literally)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in prefix) + "*"
