"""A region's double-entry ledger: accounts and their append-only entries.

Every transaction is two or more entries that sum to zero. A positive amount credits
the account (its balance rises), a negative one debits it. Holder accounts are the
cards' financial accounts (金融账户) and never go below zero nor above ¥1,000,000.00
(``sbcard.domain.limits``); internal accounts mirror
them: `CASH-<outlet>` at −¥100 means that outlet's till took in ¥100 now owed to
holders. A balance is the sum of the account's entries, never a stored number that
could drift from them.

Each transaction has a `txn_id` chosen by the caller (a subsidy record, a deposit slip):
posting it again does nothing and returns False, so a retried payment is never paid
twice; posting it again with different entries is refused as a bug.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlite_utils

from sbcard.domain.bank_account import BankAccount
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.limits import MAX_ACCOUNT_BALANCE_FEN, check_credit
from sbcard.domain.masking import mask_middle
from sbcard.domain.money import format_fen
from sbcard.store import rows
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import next_value
from sbcard.store.transaction import atomic
from sbcard.store.world import node_of_db

# Illustrative issuer BINs of the regions' card banks (not real BINs): 6 + 12 + Luhn = 19 digits.
BINS: dict[str, str] = {"bj": "621110", "tj": "621120", "he": "621130"}
ACCOUNT_SEQUENCE = "holder_account"
BODY_DIGITS = 12
INTERNAL_KINDS: tuple[str, ...] = ("cash", "fund", "purse_float", "clearing")
# Money that left the holder's account and comes back (a load the card never credited, a
# medical self-pay refunded): never refused for the account's maximum, or it would be stranded.
RETURNING_KINDS = frozenset({"purse_load_reversal", "medical_refund"})
MAX_ENTRY_FEN = 10**15  # no entry is anywhere near this (¥10 trillion): a bigger one is a bug, not money
FIELD = "CARD"

Entries = list[tuple[str, int]]


def cash_account(outlet: str) -> str:
    """The internal account of an outlet's till."""
    return f"CASH-{outlet}"


def open_holder_account(
    db: sqlite_utils.Database, *, citizen_id: str, card_number: str, node: str, now: datetime
) -> str:
    """Open the person's financial account on this card and return its 19-digit number.

    A person has one open account at a time: it follows them to a replacement card
    (`move_account`) rather than being opened again.
    """
    if node != node_of_db(db):
        raise SbcardError("ledger.wrong_node", f"accounts of {node} are not kept in {node_of_db(db)}'s ledger")
    with atomic(db):
        held = db.execute(
            "SELECT account_no FROM accounts WHERE citizen_id = ? AND status != 'closed'", [citizen_id]).fetchone()
        if held:
            raise RuleRefused("account.exists", f"the holder already has account {_shown(held[0])}", FIELD)
        number = next_value(db, ACCOUNT_SEQUENCE)
        if number >= 10**BODY_DIGITS:
            raise SbcardError("ledger.exhausted", f"{node}'s account numbers are used up")
        account_no = BankAccount.make(BINS[node], f"{number:0{BODY_DIGITS}d}").value
        db.execute(
            "INSERT INTO accounts (account_no, kind, citizen_id, card_number, status, opened_at, closed_at) "
            "VALUES (?, 'holder', ?, ?, 'active', ?, NULL)", [account_no, citizen_id, card_number, timestamp(now)])
    return account_no


def ensure_internal_account(db: sqlite_utils.Database, account_no: str, kind: str, now: datetime) -> str:
    """The internal account, opened on first use (`CASH-<outlet>`, `FUND-<item>`, `FLOAT-PURSE`, …)."""
    if kind not in INTERNAL_KINDS:
        raise SbcardError("ledger.kind", f"{kind!r} is not an internal account kind ({', '.join(INTERNAL_KINDS)})")
    if _kind_of(db, account_no, kind) is not None:  # opened long ago, as nearly always: nothing to write
        return account_no
    with atomic(db):
        if _kind_of(db, account_no, kind) is None:  # again, under the write lock
            db.execute(
                "INSERT INTO accounts (account_no, kind, citizen_id, card_number, status, opened_at, closed_at) "
                "VALUES (?, ?, NULL, NULL, 'active', ?, NULL)", [account_no, kind, timestamp(now)])
    return account_no


