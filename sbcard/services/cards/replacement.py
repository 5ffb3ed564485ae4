"""补换卡: a new card with a new number in place of the old one, and the old purse refunded later.

A replacement is an issuance (``services.cards.issuance``) of a replacement application, with
one more step inside the issuance's transaction, just before the new card's row is
written: the old card ends (``replaced``, onto the blacklist), the holder's financial
account moves to the new card, and the purse balance the old card still held waits in
``purse_refunds``. All of it is recorded with the new card, or none of it.

The purse balance is read from the chip when the holder brings the old card (basis
``chip``); a card reported lost cannot be read, and its balance is then what the
clearing records leave on it — confirmed loads less cleared purchases, the issuer's
``purse_shadow`` — taken when the refund is paid (basis ``clearing``). A purchase made
offline with the old card may still arrive after the replacement, so the refund is paid
only once the clearing window has passed (``domain.lifecycle.CLEARING_WINDOW``; the card
is on the blacklist from the replacement, or from its loss): then ``pay_due_refunds``
credits the financial account, once; a record of the old card cleared even later is
reconciled by a correction of the refund at the next run (``_adjust``). The refund goes to
the financial account the holder now reaches through the new card. That is what "refunded to the new
card" means here: the money is in the new card's account, from which the holder loads
the new purse at any load terminal (圈存), since a refund cannot be written onto a chip
that is not in a reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils

from sbcard.chip.commands import ChipInfo
from sbcard.chip.reading import CardSnapshot
from sbcard.domain import lifecycle as lifecycle_rules
from sbcard.domain.eligibility import MINOR_UNDER_YEARS
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.lifecycle import CardState
from sbcard.domain.masking import mask_citizen_id
from sbcard.services.exchange import lookup
from sbcard.services.cards import issuance, lifecycle
from sbcard.services.accounts import ledger
from sbcard.services.outlets import operators, stock
from sbcard.services.cards.issuance import IssuanceDesk
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World

FLOAT_PURSE = "FLOAT-PURSE"
CHIP, CLEARING = "chip", "clearing"
REFUND_ROLES = {"finance", "supervisor"}


class Replacement:
    """One replacement at a counter, checked before any card or database is touched.

    The counter (``sbcard/cli``) drives it: ``old_card_presented`` with the old card's
    reading when the holder brings it, ``check_blank`` with the blank in the reader,
    then ``issuance_desk`` for ``counter.issue``. ``result`` says what was done.
    """

    def __init__(
        self, world: World, card_number: str, *, operator: str, outlet: str, reason: str | None = None,
        now: datetime, guardian_id: str | None = None,
    ) -> None:
        self.world, self.now = world, now
        self.old_card = lifecycle.parse_card_number(card_number)
        self.node, card = lifecycle.locate_card(world, self.old_card)
        lifecycle_rules.replace(CardState.from_row(card), now)  # refuses a card that cannot be replaced
        if not outlet:
            raise InvalidInput("replace.outlet", "a replacement is issued at an outlet: give --outlet", "--outlet")
        self.actor = lifecycle.authorise(world, operator, outlet, reason, card_node=self.node)
        self.citizen_id: str = card["citizen_id"]
        self.card_id_code: str = card["card_id_code"]
        self.guardian_id = _guardian(self.citizen_id, guardian_id, now)
        self.purse_balance_fen: int | None = None  # read from the old card, if presented
        self.account_no: str | None = None
        self.refund_due_at: datetime | None = None
        self.refund_basis: str | None = None  # chip | clearing: where the refunded balance comes from

    def old_card_presented(self, snapshot: CardSnapshot) -> None:
        """The holder brought the old card: it must be this card; its purse balance is refunded later."""
        if (snapshot.card_number, snapshot.card_id_code) != (self.old_card, self.card_id_code):
            raise RuleRefused("replace.wrong_old_card",
                              f"the card in --old-reader is {snapshot.card_number or 'not a personalised card'}, "
                              f"not {self.old_card}", "--old-reader")
        if snapshot.balance_fen is None:
            raise RuleRefused("replace.purse_unreadable",
                              f"the purse of card {self.old_card} cannot be read (its transit application is "
                              "blocked); replace it without --old-reader", "--old-reader")
        self.purse_balance_fen = snapshot.balance_fen

    def check_blank(self, chip: ChipInfo) -> None:
        """The card in the reader is a blank of this outlet's stock (before any application is written)."""
        stock.check_blank(self.world, outlet=self.actor.outlet, chip_serial=chip.chip_serial.hex().upper())

    def issuance_desk(self) -> IssuanceDesk:
        """The issuing region's desk for the new card, ending the old card as it records the new one."""
        return IssuanceDesk(self.world, self._application(), operator=self.actor.operator, now=self.now,
                            replaces=self.old_card, before_record=self._end_old_card)

    def result(self, issued: dict[str, Any]) -> dict[str, Any]:
        """``card replace --json``."""
        return {
            "old_card": self.old_card,
            "new_card": issued["card_number"],
            "status": lifecycle_rules.Status.REPLACED.value,
            "new_status": issued["status"],
            "card_id_code": issued["card_id_code"],
            "region": issued["region"],
            "application_id": issued["application_id"],
            "account_no": self.account_no,
            "purse_balance_fen": self.purse_balance_fen,
            "refund_due_at": self.refund_due_at.isoformat() if self.refund_due_at else None,
            "refund_basis": self.refund_basis,
            "guardian_id": mask_citizen_id(self.guardian_id) if self.guardian_id else None,
            "operator": self.actor.operator,
            "outlet": self.actor.outlet,
            "reason": self.actor.reason,
            "at": self.now.isoformat(),
            "virtual_path": issued["virtual_path"],
        }

    def _application(self) -> str:
        """The replacement application: the one a torn earlier attempt left open here, or a new one."""
        db = self.world.region(self.node)
        open_ = db.execute(
            "SELECT id, outlet FROM applications WHERE citizen_id = ? AND kind = 'replacement' AND status = 'applied'",
            [self.citizen_id],
        ).fetchone()
        if open_ is not None:
            if open_[1] != self.actor.outlet:
                raise RuleRefused("replace.open_elsewhere",
                                  f"replacement application {open_[0]} is open at outlet {open_[1]}: finish it there "
                                  f"or withdraw it (`sbcard card application-status {open_[0]} --set withdrawn`)",
                                  "--outlet")
            return open_[0]
        application = issuance.apply(self.world, citizen_id=self.citizen_id, outlet=self.actor.outlet,
                                     operator=self.actor.operator, replaces=self.old_card, now=self.now,
                                     guardian_id=self.guardian_id)
        return application["application_id"]

    def _end_old_card(self, db: sqlite_utils.Database, new_card: dict[str, Any]) -> None:
        """Inside the issuance's transaction, before the new card's row is written."""
        # The account and the refund refer to the new card, whose row comes right after
        # this step: SQLite checks those references at commit (the pragma ends with it).
        db.execute("PRAGMA defer_foreign_keys = ON")
        card = lifecycle.card_row(db, self.old_card)
        before = CardState.from_row(card)
        after = lifecycle_rules.replace(before, self.now)
        new = new_card["card_number"]
        lifecycle.record_change(db, card, before, after, event="replaced", actor=self.actor, now=self.now,
                                details={"new_card": new, "old_card_presented": self.purse_balance_fen is not None,
                                         "purse_balance_fen": self.purse_balance_fen})
        self.account_no = ledger.move_account(db, from_card=self.old_card, to_card=new, now=self.now)
        if self.purse_balance_fen is None:  # not read: the clearing records tell, once the window has passed
            self.refund_basis = CLEARING
        elif self.purse_balance_fen:
            self.refund_basis = CHIP
        if self.refund_basis is not None:
            self.refund_due_at = lifecycle_rules.refund_due_at(self.now)
            db["purse_refunds"].insert({
                "old_card": self.old_card, "new_card": new, "amount_fen": self.purse_balance_fen or 0,
                "due_at": timestamp(self.refund_due_at), "paid_at": None, "txn_id": None,
                "basis": self.refund_basis, "adjusted_fen": 0,
            })


