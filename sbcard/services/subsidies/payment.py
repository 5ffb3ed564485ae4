"""Approving, paying and reversing subsidy batches (惠民惠农“一卡通”), each payment exactly once.

Maker–checker: the finance operator who imported a batch (the maker) cannot approve it;
a second known operator of the batch's region, finance or supervisor, approves or
rejects it (``approve``, ``reject``). The database refuses a checker equal to the maker
as well.

Paying (``pay``) walks the batch's valid rows in ``seq`` order, a chunk at a time. Each
chunk is one transaction: the rows are checked again against the card and account as
they are *now* (a card reported lost since the import, an account frozen: the row
fails with its reason, and the money stays in the fund), then each payable row becomes
one balanced ledger transaction ``SUB-<batch>-<seq>`` (``FUND-<item>`` −amount, the
holder's account +amount, kind ``subsidy``) and the row is marked ``paid`` with that
transaction id, the batch's counters move, and everything commits together.

Exactly once, however often ``pay`` is killed and run again:

1. A row's ledger entries and its ``paid`` mark commit in the same transaction, so
   after any kill a row is either paid with its entries or valid without them; the next
   run picks up the valid rows and nothing else.
2. The transaction id is derived from the row (``SUB-<batch>-<seq>``): if entries for it
   exist already (from whatever cause), they are not posted again; entries that differ
   stop the payment as an inconsistency to investigate.
3. The database itself refuses a second ``paid`` row for the same person, item and
   period (a partial unique index), across batches.

Two ``pay`` on the same batch at once: the first takes the batch's lease (a row of
``subsidy_pay_leases`` naming its host, process and start); the second sees it — first
without asking for the write lock, which the first holds most of the time — and is
refused, naming them (the CLI can ``--wait`` for it instead). A lease whose process is
gone (kill -9, power cut) is taken over by the next ``pay`` on that machine, which says
so. Every chunk checks that its run still holds the lease before writing, so even a
forced take-over (``take_over=True``, for a payer on another machine that is gone)
cannot make two runs pay the same rows; and each chunk re-reads its rows under SQLite's
write lock (BEGIN IMMEDIATE), so the rows it pays are ones no one else has paid. Between
chunks the lock is left free for a moment, so the region's other writers (deposits at a
counter, issuance) are not shut out while a large batch is paid.

A batch's counters add up: once paid, paid + failed = rows and paid_fen + failed_fen =
the declared total (the rows invalid at import count as failed), checked against the
rows and the ledger before the batch is marked paid (and by CHECK constraints).

``reverse`` undoes one payment made in error with a new ledger transaction
``SUBREV-<batch>-<seq>`` (the holder's account −amount, the fund +amount), never an edit;
it is refused when the holder's balance no longer covers it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlite_utils

from sbcard.domain import subsidies as S
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.lifecycle import CardState
from sbcard.domain.limits import MAX_ACCOUNT_BALANCE_FEN
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.money import format_fen
from sbcard.services.outlets import audit
from sbcard.services.accounts import ledger
from sbcard.services.subsidies import batch_import as subsidy_import
from sbcard.services.outlets.operators import require_operator
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import World

FIELD = "BATCH"
CHECKER_ROLES = frozenset({"finance", "supervisor"})
PAYER = "system"  # who posts the payments when no operator is named
KIND_PAY = "subsidy"
KIND_REVERSAL = "subsidy_reversal"
DEFAULT_CHUNK = 1000
MAX_CHUNK = 10_000  # a chunk's look-ups bind one parameter per row: well under SQLite's limit
# Between chunks pay leaves the region's write lock free for a moment, so that the
# counters' deposits, issuance and other writers get in while a large batch is paid
# (a writer waits up to 5 s for the lock; SQLite's waiting is not first come, first served).
PAUSE_BETWEEN_CHUNKS = 0.002
_LOWEST_SEQ = -(2**63)

Progress = Callable[[int, int], None]  # (rows settled so far in this run, rows to settle at the start)
Fault = Callable[[str, int], None]  # (point, chunk number): a test hook, see `pay`


def payment_txn_id(batch_id: str, seq: int) -> str:
    return f"SUB-{batch_id}-{seq}"


def reversal_txn_id(batch_id: str, seq: int) -> str:
    return f"SUBREV-{batch_id}-{seq}"


class PayInProgress(RuleRefused):
    """Another ``pay`` holds the batch's lease (exit 1); ``holder`` says who."""

    def __init__(self, batch_id: str, holder: dict[str, Any], alive: bool | None) -> None:
        where = f"process {holder['pid']} on {holder['host']}"
        since = f"since {holder['started_at']}, {holder['chunks']} chunk(s) committed so far"
        if alive is None:
            advice = ("if that machine's pay is gone, run again with --take-over (it is safe: a payer that has lost "
                      "the lease stops before its next chunk)")
        else:
            advice = "wait for it to finish (--wait SECONDS), then run again to see the result"
        super().__init__("subsidy.pay_in_progress", f"batch {batch_id} is being paid by {where} ({since}); {advice}",
                         FIELD)
        self.holder = holder