def _kind_of(db: sqlite_utils.Database, account_no: str, kind: str) -> str | None:
    """The account's kind (refused if it is not ``kind``), or None if there is no such account."""
    row = db.execute("SELECT kind FROM accounts WHERE account_no = ?", [account_no]).fetchone()
    if row is not None and row[0] != kind:
        raise SbcardError("ledger.kind", f"account {account_no} is a {row[0]} account, not {kind}")
    return row[0] if row else None


def post(
    db: sqlite_utils.Database,
    *,
    txn_id: str,
    entries: Entries,
    kind: str,
    operator: str,
    outlet: str | None = None,
    memo: str | None = None,
    now: datetime,
) -> bool:
    """Write one balanced transaction; False (and nothing written) if `txn_id` was posted before."""
    _check_balanced(txn_id, entries)
    with atomic(db):
        earlier = db.execute("SELECT account_no, amount_fen FROM ledger_entries WHERE txn_id = ?", [txn_id]).fetchall()
        if earlier:
            if Counter(earlier) != Counter(entries):
                raise InvalidInput("ledger.txn_conflict", f"transaction {txn_id} was posted before with other entries",
                                   "txn_id")
            return False
        net: Counter[str] = Counter()
        for account_no, amount in entries:
            net[account_no] += amount
        accounts = _accounts(db, list(net))
        for account_no, delta in net.items():
            _check_can_move(db, accounts.get(account_no), account_no, delta, capped=kind not in RETURNING_KINDS)
        at = timestamp(now)
        db.conn.executemany(
            "INSERT INTO ledger_entries (txn_id, account_no, amount_fen, kind, at, operator, outlet, memo) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(txn_id, account_no, amount, kind, at, operator, outlet, memo) for account_no, amount in entries])
    return True


def pay_in(
    db: sqlite_utils.Database, *, account_no: str, outlet: str, amount_fen: int, txn_id: str, operator: str,
    memo: str | None = None, now: datetime,
) -> bool:
    """Cash handed in at the outlet's counter, credited to the holder's account."""
    till = ensure_internal_account(db, cash_account(outlet), "cash", now)
    return post(db, txn_id=txn_id, entries=[(account_no, amount_fen), (till, -amount_fen)], kind="cash_deposit",
                operator=operator, outlet=outlet, memo=memo, now=now)


def pay_out(
    db: sqlite_utils.Database, *, account_no: str, outlet: str, amount_fen: int, txn_id: str, operator: str,
    memo: str | None = None, now: datetime,
) -> bool:
    """Cash paid out at the outlet's counter from the holder's account (never below zero)."""
    till = ensure_internal_account(db, cash_account(outlet), "cash", now)
    return post(db, txn_id=txn_id, entries=[(account_no, -amount_fen), (till, amount_fen)], kind="cash_withdrawal",
                operator=operator, outlet=outlet, memo=memo, now=now)


def balance(db: sqlite_utils.Database, account_no: str) -> int:
    """The account's balance in fen: the sum of its entries."""
    known, total = db.execute(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_no = ?), "
        "(SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = ?)",
        [account_no, account_no]).fetchone()
    if not known:
        raise NotFound("account.unknown", f"no account {account_no}", "--account")
    return int(total)


def _sum(db: sqlite_utils.Database, account_no: str) -> int:
    (total,) = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = ?",
                          [account_no]).fetchone()
    return int(total)


def entries(db: sqlite_utils.Database, account_no: str) -> list[dict[str, Any]]:
    """The account's entries, oldest first."""
    get_account(db, account_no)
    return list(db.query(
        "SELECT txn_id, at, kind, amount_fen, memo, operator, outlet FROM ledger_entries "
        "WHERE account_no = ? ORDER BY id", [account_no]))


def get_account(db: sqlite_utils.Database, account_no: str) -> dict[str, Any]:
    """The account's row; NotFound "account.unknown"."""
    row = rows.get(db, "accounts", "account_no", account_no)
    if row is None:
        raise NotFound("account.unknown", f"no account {account_no}", "--account")
    return row


def account_of_card(db: sqlite_utils.Database, card_number: str) -> str | None:
    """The number of the open financial account on this card, or None (not activated, moved, closed)."""
    row = db.execute(
        "SELECT account_no FROM accounts WHERE card_number = ? AND kind = 'holder' AND status != 'closed'",
        [card_number]).fetchone()
    return row[0] if row else None


