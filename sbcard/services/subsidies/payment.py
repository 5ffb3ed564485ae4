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
so. The lease has a heartbeat: every chunk a run commits renews it (``renewed_at``, on the
run's clock, shown to people; ``chunks`` counts the renewals). Staleness is judged on the
taker's clock alone, never by comparing it with the time the holder wrote on its own clock
(two machines' clocks may disagree by more than ``STALE_LEASE``): a ``pay`` that finds a
live-looking lease is refused, naming when it may try again, and notes what it saw (token and
chunks, at its own time: ``subsidy_pay_lease_sightings``, one per observing machine); a lease
whose token and chunks have not changed for ``STALE_LEASE`` (two minutes) since its machine
first saw them is *stale*, and that ``pay`` takes it over wherever its payer ran — a payer on
another machine (or a service's container, whose host name changes at each start) that died,
or a pid reused since, no longer blocks the batch for ever. Every chunk checks that its run still holds the lease
before writing, so even a take-over of a payer that was only slow (stale, or forced with
``take_over=True``) cannot make two runs pay the same rows: the slow one stops before its
next chunk (``LeaseLost``); and each chunk re-reads its rows under SQLite's
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
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any


from sbcard.domain import subsidies
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
from sbcard.store.repositories.subsidies import AccountFacts, CardFacts, PayableRow, SubsidiesRepository
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
# A lease seen not renewed this long (by one machine, on its own clock) is stale: its payer is taken to be gone,
# wherever it ran. A run renews it at every chunk (a chunk takes well under a second; a whole chunk of MAX_CHUNK
# rows a few seconds), so two minutes is many chunks missed. No two machines' clocks are compared.
STALE_LEASE = timedelta(minutes=2)

Progress = Callable[[int, int], None]  # (rows settled so far in this run, rows to settle at the start)
Fault = Callable[[str, int], None]  # (point, chunk number): a test hook, see `pay`


def payment_txn_id(batch_id: str, seq: int) -> str:
    return f"SUB-{batch_id}-{seq}"


def reversal_txn_id(batch_id: str, seq: int) -> str:
    return f"SUBREV-{batch_id}-{seq}"


class PayInProgress(RuleRefused):
    """Another ``pay`` holds the batch's lease (exit 1); ``holder`` says who."""

    def __init__(self, batch_id: str, holder: dict[str, Any], alive: bool | None, seen_since: datetime) -> None:
        where = f"process {holder['pid']} on {holder['host']}"
        since = (f"since {holder['started_at']}, {holder['chunks']} chunk(s) committed so far, last renewed at "
                 f"{_renewed(holder).isoformat()} by its clock")
        stale_at = (seen_since + STALE_LEASE).isoformat()
        if alive is None:
            advice = (f"if that machine's pay is gone, the lease may be taken over from {stale_at} (seen here "
                      f"unrenewed for {int(STALE_LEASE.total_seconds())} s, by this machine's clock): pay again "
                      "then, or now with --take-over (it is safe: a payer that has lost the lease stops before its "
                      "next chunk)")
        else:
            advice = "wait for it to finish (--wait SECONDS), then run again to see the result"
        super().__init__("subsidy.pay_in_progress", f"batch {batch_id} is being paid by {where} ({since}); {advice}",
                         FIELD)
        self.holder = holder
        self.retry_at = seen_since + STALE_LEASE


class LeaseLost(SbcardError):
    """This run's lease was taken over (``--take-over`` elsewhere): it stops before writing anything more."""

    def __init__(self, batch_id: str) -> None:
        super().__init__("subsidy.lease_lost", f"batch {batch_id}: another pay took over this run's lease; this run "
                                               "stopped before its next chunk (everything it committed stays paid)")


# ----------------------------------------------------------------------------- finding a batch


def locate(world: World, batch_id: str) -> tuple[UnitOfWork, str]:
    """(a unit of work on the batch's region, batch id as stored), the batch found as ``subsidy show`` finds it."""
    _, uow, row = subsidy_import.locate(world, batch_id)
    return uow, row["id"]


def _batch(uow: UnitOfWork, batch_id: str) -> dict[str, Any]:
    row = uow.get(SubsidiesRepository).batch(batch_id)
    if row is None:
        raise NotFound("subsidy.unknown_batch", f"no subsidy batch {batch_id}", FIELD)
    return row


# ----------------------------------------------------------------------------- maker–checker


def approve(world: World, batch: str, *, operator: str, now: datetime) -> dict[str, Any]:
    """The checker approves an imported batch for payment; returns the batch's header."""
    uow, batch_id = locate(world, batch)
    with uow:
        row = _batch(uow, batch_id)
        checker = _checker(uow, operator, row, "approve")
        _require_imported(row, "approved")
        _check_header(uow, row)
        at = timestamp(now)
        uow.get(SubsidiesRepository).approve(row["id"], checker=checker, at=at)
        audit.record(uow.db, at=now, operator=checker, action="subsidy.approve", subject=row["id"],
                     details={"maker": row["maker"], "rows": row["rows"], "valid": row["valid"],
                              "valid_total_fen": row["valid_total_fen"]})
        result = _header(_batch(uow, row["id"]))
        uow.finish()
    return result


def reject(world: World, batch: str, *, operator: str, reason: str, now: datetime) -> dict[str, Any]:
    """The checker sends an imported batch back with a reason; it can never be paid."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("subsidy.reason", "a rejection needs a reason the maker can act on", "--reason")
    uow, batch_id = locate(world, batch)
    with uow:
        row = _batch(uow, batch_id)
        checker = _checker(uow, operator, row, "reject")
        _require_imported(row, "rejected")
        uow.get(SubsidiesRepository).reject(row["id"], checker=checker, at=timestamp(now), reason=reason)
        audit.record(uow.db, at=now, operator=checker, action="subsidy.reject", subject=row["id"], reason=reason,
                     details={"maker": row["maker"], "rows": row["rows"]})
        result = _header(_batch(uow, row["id"]))
        uow.finish()
    return result


def _checker(uow: UnitOfWork, operator: str, batch: dict[str, Any], verb: str) -> str:
    staff = require_operator(uow.db, operator, roles=set(CHECKER_ROLES))
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


def _check_header(uow: UnitOfWork, batch: dict[str, Any]) -> None:
    """The header agrees with the rows (counts, valid total, declared total) before anyone pays on it."""
    counts = uow.get(SubsidiesRepository).row_totals(batch["id"])
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
    clock: Callable[[], datetime] | None = None,
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
    ``clock``: the time now, read at each chunk to renew the lease (its heartbeat) and to tell a
    stale lease (``STALE_LEASE``); without it the run's ``now`` stands for the whole run (the
    simulator's, whose time is its own).

    Each chunk is a whole unit of work of its own (``with uow:`` … ``finish()``), never a
    step of a caller's: pay is refused inside an open transaction (store.nested_transaction),
    and between chunks it holds no transaction, so the region's other writers get in.
    """
    if not isinstance(chunk, int) or not 1 <= chunk <= MAX_CHUNK:
        raise InvalidInput("subsidy.chunk", f"a chunk is 1 to {MAX_CHUNK:,} rows, got {chunk!r}", "--chunk")
    uow, batch_id = locate(world, batch)
    store = uow.get(SubsidiesRepository)
    payer = PAYER
    if operator:
        payer = require_operator(uow.db, operator, roles=set(CHECKER_ROLES))["code"]
    at = timestamp(now)
    current = clock or (lambda: now)
    me = _me(runner)

    # First without the write lock (a running pay holds it most of the time): a paid
    # batch, or one another live pay holds and this machine saw before, is answered at once.
    if _payable(uow, batch_id, take_over, current(), me) is None:
        return _already(uow, batch_id)
    # Then look again, take the lease (and move approved → paying) in one write transaction.
    with uow:
        row = _payable(uow, batch_id, take_over, current(), me)
        if row is None:
            result = _already(uow, batch_id)
            uow.finish()
            return result
        try:
            lease, took_over = _take_lease(uow, batch_id, at, take_over, me, current())
        except PayInProgress:
            uow.finish()  # what this call saw of the lease (its only write), for the next call to judge by
            raise
        funds = _funds(uow, batch_id, now)
        resumed = row["status"] == "paying"
        if row["status"] == "approved":
            invalid_count, invalid_fen = store.row_totals(batch_id).get("invalid", (0, 0))
            store.start_paying(batch_id, failed_count=invalid_count, failed_fen=invalid_fen)
        audit.record(uow.db, at=now, operator=payer,
                     action="subsidy.pay_started" if not resumed else "subsidy.pay_resumed",
                     subject=batch_id, details={"took_over": took_over, "pid": lease["pid"], "host": lease["host"]})
        to_settle = store.row_totals(batch_id).get("valid", (0, 0))[0]
        uow.finish()
    run = _run_totals()
    try:
        _fire(fault, "lease_taken", 0)
        cursor, chunk_no = _LOWEST_SEQ, 0
        while True:
            chunk_no += 1
            with uow:
                _hold_lease(uow, batch_id, lease, current())
                rows = store.valid_rows_after(batch_id, cursor, chunk)
                if rows:
                    done = _pay_chunk(uow, batch_id, rows, funds, payer=payer, at=at, now=now)
                    for key in ("paid", "paid_fen", "failed", "failed_fen"):
                        run[key] += done[key]
                else:  # the closing transaction: counters checked, batch paid, lease returned
                    _finish(uow, batch_id, payer, now, run)
                _fire(fault, "before_commit", chunk_no)
                uow.finish()
            _fire(fault, "after_commit", chunk_no)
            if not rows:
                break
            cursor = rows[-1][0]
            if progress is not None:
                progress(run["paid"] + run["failed"], to_settle)
            time.sleep(PAUSE_BETWEEN_CHUNKS)
    except BaseException:
        _release_quietly(uow, batch_id, lease)
        raise
    return {**summary(uow, batch_id), "already": False, "resumed": resumed, "took_over": took_over,
            "this_run": run}


def _payable(uow: UnitOfWork, batch_id: str, take_over: bool, current: datetime,
             me: dict[str, Any]) -> dict[str, Any] | None:
    """The batch if this run may pay it, None if it is paid already; refuses an unapproved, rejected or held one
    (held: a live-looking lease this machine saw before, not yet stale; one seen for the first time is noted and
    refused under the write lock, by ``_take_lease``)."""
    row = _batch(uow, batch_id)
    if row["status"] == "paid":
        return None
    if row["status"] == "imported":
        raise RuleRefused("subsidy.not_approved",
                          f"batch {batch_id} is not approved yet: a second operator must check it first "
                          f"(`sbcard subsidy approve {batch_id} --operator CODE`)", FIELD)
    if row["status"] == "rejected":
        raise RuleRefused("subsidy.rejected", f"batch {batch_id} was rejected by {row['checker']} at "
                                              f"{row['approved_at']} ({row['reject_reason']}): it is never paid", FIELD)
    store = uow.get(SubsidiesRepository)
    held = store.lease(batch_id)
    if held is not None and not take_over:
        stale, seen_since, first = _judged(store, held, current, me)
        if not stale and not first:
            alive = _holder_alive(held, me)
            if alive is not False:
                raise PayInProgress(batch_id, held, alive, seen_since)
    return row


def _already(uow: UnitOfWork, batch_id: str) -> dict[str, Any]:
    return {**summary(uow, batch_id), "already": True, "resumed": False, "took_over": None, "this_run": _run_totals()}


def _run_totals() -> dict[str, int]:
    return {"paid": 0, "paid_fen": 0, "failed": 0, "failed_fen": 0}


def _fire(fault: Fault | None, point: str, chunk_no: int) -> None:
    if fault is not None:
        fault(point, chunk_no)


def _funds(uow: UnitOfWork, batch_id: str, now: datetime) -> dict[str, str]:
    """item code → its fund account, for every item the batch still has to pay; each fund open and active."""
    store = uow.get(SubsidiesRepository)
    items = store.items_to_pay(batch_id)
    catalogue = store.fund_accounts()
    funds: dict[str, str] = {}
    for item in items:
        fund_account = catalogue.get(item)
        if fund_account is None:
            continue  # its rows fail as unknown_item
        account = ledger.ensure_internal_account(uow, fund_account, "fund", now)
        status = ledger.get_account(uow, account)["status"]
        if status != "active":
            raise RuleRefused("subsidy.fund_" + status, f"the fund account {account} of item {item} is {status}: "
                                                       f"nothing of batch {batch_id} was paid", FIELD)
        funds[item] = account
    return funds


# --- the lease -------------------------------------------------------------------------


def _me(runner: tuple[str, int] | None) -> dict[str, Any]:
    """Who runs this pay (host, pid): this machine and process, or the simulator's fixed runner."""
    host, pid = runner if runner is not None else (socket.gethostname(), os.getpid())
    return {"host": host, "pid": pid}


def _take_lease(uow: UnitOfWork, batch_id: str, at: str, take_over: bool, me: dict[str, Any],
                current: datetime) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """This run's lease, taking over one whose process is gone, one seen stale, or any with ``take_over``;
    otherwise PayInProgress, after noting what was seen (the caller commits that note)."""
    mine = {"batch_id": batch_id, "token": uuid.uuid4().hex, "host": me["host"], "pid": me["pid"],
            "started_at": at, "chunks": 0, "renewed_at": timestamp(current)}
    store = uow.get(SubsidiesRepository)
    holder = store.lease(batch_id)
    took_over = None
    if holder is not None:
        stale, seen_since, first = _judged(store, holder, current, me)
        alive = _holder_alive(holder, mine)
        if alive is not False and not take_over and not stale:
            if first:
                store.note_sighting(batch_id, me["host"], holder["token"], holder["chunks"], timestamp(current))
            raise PayInProgress(batch_id, holder, alive, seen_since)
        took_over = {"pid": holder["pid"], "host": holder["host"], "started_at": holder["started_at"],
                     "chunks": holder["chunks"], "forced": alive is not False and not stale}
        if stale:  # said only when it is why: a lease left by a process known gone reads as before
            took_over["stale_since"] = seen_since.isoformat()
    store.replace_lease(mine)
    return mine, took_over


def _renewed(holder: dict[str, Any]) -> datetime:
    """When the lease was last renewed (its start, for a lease taken before leases were renewed)."""
    return datetime.fromisoformat(holder.get("renewed_at") or holder["started_at"])


def _judged(store: SubsidiesRepository, holder: dict[str, Any], current: datetime,
            me: dict[str, Any]) -> tuple[bool, datetime, bool]:
    """(stale, seen since, first sight) of the lease as this machine sees it on its own clock: stale when its
    token and chunks are as this machine first saw them more than ``STALE_LEASE`` ago — its payer, wherever it
    ran, is gone. The holder's ``renewed_at`` (another machine's clock) is never compared with ``current``."""
    seen = store.sighting(holder["batch_id"], me["host"])
    if seen is None or (seen["token"], seen["chunks"]) != (holder["token"], holder["chunks"]):
        return False, current, True
    since = datetime.fromisoformat(seen["seen_at"])
    return current - since > STALE_LEASE, since, False


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


def _hold_lease(uow: UnitOfWork, batch_id: str, lease: dict[str, Any], current: datetime) -> None:
    """Inside the chunk's transaction: this run still holds the lease (and renews it: the heartbeat)."""
    if not uow.get(SubsidiesRepository).hold_lease(batch_id, lease["token"], timestamp(current)):
        raise LeaseLost(batch_id)


def _release_quietly(uow: UnitOfWork, batch_id: str, lease: dict[str, Any]) -> None:
    """After an interruption: give the lease back if still ours (a kill -9 leaves it: the next pay sees that)."""
    try:
        with uow:  # the interrupted chunk's unit of work was rolled back when its block was left
            uow.get(SubsidiesRepository).release_lease(batch_id, lease["token"])
            uow.finish()
    except Exception:  # noqa: BLE001 - the interruption being reported matters more; the lease is detectably stale
        pass


# --- one chunk -------------------------------------------------------------------------


def _pay_chunk(uow: UnitOfWork, batch_id: str, rows: list[PayableRow], funds: dict[str, str], *,
               payer: str, at: str, now: datetime) -> dict[str, int]:
    """Check each row against the card and account as they are now, post the payable ones, mark every row.

    Five look-ups per chunk, not per row: the persons' cards, their open accounts, what
    is already paid to them, and what the ledger holds of the chunk's transactions and of
    the accounts' balances (``ledger.batch_facts``); then the payable rows go to the ledger
    as one batch (``ledger.post_many``, given those facts: it checks every transaction on
    them, one look-up of the accounts' kinds and statuses more, and one insert).
    """
    store = uow.get(SubsidiesRepository)
    cids = list({r[1] for r in rows})
    txns = [payment_txn_id(batch_id, r[0]) for r in rows]
    cards = store.cards_of(cids)
    accounts = store.open_accounts_of(cids)
    paid_before = store.paid_keys(cids)
    facts = ledger.batch_facts(uow, txns, [a[0] for a in accounts.values()])
    posted, balances = facts.posted, dict(facts.balances)

    postings: list[ledger.Posting] = []
    paid_rows: list[tuple[str, str, str, str | None, int]] = []
    failed_rows: list[tuple[str, str, int]] = []
    paid = paid_fen = failed = failed_fen = 0
    for (seq, cid, named, item, period, amount, note, rowid), txn in zip(rows, txns):
        key = (cid, item, period)
        fund = funds.get(item)
        if key in paid_before:
            other_batch, other_seq = paid_before[key]
            target, reason = None, (subsidies.Reason.ALREADY_PAID, f"{item} {period} was already paid to this "
                                                                   f"person in batch {other_batch} (row {other_seq})")
        elif fund is None:
            target, reason = None, (subsidies.Reason.UNKNOWN_ITEM, f"{item!r} is no longer in the subsidy catalogue")
        else:
            target, reason = _target(cid, named, cards.get(cid), accounts.get(cid), now)
        if target is None:
            failed_rows.append((reason[0].value, reason[1], rowid))
            failed += 1
            failed_fen += amount
            continue
        account_no, card_no, pay_note = target
        if txn not in posted and balances.get(account_no, 0) + amount > MAX_ACCOUNT_BALANCE_FEN:
            failed_rows.append((subsidies.Reason.ACCOUNT_MAX_BALANCE.value,
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
            postings.append(ledger.Posting(txn, [(fund, -amount), (account_no, amount)], f"{item} {period}"))
        paid_rows.append((card_no, txn, at, pay_note or note, rowid))
        paid_before[key] = (batch_id, seq)
        paid += 1
        paid_fen += amount

    ledger.post_many(uow, postings, kind=KIND_PAY, operator=payer, now=now, facts=facts)
    marked = 0
    if paid_rows:
        marked += store.mark_rows_paid(paid_rows)
    if failed_rows:
        marked += store.mark_rows_failed(failed_rows)
    if marked != len(rows):
        raise SbcardError("subsidy.rows_changed", f"batch {batch_id}: {len(rows)} rows were read but {marked} marked; "
                                                  "nothing of this chunk was paid")
    store.add_to_counters(batch_id, paid=paid, paid_fen=paid_fen, failed=failed, failed_fen=failed_fen)
    return {"paid": paid, "paid_fen": paid_fen, "failed": failed, "failed_fen": failed_fen}


_VALID = ("issued", "active", "lost")  # at most one per person (a unique index)


def _target(cid: str, named: str | None, cards: list[CardFacts] | None, account: AccountFacts | None,
            now: datetime) -> tuple[tuple[str, str, str | None] | None, tuple[subsidies.Reason, str] | None]:
    """((account, card, note) to pay, None) or (None, (reason, words)), by the card and account as they are now.

    The person's current card is their valid card, else their latest one (as
    ``sbcard.domain.subsidies`` has it), and whether it can be paid is the domain's
    ``card_verdict``; a card named in the file that has been replaced since is not a
    reason to fail: the current card is paid and the row says so.
    """
    if cards is None:
        return None, (subsidies.Reason.NO_CARD, "at pay time: the person holds no social security card of this region")
    if len(cards) == 1 and not named and cards[0][1] == "active" and account is not None \
            and account[2] == "active" and account[1] == cards[0][0]:
        return (account[0], cards[0][0], None), None  # the common case, as card_verdict would find it
    valid = [c for c in cards if c[1] in _VALID]
    current = valid[0] if valid else max(cards, key=lambda c: (c[4], c[0]))
    state = CardState(current[0], current[1], current[2], _when(current[3]))
    open_account = account[2] if account is not None and account[1] == current[0] else None
    fact = subsidies.CardFact(current[0], cid, state.effective(now).status.value, open_account, state.lapsed(now))
    code, words = subsidies.card_verdict(fact, cid)
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


def _finish(uow: UnitOfWork, batch_id: str, payer: str, now: datetime, run: dict[str, int]) -> None:
    """No valid row left: check the counters against the rows and the ledger, then mark the batch paid."""
    store = uow.get(SubsidiesRepository)
    row = _batch(uow, batch_id)
    totals = store.row_totals(batch_id)
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
    credited, net, txns = ledger.totals_of_txns(uow, f"SUB-{batch_id}-")
    if (credited, net, txns) != (paid_fen, 0, paid_count):
        raise SbcardError("subsidy.ledger_mismatch",
                          f"batch {batch_id}: the ledger holds {txns} payment transactions crediting "
                          f"{format_fen(credited)} (net {net} fen), the rows say {paid_count} paid for "
                          f"{format_fen(paid_fen)}; not marked paid")
    store.mark_paid(batch_id, timestamp(now))
    audit.record(uow.db, at=now, operator=payer, action="subsidy.paid", subject=batch_id,
                 details={"paid": paid_count, "paid_fen": paid_fen, "failed": failed_count,
                          "failed_fen": failed_fen, "this_run": run})


# ----------------------------------------------------------------------------- what happened


def summary(uow: UnitOfWork, batch_id: str) -> dict[str, Any]:
    """The batch's payment state: counters, the failures by reason, reversals (stable keys)."""
    store = uow.get(SubsidiesRepository)
    row = _batch(uow, batch_id)
    by_reason = [
        {"reason_code": code, "reason": subsidies.describe(code), "rows": n, "amount_fen": fen}
        for code, n, fen in store.failed_by_reason(batch_id)
    ]
    reversed_count, reversed_fen = store.reversal_totals(batch_id)
    lease = store.lease_shown(batch_id)
    to_pay = store.to_pay(batch_id)
    return {
        **_header(row),
        "paid": row["paid_count"], "paid_fen": row["paid_fen"],
        "failed": row["failed_count"], "failed_fen": row["failed_fen"],
        "to_pay": to_pay[0] if row["status"] in ("approved", "paying") else 0,
        "to_pay_fen": to_pay[1] if row["status"] in ("approved", "paying") else 0,
        "failed_by_reason": by_reason,
        "reversed": reversed_count, "reversed_fen": reversed_fen,
        "lease": lease,
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
    uow, batch_id = locate(world, batch)
    store = uow.get(SubsidiesRepository)
    with uow:
        staff = require_operator(uow.db, operator, roles=set(CHECKER_ROLES))
        if staff["code"] == _batch(uow, batch_id)["maker"]:
            raise RuleRefused("subsidy.maker_reverses", f"operator {staff['code']} made batch {batch_id}: taking money "
                              "back from a holder's account needs another finance operator or a supervisor",
                              "--operator")
        row = store.row(batch_id, seq)
        if row is None:
            raise NotFound("subsidy.unknown_row", f"batch {batch_id} has no row {seq}", "SEQ")
        if row["status"] == "reversed":
            done = store.reversal(batch_id, seq)
            assert done is not None
            raise RuleRefused("subsidy.already_reversed", f"row {seq} of batch {batch_id} was already reversed by "
                                                          f"{done[1]} at {done[2]} ({done[0]}: {done[3]})", "SEQ")
        if row["status"] != "paid":
            why = f" ({row['reason_code']}: {row['reason']})" if row["reason_code"] else ""
            raise RuleRefused("subsidy.not_paid", f"row {seq} of batch {batch_id} is {row['status']}{why}: "
                                                  "it was never paid, there is nothing to reverse", "SEQ")
        legs = ledger.legs(uow, row["txn_id"])
        credit = [(a, fen) for a, fen in legs if fen > 0]
        debit = [(a, fen) for a, fen in legs if fen < 0]
        amount = row["amount_fen"]
        if len(credit) != 1 or len(debit) != 1 or credit[0][1] != amount or debit[0][1] != -amount:
            raise SbcardError("subsidy.ledger_mismatch", f"transaction {row['txn_id']} does not hold the payment of "
                                                         f"row {seq} ({format_fen(amount)}); nothing reversed")
        holder, fund = credit[0][0], debit[0][0]
        account = ledger.get_account(uow, holder)
        if account["status"] == "frozen":
            raise RuleRefused("account.frozen", f"the holder's account (card {row['paid_card']}) is frozen: nothing "
                                                "reversed; reverse once the card is unblocked or replaced", "SEQ")
        if account["status"] != "active":
            raise RuleRefused(f"account.{account['status']}",
                              f"the holder's account (card {row['paid_card']}) is {account['status']}: nothing "
                              "reversed — recover the money from the holder another way", "SEQ")
        held = ledger.balance(uow, holder)
        if held < amount:
            raise RuleRefused("subsidy.balance_short",
                              f"the holder's account (card {row['paid_card']}) holds {format_fen(held)}, less than "
                              f"the {format_fen(amount)} paid by row {seq}: the money has been used; nothing "
                              "reversed — recover it from the holder another way", "SEQ")
        txn = reversal_txn_id(batch_id, seq)
        ledger.post(uow, txn_id=txn, entries=[(holder, -amount), (fund, amount)], kind=KIND_REVERSAL,
                    operator=staff["code"], memo=f"reversal of {row['txn_id']}: {reason}", now=now)
        at = timestamp(now)
        store.record_reversal({"txn_id": txn, "batch_id": batch_id, "seq": seq, "amount_fen": amount,
                               "reason": reason, "operator": staff["code"], "at": at})
        audit.record(uow.db, at=now, operator=staff["code"], action="subsidy.reverse", subject=f"{batch_id}/{seq}",
                     reason=reason, details={"txn_id": txn, "payment": row["txn_id"], "amount_fen": amount,
                                             "citizen_id": mask_citizen_id(row["citizen_id"] or "")})
        balance_after = ledger.balance(uow, holder)
        uow.finish()
    return {"batch_id": batch_id, "seq": seq, "txn_id": txn, "payment_txn_id": row["txn_id"], "amount_fen": amount,
            "card_number": row["paid_card"], "account_no": holder, "fund_account": fund,
            "balance_fen": balance_after, "operator": staff["code"], "reason": reason, "at": at}