class LeaseLost(SbcardError):
    """This run's lease was taken over (``--take-over`` elsewhere): it stops before writing anything more."""

    def __init__(self, batch_id: str) -> None:
        super().__init__("subsidy.lease_lost", f"batch {batch_id}: another pay took over this run's lease; this run "
                                               "stopped before its next chunk (everything it committed stays paid)")


# ----------------------------------------------------------------------------- finding a batch


def locate(world: World, batch_id: str) -> tuple[sqlite_utils.Database, str]:
    """(region database, batch id as stored) of the batch, found as ``subsidy show`` finds it."""
    _, db, row = subsidy_import.locate(world, batch_id)
    return db, row["id"]


def _batch(db: sqlite_utils.Database, batch_id: str) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM subsidy_batches WHERE id = ?", [batch_id]))
    if not rows:
        raise NotFound("subsidy.unknown_batch", f"no subsidy batch {batch_id}", FIELD)
    return rows[0]


# ----------------------------------------------------------------------------- maker–checker


def approve(world: World, batch: str, *, operator: str, now: datetime) -> dict[str, Any]:
    """The checker approves an imported batch for payment; returns the batch's header."""
    db, batch_id = locate(world, batch)
    with UnitOfWork(db) as uow:
        row = _batch(uow.db, batch_id)
        checker = _checker(uow.db, operator, row, "approve")
        _require_imported(row, "approved")
        _check_header(uow.db, row)
        at = timestamp(now)
        uow.db.execute("UPDATE subsidy_batches SET status = 'approved', checker = ?, approved_at = ? WHERE id = ?",
                       [checker, at, row["id"]])
        audit.record(uow.db, at=now, operator=checker, action="subsidy.approve", subject=row["id"],
                     details={"maker": row["maker"], "rows": row["rows"], "valid": row["valid"],
                              "valid_total_fen": row["valid_total_fen"]})
        result = _header(_batch(uow.db, row["id"]))
        uow.commit()
    return result