def _guardian(citizen_id: str, guardian_id: str | None, now: datetime) -> str | None:
    """The guardian replacing a minor's card (as the minor's application needed one); checked before any card is touched.

    A minor without one is refused here, before a reader is used; whether the guardian is
    the one the registry records is the application's rule (``domain.eligibility``).
    """
    age = issuance.parse_citizen_id(citizen_id).age_on(now.date())
    if guardian_id is None or not guardian_id.strip():
        if age < MINOR_UNDER_YEARS:
            raise RuleRefused("application.guardian_required",
                              f"the holder is {age}: under {MINOR_UNDER_YEARS} a guardian replaces the card "
                              "(give --guardian-id)", "--guardian-id")
        return None
    return issuance.parse_citizen_id(guardian_id, "--guardian-id").value


# ----------------------------------------------------------------------------- purse refunds


def refunds(world: World, *, now: datetime) -> list[dict[str, Any]]:
    """Every purse refund of the three regions, oldest due first, with its state at ``now``."""
    out = []
    for node in REGION_NODES:
        for row in world.region(node).query("SELECT * FROM purse_refunds ORDER BY due_at, old_card"):
            out.append(_refund_view(node, row, now))
    return sorted(out, key=lambda r: (r["due_at"], r["old_card"]))


def pay_due_refunds(world: World, *, operator: str, now: datetime) -> list[dict[str, Any]]:
    """Pay every refund of the operator's region whose clearing window has passed.

    Each is credited from the purse float to the holder's open account, with an event on
    the old card; posting is idempotent per old card, so paying twice pays once. A refund
    whose holder has no account that takes entries now (frozen while the new card is
    lost, closed) stays due and is reported ``held``.
    """
    node, staff = lookup.require_operator_anywhere(world, operator)
    operators.require_operator(world.region(node), staff["code"], roles=REFUND_ROLES)
    db = world.region(node)
    done = []
    with UnitOfWork(db) as uow:
        due = [row for row in uow.db.query("SELECT * FROM purse_refunds WHERE paid_at IS NULL ORDER BY due_at")
               if datetime.fromisoformat(row["due_at"]) <= now]
        for row in due:
            done.append(_pay(uow.db, node, row, staff["code"], now))
        for row in uow.db.query("SELECT * FROM purse_refunds WHERE paid_at IS NOT NULL AND basis = ? "
                                "ORDER BY due_at, old_card", [CLEARING]):
            adjusted = _adjust(uow.db, node, row, staff["code"], now)
            if adjusted is not None:
                done.append(adjusted)
        uow.commit()
    return done