def move_account(db: sqlite_utils.Database, *, from_card: str, to_card: str, now: datetime) -> str | None:
    """The holder's account follows them to the replacement card; returns it (None if there was none).

    The account number, its balance and its entries stay as they are: only the card
    it is reached through changes.
    """
    with atomic(db):
        account_no = account_of_card(db, from_card)
        if account_no is not None:
            db.execute("UPDATE accounts SET card_number = ? WHERE account_no = ?", [to_card, account_no])
    return account_no


def set_frozen(db: sqlite_utils.Database, account_no: str, *, frozen: bool, now: datetime) -> None:
    """Freeze (no entries either way) or unfreeze an open account; the caller records who and why."""
    with atomic(db):
        account = get_account(db, account_no)
        if account["status"] == "closed":
            raise RuleRefused("account.closed", f"account {_shown(account_no)} is closed", FIELD)
        db.execute("UPDATE accounts SET status = ? WHERE account_no = ?",
                   ["frozen" if frozen else "active", account_no])


def close_account(db: sqlite_utils.Database, account_no: str, now: datetime) -> None:
    """Close the account; only an empty one: its balance is paid out first."""
    with atomic(db):
        account = get_account(db, account_no)
        if account["status"] == "closed":
            raise RuleRefused("account.closed", f"account {_shown(account_no)} is already closed", FIELD)
        left = balance(db, account_no)
        if left:
            raise RuleRefused(
                "account.not_empty", f"account {_shown(account_no)} holds {format_fen(left)}: pay it out first", FIELD)
        db.execute("UPDATE accounts SET status = 'closed', closed_at = ? WHERE account_no = ?",
                   [timestamp(now), account_no])


def _check_balanced(txn_id: str, entries: Entries) -> None:
    if not isinstance(txn_id, str) or not txn_id.strip():
        raise InvalidInput("ledger.txn_id", "a transaction needs an id", "txn_id")
    if len(entries) < 2:
        raise SbcardError("ledger.unbalanced", f"transaction {txn_id} needs at least two entries")
    for account_no, amount in entries:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
            raise SbcardError("ledger.amount", f"transaction {txn_id}: {amount!r} is not a non-zero int of fen")
        if abs(amount) > MAX_ENTRY_FEN:
            raise SbcardError("ledger.amount", f"transaction {txn_id}: {amount} fen is beyond any entry's bound "
                              f"({MAX_ENTRY_FEN} fen)")
    total = sum(amount for _, amount in entries)
    if total:
        raise SbcardError("ledger.unbalanced", f"transaction {txn_id}'s entries sum to {total} fen, not 0")


def _accounts(db: sqlite_utils.Database, numbers: list[str]) -> dict[str, dict[str, Any]]:
    """The kind and status of each of these accounts that exists, in one query."""
    found = db.execute(f"SELECT account_no, kind, status FROM accounts WHERE account_no IN "
                       f"({', '.join('?' * len(numbers))})", numbers).fetchall()
    return {number: {"kind": kind, "status": status} for number, kind, status in found}


def _check_can_move(db: sqlite_utils.Database, account: dict[str, Any] | None, account_no: str, delta: int,
                    *, capped: bool = True) -> None:
    if account is None:
        raise NotFound("account.unknown", f"no account {account_no}", "--account")
    if account["status"] != "active":
        raise RuleRefused("account." + account["status"], f"account {_shown(account_no)} is {account['status']}",
                          FIELD)
    if account["kind"] == "holder" and delta < 0:
        left = _sum(db, account_no)
        if left + delta < 0:
            raise RuleRefused(
                "account.insufficient",
                f"account {_shown(account_no)} holds {format_fen(left)}, less than {format_fen(-delta)}", FIELD)
    if account["kind"] == "holder" and delta > 0 and capped:
        if delta > MAX_ACCOUNT_BALANCE_FEN:  # refused without a query
            check_credit(0, delta, FIELD, f"account {_shown(account_no)}")
        check_credit(_sum(db, account_no), delta, FIELD, f"account {_shown(account_no)}")


def _shown(account_no: str) -> str:
    """Holder account numbers masked in messages; internal ones are not personal."""
    return mask_middle(account_no, 6, 4) if account_no.isdigit() else account_no