def reject(world: World, batch: str, *, operator: str, reason: str, now: datetime) -> dict[str, Any]:
    """The checker sends an imported batch back with a reason; it can never be paid."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("subsidy.reason", "a rejection needs a reason the maker can act on", "--reason")
    db, batch_id = locate(world, batch)
    with UnitOfWork(db) as uow:
        row = _batch(uow.db, batch_id)
        checker = _checker(uow.db, operator, row, "reject")
        _require_imported(row, "rejected")
        uow.db.execute("UPDATE subsidy_batches SET status = 'rejected', checker = ?, approved_at = ?, "
                       "reject_reason = ? WHERE id = ?", [checker, timestamp(now), reason, row["id"]])
        audit.record(uow.db, at=now, operator=checker, action="subsidy.reject", subject=row["id"], reason=reason,
                     details={"maker": row["maker"], "rows": row["rows"]})
        result = _header(_batch(uow.db, row["id"]))
        uow.commit()
    return result


def _checker(db: sqlite_utils.Database, operator: str, batch: dict[str, Any], verb: str) -> str:
    staff = require_operator(db, operator, roles=set(CHECKER_ROLES))
    if staff["code"] == batch["maker"]:
        raise RuleRefused("subsidy.maker_checker",
                          f"operator {staff['code']} imported batch {batch['id']} and cannot also {verb} it: "
                          "a second operator (finance or supervisor) must check it", "--operator")
    return staff["code"]


def _require_imported(batch: dict[str, Any], becoming: str) -> None:
    status = batch["status"]
    if status == "imported":
        return
    if status == "rejected":
        said = f"was rejected by {batch['checker']} at {batch['approved_at']}: {batch['reject_reason']}"
    elif status == "approved":
        said = f"was already approved by {batch['checker']} at {batch['approved_at']}"
    else:
        said = f"is {status} (approved by {batch['checker']} at {batch['approved_at']})"
    raise RuleRefused(f"subsidy.{status}", f"batch {batch['id']} {said}; only an imported batch can be {becoming}",
                      FIELD)


def _check_header(db: sqlite_utils.Database, batch: dict[str, Any]) -> None:
    """The header agrees with the rows (counts, valid total, declared total) before anyone pays on it."""
    counts = _row_totals(db, batch["id"])
    rows = sum(n for n, _ in counts.values())
    total = sum(fen for _, fen in counts.values())
    valid, valid_fen = counts.get("valid", (0, 0))
    found = (rows, valid, valid_fen, total)
    header = (batch["rows"], batch["valid"], batch["valid_total_fen"], batch["declared_total_fen"])
    if found != header:
        raise SbcardError("subsidy.header_mismatch",
                          f"batch {batch['id']}: its header says rows, valid, valid total, declared total = {header}, "
                          f"its rows say {found}; nothing approved")


# ----------------------------------------------------------------------------- paying


def pay(
    world: World,
    batch: str,
    *,
    now: datetime,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    operator: str | None = None,
    take_over: bool = False,
    fault: Fault | None = None,
    runner: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Pay every valid row of an approved batch, exactly once; resumable after any interruption.

    Returns the batch's summary (``summary``) with ``already`` (the batch was paid before
    this run: nothing done), ``resumed`` (this run continued an interrupted one),
    ``took_over`` and ``this_run`` (what this run paid and failed). ``operator``
    (optional: a finance or supervisor operator of the region) is recorded on the
    entries and in the audit log; without it the payer is ``system``.
    ``fault(point, chunk_no)`` is called at ``lease_taken`` and at ``before_commit`` and
    ``after_commit`` of each chunk, the closing one included (tests kill the process there).
    ``runner`` (host, pid): who the lease and the audit log say runs the pay — by default
    this machine and process; the simulator gives a fixed one, so that a seeded world
    records the same every time.
    """
    if not isinstance(chunk, int) or not 1 <= chunk <= MAX_CHUNK:
        raise InvalidInput("subsidy.chunk", f"a chunk is 1 to {MAX_CHUNK:,} rows, got {chunk!r}", "--chunk")
    db, batch_id = locate(world, batch)
    payer = PAYER
    if operator:
        payer = require_operator(db, operator, roles=set(CHECKER_ROLES))["code"]
    at = timestamp(now)

    # First without the write lock (a running pay holds it most of the time): a paid
    # batch, or one another live pay holds, is answered at once.
    if _payable(db, batch_id, take_over) is None:
        return _already(db, batch_id)
    # Then look again, take the lease (and move approved → paying) in one write transaction.
    with _transaction(db):
        row = _payable(db, batch_id, take_over)
        if row is None:
            return _already(db, batch_id)
        funds = _funds(db, batch_id, now)
        lease, took_over = _take_lease(db, batch_id, at, take_over, runner)
        resumed = row["status"] == "paying"
        if row["status"] == "approved":
            invalid_count, invalid_fen = _row_totals(db, batch_id).get("invalid", (0, 0))
            db.execute("UPDATE subsidy_batches SET status = 'paying', failed_count = ?, failed_fen = ? WHERE id = ?",
                       [invalid_count, invalid_fen, batch_id])
        audit.record(db, at=now, operator=payer, action="subsidy.pay_started" if not resumed else "subsidy.pay_resumed",
                     subject=batch_id, details={"took_over": took_over, "pid": lease["pid"], "host": lease["host"]})
        to_settle = _row_totals(db, batch_id).get("valid", (0, 0))[0]
    run = _run_totals()
    try:
        _fire(fault, "lease_taken", 0)
        cursor, chunk_no = _LOWEST_SEQ, 0
        while True:
            chunk_no += 1
            with _transaction(db):
                _hold_lease(db, batch_id, lease)
                rows = db.execute(
                    "SELECT seq, citizen_id, card_number, item, period, amount_fen, note, rowid FROM subsidy_rows "
                    "WHERE batch_id = ? AND status = 'valid' AND seq > ? ORDER BY seq LIMIT ?",
                    [batch_id, cursor, chunk]).fetchall()
                if rows:
                    done = _pay_chunk(db, batch_id, rows, funds, payer=payer, at=at, now=now)
                    for key in ("paid", "paid_fen", "failed", "failed_fen"):
                        run[key] += done[key]
                else:  # the closing transaction: counters checked, batch paid, lease returned
                    _finish(db, batch_id, payer, now, run)
                _fire(fault, "before_commit", chunk_no)
            _fire(fault, "after_commit", chunk_no)
            if not rows:
                break
            cursor = rows[-1][0]
            if progress is not None:
                progress(run["paid"] + run["failed"], to_settle)
            time.sleep(PAUSE_BETWEEN_CHUNKS)
    except BaseException:
        _release_quietly(db, batch_id, lease)
        raise
    return {**summary(db, batch_id), "already": False, "resumed": resumed, "took_over": took_over,
            "this_run": run}