def cleared_balance(db: sqlite_utils.Database, card_number: str) -> int:
    """The old card's purse as the clearing records leave it: confirmed loads less cleared purchases (fen).

    ``purse_shadow`` holds it per purse; a card never loaded nor used has none (0). A load
    still pending (its outcome never proved by the card) is not in it.
    """
    row = db.execute("SELECT coalesce(sum(expected_balance_fen), 0) FROM purse_shadow WHERE card_number = ?",
                     [card_number]).fetchone()
    return max(0, int(row[0]))


def _pay(db: sqlite_utils.Database, node: str, refund: dict[str, Any], operator: str, now: datetime) -> dict[str, Any]:
    old = refund["old_card"]
    holder = db.execute("SELECT citizen_id FROM cards WHERE card_number = ?", [old]).fetchone()[0]
    account = db.execute(
        "SELECT account_no, status FROM accounts WHERE kind = 'holder' AND citizen_id = ? AND status != 'closed'",
        [holder]).fetchone()
    if account is None or account[1] != "active":
        why = "the holder has no open account" if account is None else f"the holder's account is {account[1]}"
        return {**_refund_view(node, refund, now), "status": "held", "note": why}
    clearing = refund["basis"] == CLEARING
    amount = cleared_balance(db, old) if clearing else refund["amount_fen"]
    txn_id = f"PURSE-REFUND-{old}" if amount else None
    try:
        with UnitOfWork(db).step():
            if amount:
                ledger.ensure_internal_account(db, FLOAT_PURSE, "purse_float", now)
                ledger.post(db, txn_id=txn_id, entries=[(FLOAT_PURSE, -amount), (account[0], amount)],
                            kind="purse_refund", operator=operator, memo=f"purse balance of replaced card {old}"
                            + (" (from the clearing records)" if clearing else ""), now=now)
            db.execute("UPDATE purse_refunds SET paid_at = ?, txn_id = ?, amount_fen = ? WHERE old_card = ?",
                       [timestamp(now), txn_id, amount, old])
            lifecycle.record_event(db, old, event="purse_refunded", actor=lifecycle.Actor(operator), now=now,
                                   details={"amount_fen": amount, "txn_id": txn_id, "new_card": refund["new_card"],
                                            "basis": refund["basis"]})
    except RuleRefused as refused:  # this refund waits; the others are paid
        return {**_refund_view(node, refund, now), "status": "held", "note": refused.message}
    paid = {**refund, "paid_at": timestamp(now), "txn_id": txn_id, "amount_fen": amount}
    note = "nothing to refund: the clearing records leave the old purse empty" if clearing and not amount else None
    return {**_refund_view(node, paid, now), "account_no": account[0], "note": note}


