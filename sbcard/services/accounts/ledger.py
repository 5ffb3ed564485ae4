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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from sbcard.domain.bank_account import BankAccount
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.limits import MAX_ACCOUNT_BALANCE_FEN, check_credit
from sbcard.domain.masking import mask_middle
from sbcard.domain.money import format_fen
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.ledger import EntryRow, LedgerRepository
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
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


@dataclass(frozen=True, slots=True)
class Posting:
    """One balanced transaction of a batch given to `post_many`."""

    txn_id: str
    entries: Entries
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What the ledger holds about a batch's transactions and accounts, read inside the caller's transaction.

    A batch payment decides row by row on them (already posted? would the account pass
    its maximum?) and gives them back to `post_many`, which uses them instead of reading
    the same again while they are current: read inside a transaction that is still
    open, with no write on the connection since (``total_changes`` as it was). Otherwise
    `post_many` reads for itself, so stale facts can never let a wrong entry in.
    """

    posted: dict[str, Counter[tuple[str, int]]]  # txn_id → its entries, for each of the txn ids posted
    balances: dict[str, int]  # account → its balance, for each holder account asked about
    accounts: dict[str, tuple[str, str]]  # account → (kind, status), for the same accounts
    txn_ids: frozenset[str]  # the transactions asked about
    _read_at: int  # the connection's total_changes when read
    _connection: int  # id() of the connection read on

    def current(self, uow: UnitOfWork) -> bool:
        conn = uow.db.conn
        return conn.in_transaction and id(conn) == self._connection and conn.total_changes == self._read_at


def batch_facts(uow: UnitOfWork | sqlite_utils.Database, txn_ids: Sequence[str],
                account_nos: Sequence[str]) -> BatchFacts:
    """Which of ``txn_ids`` are posted (with their entries), and the kind and status of each of ``account_nos``
    with the balance of each holder account among them: two queries.

    Read it inside the transaction that will post the batch (see `BatchFacts`).
    """
    uow = _unit(uow)
    store = uow.get(LedgerRepository)
    conn = uow.db.conn
    read_at = conn.total_changes if conn.in_transaction else -1  # -1: never current
    found = store.accounts_with_totals(account_nos) if account_nos else {}
    return BatchFacts(posted=store.legs_of(txn_ids) if txn_ids else {},
                      balances={number: total for number, (_, _, total) in found.items() if total is not None},
                      accounts={number: (kind, status) for number, (kind, status, _) in found.items()},
                      txn_ids=frozenset(txn_ids), _read_at=read_at, _connection=id(conn))


def _unit(store: UnitOfWork | sqlite_utils.Database) -> UnitOfWork:
    """The unit of work the ledger runs in.

    The ledger's functions take the caller's unit of work. Callers not yet moved to the
    port (the cards' and transit's services, which still hold a raw database) may pass the
    database: it is wrapped in a unit of work of its own, whose ``step()`` is then exactly
    ``UnitOfWork(db).step()`` (a savepoint inside the caller's open transaction). Drop the
    database from the type once no caller passes one.
    """
    return store if isinstance(store, UnitOfWork) else UnitOfWork(store)


def cash_account(outlet: str) -> str:
    """The internal account of an outlet's till."""
    return f"CASH-{outlet}"


def open_holder_account(
    uow: UnitOfWork | sqlite_utils.Database, *, citizen_id: str, card_number: str, node: str, now: datetime
) -> str:
    """Open the person's financial account on this card and return its 19-digit number.

    A person has one open account at a time: it follows them to a replacement card
    (`move_account`) rather than being opened again.
    """
    uow = _unit(uow)
    if node != node_of_db(uow.db):
        raise SbcardError("ledger.wrong_node", f"accounts of {node} are not kept in {node_of_db(uow.db)}'s ledger")
    store = uow.get(LedgerRepository)
    with uow.step():
        held = store.open_account_of_citizen(citizen_id)
        if held:
            raise RuleRefused("account.exists", f"the holder already has account {_shown(held)}", FIELD)
        number = next_value(uow.db, ACCOUNT_SEQUENCE)
        if number >= 10**BODY_DIGITS:
            raise SbcardError("ledger.exhausted", f"{node}'s account numbers are used up")
        account_no = BankAccount.make(BINS[node], f"{number:0{BODY_DIGITS}d}").value
        store.insert_account(account_no, "holder", citizen_id=citizen_id, card_number=card_number,
                             opened_at=timestamp(now))
    return account_no


def ensure_internal_account(uow: UnitOfWork | sqlite_utils.Database, account_no: str, kind: str,
                            now: datetime) -> str:
    """The internal account, opened on first use (`CASH-<outlet>`, `FUND-<item>`, `FLOAT-PURSE`, …)."""
    if kind not in INTERNAL_KINDS:
        raise SbcardError("ledger.kind", f"{kind!r} is not an internal account kind ({', '.join(INTERNAL_KINDS)})")
    uow = _unit(uow)
    store = uow.get(LedgerRepository)
    if _kind_of(store, account_no, kind) is not None:  # opened long ago, as nearly always: nothing to write
        return account_no
    with uow.step():
        if _kind_of(store, account_no, kind) is None:  # again, under the write lock
            store.insert_account(account_no, kind, citizen_id=None, card_number=None, opened_at=timestamp(now))
    return account_no


def _kind_of(store: LedgerRepository, account_no: str, kind: str) -> str | None:
    """The account's kind (refused if it is not ``kind``), or None if there is no such account."""
    found = store.kind_of(account_no)
    if found is not None and found != kind:
        raise SbcardError("ledger.kind", f"account {account_no} is a {found} account, not {kind}")
    return found


def post(
    uow: UnitOfWork | sqlite_utils.Database,
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
    uow = _unit(uow)
    store = uow.get(LedgerRepository)
    with uow.step():
        earlier = store.legs(txn_id)
        if earlier:
            if Counter(earlier) != Counter(entries):
                raise _conflict(txn_id)
            return False
        net: Counter[str] = Counter()
        for account_no, amount in entries:
            net[account_no] += amount
        accounts = store.kinds_and_statuses(list(net))
        for account_no, delta in net.items():
            _check_can_move(store, accounts.get(account_no), account_no, delta, capped=kind not in RETURNING_KINDS)
        at = timestamp(now)
        store.insert_entries(
            [(txn_id, account_no, amount, kind, at, operator, outlet, memo) for account_no, amount in entries])
    return True


def post_many(
    uow: UnitOfWork | sqlite_utils.Database,
    postings: Sequence[Posting],
    *,
    kind: str,
    operator: str,
    outlet: str | None = None,
    now: datetime,
    facts: BatchFacts | None = None,
) -> list[str]:
    """Write many balanced transactions of one kind together, all or none; the ids of those written.

    Each is `post`'s transaction, checked the same way: one posted before with the same
    entries is not written again (and not in the returned ids), one posted before with
    other entries refuses them all. The checks are made for all of them at once (one
    look-up of earlier postings, of the accounts and of the holders' balances, and one
    insert), so a batch payment of thousands of rows costs a few statements, not thousands;
    the accounts' bounds are checked on each account's net movement over the batch.
    ``facts`` (from `batch_facts`, read in the same transaction) spare the look-ups of
    earlier postings and of balances they cover, while they are current.

    Alone it is a step of its own (``uow.step()``). Inside a transaction already open it
    takes no savepoint, unlike the ledger's other writes: every check comes before its one
    write, so a refused batch has written nothing, and a savepoint around thousands of
    entries made each chunk of ``subsidy pay`` cost half as much again (SQLite journals
    every page the savepoint changes). Should that write itself fail (a full disk), the
    caller's transaction is the one to roll back, as ``pay``'s chunk does on any error.
    """
    txn_ids = [posting.txn_id for posting in postings]
    if len(set(txn_ids)) != len(txn_ids):
        twice = next(txn for txn, n in Counter(txn_ids).items() if n > 1)
        raise SbcardError("ledger.txn_twice", f"transaction {twice} is given twice in one batch")
    for posting in postings:
        entries = posting.entries
        if len(entries) == 2:  # the common shape, checked at once (the general check gives any refusal)
            (_, first), (_, second) = entries
            if type(first) is int and type(second) is int and first == -second and 0 < abs(first) <= MAX_ENTRY_FEN \
                    and type(posting.txn_id) is str and posting.txn_id.strip():
                continue
        _check_balanced(posting.txn_id, entries)
    if not postings:
        return []
    uow = _unit(uow)
    if uow.db.conn.in_transaction:
        return _post_many(uow, postings, txn_ids, kind=kind, operator=operator, outlet=outlet, now=now, facts=facts)
    with uow.step():
        return _post_many(uow, postings, txn_ids, kind=kind, operator=operator, outlet=outlet, now=now, facts=facts)


def _post_many(uow: UnitOfWork, postings: Sequence[Posting], txn_ids: list[str], *, kind: str, operator: str,
               outlet: str | None, now: datetime, facts: BatchFacts | None) -> list[str]:
    """`post_many`'s checks, then its one write, inside the transaction already open."""
    store = uow.get(LedgerRepository)
    known = facts if facts is not None and facts.current(uow) else None
    if known is not None and known.txn_ids.issuperset(txn_ids):
        earlier = known.posted
    else:
        earlier = store.legs_of(txn_ids)
    at = timestamp(now)
    written: list[str] = []
    rows: list[EntryRow] = []
    net: dict[str, int] = {}
    for posting in postings:  # one pass: the new ones' rows, and each account's net movement over them
        txn_id, memo = posting.txn_id, posting.memo
        before = earlier.get(txn_id)
        if before is not None:
            if before != Counter(posting.entries):
                raise _conflict(txn_id)
            continue
        written.append(txn_id)
        for account_no, amount in posting.entries:
            net[account_no] = net.get(account_no, 0) + amount
            rows.append((txn_id, account_no, amount, kind, at, operator, outlet, memo))
    if not written:
        return []
    if known is not None:  # the accounts the facts cover are as they were read; the others are looked up
        accounts, held = known.accounts, known.balances
        others = [number for number in net if number not in accounts]
        if others:
            found = store.kinds_and_statuses(others)
            accounts = {**accounts, **found}
            holders = [number for number, (account_kind, _) in found.items() if account_kind == "holder"]
            if holders:
                held = {**held, **store.totals(holders)}
    else:
        accounts = store.kinds_and_statuses(list(net))
        holders = [number for number, found in accounts.items() if found[0] == "holder"]
        held = store.totals(holders) if holders else {}
    capped = kind not in RETURNING_KINDS
    for account_no, delta in net.items():
        _check_can_move(store, accounts.get(account_no), account_no, delta, capped=capped,
                        held=held.get(account_no, 0))
    store.insert_entries(rows)
    return written


def _conflict(txn_id: str) -> InvalidInput:
    return InvalidInput("ledger.txn_conflict", f"transaction {txn_id} was posted before with other entries", "txn_id")


def pay_in(
    uow: UnitOfWork | sqlite_utils.Database, *, account_no: str, outlet: str, amount_fen: int, txn_id: str,
    operator: str, memo: str | None = None, now: datetime,
) -> bool:
    """Cash handed in at the outlet's counter, credited to the holder's account."""
    uow = _unit(uow)
    till = ensure_internal_account(uow, cash_account(outlet), "cash", now)
    return post(uow, txn_id=txn_id, entries=[(account_no, amount_fen), (till, -amount_fen)], kind="cash_deposit",
                operator=operator, outlet=outlet, memo=memo, now=now)


def pay_out(
    uow: UnitOfWork | sqlite_utils.Database, *, account_no: str, outlet: str, amount_fen: int, txn_id: str,
    operator: str, memo: str | None = None, now: datetime,
) -> bool:
    """Cash paid out at the outlet's counter from the holder's account (never below zero)."""
    uow = _unit(uow)
    till = ensure_internal_account(uow, cash_account(outlet), "cash", now)
    return post(uow, txn_id=txn_id, entries=[(account_no, -amount_fen), (till, amount_fen)], kind="cash_withdrawal",
                operator=operator, outlet=outlet, memo=memo, now=now)


def balance(uow: UnitOfWork | sqlite_utils.Database, account_no: str) -> int:
    """The account's balance in fen: the sum of its entries."""
    known, total = _unit(uow).get(LedgerRepository).known_and_total(account_no)
    if not known:
        raise NotFound("account.unknown", f"no account {account_no}", "--account")
    return total


def balances(uow: UnitOfWork | sqlite_utils.Database, account_nos: Sequence[str]) -> dict[str, int]:
    """The balance of each of these accounts that has entries, in one query (an account without is left out)."""
    if not account_nos:
        return {}
    return _unit(uow).get(LedgerRepository).totals(account_nos)


def entries(uow: UnitOfWork | sqlite_utils.Database, account_no: str) -> list[dict[str, Any]]:
    """The account's entries, oldest first."""
    uow = _unit(uow)
    get_account(uow, account_no)
    return uow.get(LedgerRepository).entries(account_no)


def legs(uow: UnitOfWork | sqlite_utils.Database, txn_id: str) -> list[tuple[str, int]]:
    """(account, amount in fen) of each entry of the transaction, in the order posted; [] if it was never posted."""
    return _unit(uow).get(LedgerRepository).legs(txn_id)


def posted(uow: UnitOfWork | sqlite_utils.Database, txn_ids: Sequence[str]) -> dict[str, Counter[tuple[str, int]]]:
    """The entries of each of these transactions that was posted, as (account, amount) counts, in one query."""
    if not txn_ids:
        return {}
    return _unit(uow).get(LedgerRepository).legs_of(txn_ids)


def is_posted(uow: UnitOfWork | sqlite_utils.Database, txn_id: str) -> bool:
    """Whether a transaction of this id is in the ledger."""
    return _unit(uow).get(LedgerRepository).is_posted(txn_id)


def totals_of_txns(uow: UnitOfWork | sqlite_utils.Database, txn_prefix: str) -> tuple[int, int, int]:
    """(sum of credits, net sum, number of transactions) of the transactions whose id starts with ``txn_prefix``."""
    return _unit(uow).get(LedgerRepository).txn_totals(txn_prefix)


def get_account(uow: UnitOfWork | sqlite_utils.Database, account_no: str) -> dict[str, Any]:
    """The account's row; NotFound "account.unknown"."""
    row = _unit(uow).get(LedgerRepository).account(account_no)
    if row is None:
        raise NotFound("account.unknown", f"no account {account_no}", "--account")
    return row


def account_of_card(uow: UnitOfWork | sqlite_utils.Database, card_number: str) -> str | None:
    """The number of the open financial account on this card, or None (not activated, moved, closed)."""
    return _unit(uow).get(LedgerRepository).open_account_of_card(card_number)


def open_account_of(uow: UnitOfWork | sqlite_utils.Database, citizen_id: str) -> str | None:
    """The number of the person's open financial account (it follows them from card to card), or None."""
    return _unit(uow).get(LedgerRepository).open_account_of_citizen(citizen_id)


def latest_account_of_card(uow: UnitOfWork | sqlite_utils.Database, card_number: str) -> dict[str, Any] | None:
    """The holder account reached through this card: the open one, else the last closed one; None if none."""
    return _unit(uow).get(LedgerRepository).latest_account_of_card(card_number)


def replacement_of(uow: UnitOfWork | sqlite_utils.Database, card_number: str) -> str | None:
    """The card that replaced this one (the account moved to it), or None."""
    return _unit(uow).get(LedgerRepository).replacement_of(card_number)


def move_account(uow: UnitOfWork | sqlite_utils.Database, *, from_card: str, to_card: str,
                 now: datetime) -> str | None:
    """The holder's account follows them to the replacement card; returns it (None if there was none).

    The account number, its balance and its entries stay as they are: only the card
    it is reached through changes.
    """
    uow = _unit(uow)
    store = uow.get(LedgerRepository)
    with uow.step():
        account_no = store.open_account_of_card(from_card)
        if account_no is not None:
            store.set_card(account_no, to_card)
    return account_no


def set_frozen(uow: UnitOfWork | sqlite_utils.Database, account_no: str, *, frozen: bool, now: datetime) -> None:
    """Freeze (no entries either way) or unfreeze an open account; the caller records who and why."""
    uow = _unit(uow)
    with uow.step():
        account = get_account(uow, account_no)
        if account["status"] == "closed":
            raise RuleRefused("account.closed", f"account {_shown(account_no)} is closed", FIELD)
        uow.get(LedgerRepository).set_status(account_no, "frozen" if frozen else "active")


def close_account(uow: UnitOfWork | sqlite_utils.Database, account_no: str, now: datetime) -> None:
    """Close the account; only an empty one: its balance is paid out first."""
    uow = _unit(uow)
    with uow.step():
        account = get_account(uow, account_no)
        if account["status"] == "closed":
            raise RuleRefused("account.closed", f"account {_shown(account_no)} is already closed", FIELD)
        left = balance(uow, account_no)
        if left:
            raise RuleRefused(
                "account.not_empty", f"account {_shown(account_no)} holds {format_fen(left)}: pay it out first", FIELD)
        uow.get(LedgerRepository).close(account_no, timestamp(now))


def _check_balanced(txn_id: str, entries: Entries) -> None:
    if not isinstance(txn_id, str) or not txn_id.strip():
        raise InvalidInput("ledger.txn_id", "a transaction needs an id", "txn_id")
    if len(entries) < 2:
        raise SbcardError("ledger.unbalanced", f"transaction {txn_id} needs at least two entries")
    for account_no, amount in entries:
        if type(amount) is not int and (not isinstance(amount, int) or isinstance(amount, bool)) or amount == 0:
            raise SbcardError("ledger.amount", f"transaction {txn_id}: {amount!r} is not a non-zero int of fen")
        if abs(amount) > MAX_ENTRY_FEN:
            raise SbcardError("ledger.amount", f"transaction {txn_id}: {amount} fen is beyond any entry's bound "
                              f"({MAX_ENTRY_FEN} fen)")
    total = sum(amount for _, amount in entries)
    if total:
        raise SbcardError("ledger.unbalanced", f"transaction {txn_id}'s entries sum to {total} fen, not 0")


def _check_can_move(store: LedgerRepository, account: tuple[str, str] | None, account_no: str, delta: int,
                    *, capped: bool = True, held: int | None = None) -> None:
    """The account (its kind and status) may move by ``delta``; ``held``: its balance if already known."""
    if account is None:
        raise NotFound("account.unknown", f"no account {account_no}", "--account")
    kind, status = account
    if status != "active":
        raise RuleRefused("account." + status, f"account {_shown(account_no)} is {status}", FIELD)
    if kind == "holder" and delta < 0:
        left = store.total(account_no) if held is None else held
        if left + delta < 0:
            raise RuleRefused(
                "account.insufficient",
                f"account {_shown(account_no)} holds {format_fen(left)}, less than {format_fen(-delta)}", FIELD)
    if kind == "holder" and delta > 0 and capped:
        if delta > MAX_ACCOUNT_BALANCE_FEN:  # refused without a query
            check_credit(0, delta, FIELD, f"account {_shown(account_no)}")
        left = store.total(account_no) if held is None else held
        if left + delta > MAX_ACCOUNT_BALANCE_FEN:  # check_credit refuses it, naming the account
            check_credit(left, delta, FIELD, f"account {_shown(account_no)}")


def _shown(account_no: str) -> str:
    """Holder account numbers masked in messages; internal ones are not personal."""
    return mask_middle(account_no, 6, 4) if account_no.isdigit() else account_no