def _payable(db: sqlite_utils.Database, batch_id: str, take_over: bool) -> dict[str, Any] | None:
    """The batch if this run may pay it, None if it is paid already; refuses an unapproved, rejected or held one."""
    row = _batch(db, batch_id)
    if row["status"] == "paid":
        return None
    if row["status"] == "imported":
        raise RuleRefused("subsidy.not_approved",
                          f"batch {batch_id} is not approved yet: a second operator must check it first "
                          f"(`sbcard subsidy approve {batch_id} --operator CODE`)", FIELD)
    if row["status"] == "rejected":
        raise RuleRefused("subsidy.rejected", f"batch {batch_id} was rejected by {row['checker']} at "
                                              f"{row['approved_at']} ({row['reject_reason']}): it is never paid", FIELD)
    held = list(db.query("SELECT * FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id]))
    if held and not take_over:
        alive = _holder_alive(held[0], {"host": socket.gethostname(), "pid": os.getpid()})
        if alive is not False:
            raise PayInProgress(batch_id, held[0], alive)
    return row


def _already(db: sqlite_utils.Database, batch_id: str) -> dict[str, Any]:
    return {**summary(db, batch_id), "already": True, "resumed": False, "took_over": None, "this_run": _run_totals()}


def _run_totals() -> dict[str, int]:
    return {"paid": 0, "paid_fen": 0, "failed": 0, "failed_fen": 0}


def _fire(fault: Fault | None, point: str, chunk_no: int) -> None:
    if fault is not None:
        fault(point, chunk_no)


@contextmanager
def _transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """One chunk's transaction: BEGIN IMMEDIATE … COMMIT, rolled back by any exception (Ctrl-C included).

    Not a ``UnitOfWork``: its ``commit()`` takes the write lock again at once, which a
    long payment must not do between chunks (other writers of the region get in there).
    """
    if db.conn.in_transaction:
        raise SbcardError("store.nested_transaction", "pay runs its own transactions; call it outside any other")
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def _funds(db: sqlite_utils.Database, batch_id: str, now: datetime) -> dict[str, str]:
    """item code → its fund account, for every item the batch still has to pay; each fund open and active."""
    items = [r[0] for r in db.execute(
        "SELECT DISTINCT item FROM subsidy_rows WHERE batch_id = ? AND status = 'valid'", [batch_id])]
    catalogue = {r["code"]: r for r in db.query("SELECT code, fund_account FROM subsidy_items")}
    funds: dict[str, str] = {}
    for item in items:
        entry = catalogue.get(item)
        if entry is None:
            continue  # its rows fail as unknown_item
        account = ledger.ensure_internal_account(db, entry["fund_account"], "fund", now)
        status = ledger.get_account(db, account)["status"]
        if status != "active":
            raise RuleRefused("subsidy.fund_" + status, f"the fund account {account} of item {item} is {status}: "
                                                       f"nothing of batch {batch_id} was paid", FIELD)
        funds[item] = account
    return funds


# --- the lease -------------------------------------------------------------------------


def _take_lease(db: sqlite_utils.Database, batch_id: str, at: str, take_over: bool,
                runner: tuple[str, int] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    host, pid = runner if runner is not None else (socket.gethostname(), os.getpid())
    mine = {"batch_id": batch_id, "token": uuid.uuid4().hex, "host": host, "pid": pid,
            "started_at": at, "chunks": 0}
    held = list(db.query("SELECT * FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id]))
    took_over = None
    if held:
        holder = held[0]
        alive = _holder_alive(holder, mine)
        if alive is not False and not take_over:
            raise PayInProgress(batch_id, holder, alive)
        took_over = {"pid": holder["pid"], "host": holder["host"], "started_at": holder["started_at"],
                     "chunks": holder["chunks"], "forced": alive is not False}
        db.execute("DELETE FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id])
    db["subsidy_pay_leases"].insert(mine)
    return mine, took_over


def _holder_alive(holder: dict[str, Any], me: dict[str, Any]) -> bool | None:
    """Whether the lease's process still runs: True, False, or None when it is on another machine."""
    if holder["host"] != me["host"]:
        return None
    pid = holder["pid"]
    if pid == me["pid"]:
        return False  # left behind by an earlier call in this very process
    return _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:  # a killed process its parent has not reaped yet is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _hold_lease(db: sqlite_utils.Database, batch_id: str, lease: dict[str, Any]) -> None:
    """Inside the chunk's transaction: this run still holds the lease (and says it made progress)."""
    cur = db.execute("UPDATE subsidy_pay_leases SET chunks = chunks + 1 WHERE batch_id = ? AND token = ?",
                     [batch_id, lease["token"]])
    if cur.rowcount != 1:
        raise LeaseLost(batch_id)


def _release_quietly(db: sqlite_utils.Database, batch_id: str, lease: dict[str, Any]) -> None:
    """After an interruption: give the lease back if still ours (a kill -9 leaves it: the next pay sees that)."""
    try:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        with _transaction(db):
            db.execute("DELETE FROM subsidy_pay_leases WHERE batch_id = ? AND token = ?", [batch_id, lease["token"]])
    except Exception:  # noqa: BLE001 - the interruption being reported matters more; the lease is detectably stale
        pass


# --- one chunk -------------------------------------------------------------------------


def _pay_chunk(db: sqlite_utils.Database, batch_id: str, rows: list[tuple], funds: dict[str, str], *,
               payer: str, at: str, now: datetime) -> dict[str, int]:
    """Check each row against the card and account as they are now, post the payable ones, mark every row.

    Four look-ups per chunk, not per row: the persons' cards, their open accounts, what
    is already paid to them, and whether any of the chunk's transactions is in the ledger.
    """
    cids = list({r[1] for r in rows})
    txns = [payment_txn_id(batch_id, r[0]) for r in rows]
    cards = _cards_of(db, cids)
    accounts = _open_accounts_of(db, cids)
    paid_before = _paid_keys(db, cids)
    posted = _posted(db, txns)
    balances = _balances(db, [a[0] for a in accounts.values()])

    entries: list[tuple] = []
    paid_rows: list[tuple] = []
    failed_rows: list[tuple] = []
    paid = paid_fen = failed = failed_fen = 0
    for (seq, cid, named, item, period, amount, note, rowid), txn in zip(rows, txns):
        key = (cid, item, period)
        fund = funds.get(item)
        if key in paid_before:
            other_batch, other_seq = paid_before[key]
            target, reason = None, (S.Reason.ALREADY_PAID, f"{item} {period} was already paid to this person in "
                                                           f"batch {other_batch} (row {other_seq})")
        elif fund is None:
            target, reason = None, (S.Reason.UNKNOWN_ITEM, f"{item!r} is no longer in the subsidy catalogue")
        else:
            target, reason = _target(cid, named, cards.get(cid), accounts.get(cid), now)
        if target is None:
            failed_rows.append((reason[0].value, reason[1], rowid))
            failed += 1
            failed_fen += amount
            continue
        account_no, card_no, pay_note = target
        if txn not in posted and balances.get(account_no, 0) + amount > MAX_ACCOUNT_BALANCE_FEN:
            failed_rows.append((S.Reason.ACCOUNT_MAX_BALANCE.value,
                                f"at pay time: the account holds {format_fen(balances.get(account_no, 0))}; "
                                f"{format_fen(amount)} more would pass a financial account's maximum of "
                                f"{format_fen(MAX_ACCOUNT_BALANCE_FEN)}", rowid))
            failed += 1
            failed_fen += amount
            continue
        if txn in posted:
            if posted[txn] != Counter([(fund, -amount), (account_no, amount)]):
                raise SbcardError("subsidy.txn_conflict",
                                  f"transaction {txn} is in the ledger with other entries than row {seq} of batch "
                                  f"{batch_id} would post; nothing of this chunk was paid: investigate before "
                                  "paying on")
        else:
            balances[account_no] = balances.get(account_no, 0) + amount
            memo = f"{item} {period}"
            entries.append((txn, fund, -amount, KIND_PAY, at, payer, memo))
            entries.append((txn, account_no, amount, KIND_PAY, at, payer, memo))
        paid_rows.append((card_no, txn, at, pay_note or note, rowid))
        paid_before[key] = (batch_id, seq)
        paid += 1
        paid_fen += amount

    if entries:
        db.conn.executemany(
            "INSERT INTO ledger_entries (txn_id, account_no, amount_fen, kind, at, operator, memo) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", entries)
    marked = 0
    if paid_rows:
        marked += db.conn.executemany(
            "UPDATE subsidy_rows SET status = 'paid', paid_card = ?, txn_id = ?, paid_at = ?, note = ? "
            "WHERE rowid = ? AND status = 'valid'", paid_rows).rowcount
    if failed_rows:
        marked += db.conn.executemany(
            "UPDATE subsidy_rows SET status = 'failed', reason_code = ?, reason = ? "
            "WHERE rowid = ? AND status = 'valid'", failed_rows).rowcount
    if marked != len(rows):
        raise SbcardError("subsidy.rows_changed", f"batch {batch_id}: {len(rows)} rows were read but {marked} marked; "
                                                  "nothing of this chunk was paid")
    db.execute("UPDATE subsidy_batches SET paid_count = paid_count + ?, paid_fen = paid_fen + ?, "
               "failed_count = failed_count + ?, failed_fen = failed_fen + ? WHERE id = ?",
               [paid, paid_fen, failed, failed_fen, batch_id])
    return {"paid": paid, "paid_fen": paid_fen, "failed": failed, "failed_fen": failed_fen}


def _in(values: list[str]) -> str:
    return ",".join("?" * len(values))


_Card = tuple[str, str, str | None, str | None, str]  # card_number, status, loss_kind, loss_expires_at, created_at
_Account = tuple[str, str | None, str]  # account_no, card_number, status


def _cards_of(db: sqlite_utils.Database, cids: list[str]) -> dict[str, list[_Card]]:
    found: dict[str, list[_Card]] = {}
    for cid, *card in db.execute(
            f"SELECT citizen_id, card_number, status, loss_kind, loss_expires_at, created_at FROM cards "
            f"WHERE citizen_id IN ({_in(cids)})", cids):
        found.setdefault(cid, []).append(tuple(card))  # type: ignore[arg-type]
    return found


def _open_accounts_of(db: sqlite_utils.Database, cids: list[str]) -> dict[str, _Account]:
    return {r[0]: r[1:] for r in db.execute(
        f"SELECT citizen_id, account_no, card_number, status FROM accounts "
        f"WHERE kind = 'holder' AND status != 'closed' AND citizen_id IN ({_in(cids)})", cids)}


def _paid_keys(db: sqlite_utils.Database, cids: list[str]) -> dict[tuple[str, str, str], tuple[str, int]]:
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in db.execute(
        f"SELECT citizen_id, item, period, batch_id, seq FROM subsidy_rows "
        f"WHERE status = 'paid' AND citizen_id IN ({_in(cids)})", cids)}


def _balances(db: sqlite_utils.Database, account_nos: list[str]) -> dict[str, int]:
    """The balance of each of these accounts, in one query (the maximum is checked per row)."""
    if not account_nos:
        return {}
    return {r[0]: int(r[1]) for r in db.execute(
        f"SELECT account_no, sum(amount_fen) FROM ledger_entries WHERE account_no IN ({_in(account_nos)}) "
        f"GROUP BY account_no", account_nos)}


def _posted(db: sqlite_utils.Database, txn_ids: list[str]) -> dict[str, Counter]:
    found: dict[str, Counter] = {}
    for txn, account_no, amount in db.execute(
            f"SELECT txn_id, account_no, amount_fen FROM ledger_entries WHERE txn_id IN ({_in(txn_ids)})", txn_ids):
        found.setdefault(txn, Counter())[(account_no, amount)] += 1
    return found


_VALID = ("issued", "active", "lost")  # at most one per person (a unique index)


def _target(cid: str, named: str | None, cards: list[_Card] | None, account: _Account | None, now: datetime
            ) -> tuple[tuple[str, str, str | None] | None, tuple[S.Reason, str] | None]:
    """((account, card, note) to pay, None) or (None, (reason, words)), by the card and account as they are now.

    The person's current card is their valid card, else their latest one (as
    ``sbcard.domain.subsidies`` has it), and whether it can be paid is the domain's
    ``card_verdict``; a card named in the file that has been replaced since is not a
    reason to fail: the current card is paid and the row says so.
    """
    if cards is None:
        return None, (S.Reason.NO_CARD, "at pay time: the person holds no social security card of this region")
    if len(cards) == 1 and not named and cards[0][1] == "active" and account is not None \
            and account[2] == "active" and account[1] == cards[0][0]:
        return (account[0], cards[0][0], None), None  # the common case, as card_verdict would find it
    valid = [c for c in cards if c[1] in _VALID]
    current = valid[0] if valid else max(cards, key=lambda c: (c[4], c[0]))
    state = CardState(current[0], current[1], current[2], _when(current[3]))
    open_account = account[2] if account is not None and account[1] == current[0] else None
    fact = S.CardFact(current[0], cid, state.effective(now).status.value, open_account, state.lapsed(now))
    code, words = S.card_verdict(fact, cid)
    if code is not None:
        return None, (code, f"at pay time: {words}")
    assert account is not None  # card_verdict passes only a card with an open, active account
    note = None
    written = "".join((named or "").split()).upper()
    if written and written != current[0]:
        was = next((c[1] for c in cards if c[0] == written), "replaced")
        note = f"card {written} was {was}: paid to the current card {current[0]}"
    return (account[0], current[0], note), None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _finish(db: sqlite_utils.Database, batch_id: str, payer: str, now: datetime, run: dict[str, int]) -> None:
    """No valid row left: check the counters against the rows and the ledger, then mark the batch paid."""
    row = _batch(db, batch_id)
    totals = _row_totals(db, batch_id)
    paid_count = sum(totals.get(s, (0, 0))[0] for s in ("paid", "reversed"))
    paid_fen = sum(totals.get(s, (0, 0))[1] for s in ("paid", "reversed"))
    failed_count = sum(totals.get(s, (0, 0))[0] for s in ("invalid", "failed"))
    failed_fen = sum(totals.get(s, (0, 0))[1] for s in ("invalid", "failed"))
    counters = (row["paid_count"], row["paid_fen"], row["failed_count"], row["failed_fen"])
    if counters != (paid_count, paid_fen, failed_count, failed_fen):
        raise SbcardError("subsidy.totals_mismatch",
                          f"batch {batch_id}: its counters say paid, paid_fen, failed, failed_fen = {counters}, its "
                          f"rows say {(paid_count, paid_fen, failed_count, failed_fen)}; not marked paid")
    if paid_fen + failed_fen != row["declared_total_fen"] or paid_count + failed_count != row["rows"]:
        raise SbcardError("subsidy.totals_mismatch",
                          f"batch {batch_id}: paid {format_fen(paid_fen)} + failed {format_fen(failed_fen)} is not "
                          f"the declared {format_fen(row['declared_total_fen'])}; not marked paid")
    credited, net, txns = _ledger_of_batch(db, batch_id, "SUB")
    if (credited, net, txns) != (paid_fen, 0, paid_count):
        raise SbcardError("subsidy.ledger_mismatch",
                          f"batch {batch_id}: the ledger holds {txns} payment transactions crediting "
                          f"{format_fen(credited)} (net {net} fen), the rows say {paid_count} paid for "
                          f"{format_fen(paid_fen)}; not marked paid")
    db.execute("UPDATE subsidy_batches SET status = 'paid', paid_at = ? WHERE id = ?", [timestamp(now), batch_id])
    db.execute("DELETE FROM subsidy_pay_leases WHERE batch_id = ?", [batch_id])
    audit.record(db, at=now, operator=payer, action="subsidy.paid", subject=batch_id,
                 details={"paid": paid_count, "paid_fen": paid_fen, "failed": failed_count,
                          "failed_fen": failed_fen, "this_run": run})


def _ledger_of_batch(db: sqlite_utils.Database, batch_id: str, prefix: str) -> tuple[int, int, int]:
    """(sum of credits, net sum, distinct transactions) of the batch's ``SUB-…`` or ``SUBREV-…`` transactions."""
    # GLOB, not LIKE: it is case-sensitive, so SQLite walks the txn_id index for the prefix.
    credited, net, txns = db.execute(
        "SELECT coalesce(sum(CASE WHEN amount_fen > 0 THEN amount_fen END), 0), coalesce(sum(amount_fen), 0), "
        "count(DISTINCT txn_id) FROM ledger_entries WHERE txn_id GLOB ?", [f"{prefix}-{batch_id}-*"]).fetchone()
    return int(credited), int(net), int(txns)


def _row_totals(db: sqlite_utils.Database, batch_id: str) -> dict[str, tuple[int, int]]:
    return {status: (int(n), int(fen)) for status, n, fen in db.execute(
        "SELECT status, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows WHERE batch_id = ? GROUP BY status",
        [batch_id])}


# ----------------------------------------------------------------------------- what happened


def summary(db: sqlite_utils.Database, batch_id: str) -> dict[str, Any]:
    """The batch's payment state: counters, the failures by reason, reversals (stable keys)."""
    row = _batch(db, batch_id)
    by_reason = [
        {"reason_code": code, "reason": S.describe(code), "rows": int(n), "amount_fen": int(fen)}
        for code, n, fen in db.execute(
            "SELECT reason_code, count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows "
            "WHERE batch_id = ? AND status IN ('invalid', 'failed') GROUP BY reason_code "
            "ORDER BY count(*) DESC, reason_code", [batch_id])
    ]
    reversed_count, reversed_fen = db.execute(
        "SELECT count(*), coalesce(sum(amount_fen), 0) FROM subsidy_reversals WHERE batch_id = ?",
        [batch_id]).fetchone()
    lease = list(db.query("SELECT host, pid, started_at, chunks FROM subsidy_pay_leases WHERE batch_id = ?",
                          [batch_id]))
    to_pay = db.execute("SELECT count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows "
                        "WHERE batch_id = ? AND status = 'valid'", [batch_id]).fetchone()
    return {
        **_header(row),
        "paid": row["paid_count"], "paid_fen": row["paid_fen"],
        "failed": row["failed_count"], "failed_fen": row["failed_fen"],
        "to_pay": int(to_pay[0]) if row["status"] in ("approved", "paying") else 0,
        "to_pay_fen": int(to_pay[1]) if row["status"] in ("approved", "paying") else 0,
        "failed_by_reason": by_reason,
        "reversed": int(reversed_count), "reversed_fen": int(reversed_fen),
        "lease": lease[0] if lease else None,
    }


def _header(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch_id": row["id"], "region": row["region"], "status": row["status"], "source": row["source"],
        "rows": row["rows"], "valid": row["valid"], "invalid": row["invalid"],
        "declared_total_fen": row["declared_total_fen"], "valid_total_fen": row["valid_total_fen"],
        "maker": row["maker"], "checker": row["checker"], "reject_reason": row["reject_reason"],
        "created_at": row["created_at"], "approved_at": row["approved_at"], "paid_at": row["paid_at"],
    }


# ----------------------------------------------------------------------------- reversing one payment


def reverse(world: World, batch: str, seq: int, *, operator: str, reason: str, now: datetime) -> dict[str, Any]:
    """Reverse one payment made in error: a new transaction from the holder's account back to the fund."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("subsidy.reason", "a reversal needs a reason (what the error was)", "--reason")
    db, batch_id = locate(world, batch)
    with UnitOfWork(db) as uow:
        staff = require_operator(uow.db, operator, roles=set(CHECKER_ROLES))
        rows = list(uow.db.query("SELECT * FROM subsidy_rows WHERE batch_id = ? AND seq = ?", [batch_id, seq]))
        if not rows:
            raise NotFound("subsidy.unknown_row", f"batch {batch_id} has no row {seq}", "SEQ")
        row = rows[0]
        if row["status"] == "reversed":
            done = uow.db.execute("SELECT txn_id, operator, at, reason FROM subsidy_reversals "
                                  "WHERE batch_id = ? AND seq = ?", [batch_id, seq]).fetchone()
            raise RuleRefused("subsidy.already_reversed", f"row {seq} of batch {batch_id} was already reversed by "
                                                          f"{done[1]} at {done[2]} ({done[0]}: {done[3]})", "SEQ")
        if row["status"] != "paid":
            why = f" ({row['reason_code']}: {row['reason']})" if row["reason_code"] else ""
            raise RuleRefused("subsidy.not_paid", f"row {seq} of batch {batch_id} is {row['status']}{why}: "
                                                  "it was never paid, there is nothing to reverse", "SEQ")
        legs = uow.db.execute("SELECT account_no, amount_fen FROM ledger_entries WHERE txn_id = ? ORDER BY id",
                              [row["txn_id"]]).fetchall()
        credit = [(a, fen) for a, fen in legs if fen > 0]
        debit = [(a, fen) for a, fen in legs if fen < 0]
        amount = row["amount_fen"]
        if len(credit) != 1 or len(debit) != 1 or credit[0][1] != amount or debit[0][1] != -amount:
            raise SbcardError("subsidy.ledger_mismatch", f"transaction {row['txn_id']} does not hold the payment of "
                                                         f"row {seq} ({format_fen(amount)}); nothing reversed")
        holder, fund = credit[0][0], debit[0][0]
        account = ledger.get_account(uow.db, holder)
        if account["status"] == "frozen":
            raise RuleRefused("account.frozen", f"the holder's account (card {row['paid_card']}) is frozen: nothing "
                                                "reversed; reverse once the card is unblocked or replaced", "SEQ")
        if account["status"] != "active":
            raise RuleRefused(f"account.{account['status']}",
                              f"the holder's account (card {row['paid_card']}) is {account['status']}: nothing "
                              "reversed — recover the money from the holder another way", "SEQ")
        held = ledger.balance(uow.db, holder)
        if held < amount:
            raise RuleRefused("subsidy.balance_short",
                              f"the holder's account (card {row['paid_card']}) holds {format_fen(held)}, less than "
                              f"the {format_fen(amount)} paid by row {seq}: the money has been used; nothing "
                              "reversed — recover it from the holder another way", "SEQ")
        txn = reversal_txn_id(batch_id, seq)
        ledger.post(uow.db, txn_id=txn, entries=[(holder, -amount), (fund, amount)], kind=KIND_REVERSAL,
                    operator=staff["code"], memo=f"reversal of {row['txn_id']}: {reason}", now=now)
        at = timestamp(now)
        uow.db["subsidy_reversals"].insert({"txn_id": txn, "batch_id": batch_id, "seq": seq, "amount_fen": amount,
                                           "reason": reason, "operator": staff["code"], "at": at})
        uow.db.execute("UPDATE subsidy_rows SET status = 'reversed' WHERE batch_id = ? AND seq = ? "
                       "AND status = 'paid'", [batch_id, seq])
        audit.record(uow.db, at=now, operator=staff["code"], action="subsidy.reverse", subject=f"{batch_id}/{seq}",
                     reason=reason, details={"txn_id": txn, "payment": row["txn_id"], "amount_fen": amount,
                                             "citizen_id": mask_citizen_id(row["citizen_id"] or "")})
        balance_after = ledger.balance(uow.db, holder)
        uow.commit()
    return {"batch_id": batch_id, "seq": seq, "txn_id": txn, "payment_txn_id": row["txn_id"], "amount_fen": amount,
            "card_number": row["paid_card"], "account_no": holder, "fund_account": fund,
            "balance_fen": balance_after, "operator": staff["code"], "reason": reason, "at": at}