def _adjust(db: sqlite_utils.Database, node: str, refund: dict[str, Any], operator: str,
            now: datetime) -> dict[str, Any] | None:
    """A refund from the clearing records, paid, against what they say now; None when they agree.

    A purchase the old card made offline and that cleared after the refund (or a load
    confirmed since) changed its balance: the difference is taken back from (or paid to)
    the holder's account, a correction of its own (``PURSE-REFUND-<card>-ADJ-<n>``), so
    the refunds plus the cards' balances still back the purse float. A holder whose
    account cannot give it now is listed ``held``; the next run tries again.
    """
    old = refund["old_card"]
    delta = cleared_balance(db, old) - refund["amount_fen"]
    if not delta:
        return None
    holder = db.execute("SELECT citizen_id FROM cards WHERE card_number = ?", [old]).fetchone()[0]
    account = db.execute(
        "SELECT account_no, status FROM accounts WHERE kind = 'holder' AND citizen_id = ? AND status != 'closed'",
        [holder]).fetchone()
    if account is None:
        return {**_refund_view(node, refund, now), "status": "held",
                "note": f"the clearing records changed the old purse by {delta} fen; the holder has no open account"}
    *_, earlier = ledger.totals_of_txns(db, f"PURSE-REFUND-{old}-ADJ-")
    txn_id = f"PURSE-REFUND-{old}-ADJ-{earlier + 1}"
    try:
        with UnitOfWork(db).step():
            ledger.ensure_internal_account(db, FLOAT_PURSE, "purse_float", now)
            ledger.post(db, txn_id=txn_id, entries=[(FLOAT_PURSE, -delta), (account[0], delta)],
                        kind="purse_refund_adjustment", operator=operator,
                        memo=f"purse refund of replaced card {old}: records cleared after it", now=now)
            db.execute("UPDATE purse_refunds SET amount_fen = amount_fen + ?, adjusted_fen = adjusted_fen + ? "
                       "WHERE old_card = ?", [delta, delta, old])
            lifecycle.record_event(db, old, event="purse_refund_adjusted", actor=lifecycle.Actor(operator), now=now,
                                   details={"amount_fen": delta, "txn_id": txn_id, "new_card": refund["new_card"]})
    except RuleRefused as refused:
        return {**_refund_view(node, refund, now), "status": "held", "note": refused.message}
    row = {**refund, "amount_fen": refund["amount_fen"] + delta, "adjusted_fen": refund["adjusted_fen"] + delta}
    return {**_refund_view(node, row, now), "status": "adjusted", "account_no": account[0],
            "note": f"{'taken back' if delta < 0 else 'paid'}: {abs(delta)} fen cleared after the refund"}


def _refund_view(node: str, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One refund for ``card refunds --json``."""
    if row["paid_at"]:
        status = "paid"
    elif datetime.fromisoformat(row["due_at"]) <= now:
        status = "due"
    else:
        status = "waiting"
    return {
        "old_card": row["old_card"],
        "new_card": row["new_card"],
        "node": node,
        "basis": row["basis"],
        "amount_fen": row["amount_fen"],
        "adjusted_fen": row["adjusted_fen"],
        "due_at": row["due_at"],
        "status": status,
        "paid_at": row["paid_at"],
        "txn_id": row["txn_id"],
        "account_no": None,
        "note": ("the old card was not read: the amount is taken from the clearing records when due"
                 if row["basis"] == CLEARING and not row["paid_at"] else None),
    }
