"""A card's life events: loss (挂失) and its confirmation or lapse, unblocking (解挂), cancellation (注销).

Each event is one transaction on the card's issuing region: the card's new state, the
event saying who, where, when and why, and the messages that carry the change to the
hub (its directory status and, when the card moves on or off it, the blacklist) are
written together; the messages are delivered after commit (``sbcard.services.exchange.outbox``).
A refused event writes nothing anywhere. Replacement lives in ``services.cards.replacement``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import sqlite_utils

from sbcard.domain import lifecycle
from sbcard.domain.card_number import CardNumber
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.lifecycle import CardState, Channel
from sbcard.domain.money import format_fen
from sbcard.domain.regions import NODE_NAMES
from sbcard.services.exchange import lookup, outbox
from sbcard.services.exchange import directory as hub_directory
from sbcard.services.accounts import ledger
from sbcard.services.outlets import operators
from sbcard.store import rows
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World, node_of_db

STAFF_ROLES = {"counter", "supervisor"}
SYSTEM = "system"  # the operator of changes nobody made: a temporary loss lapsing


@attrs.frozen
class Actor:
    """Who makes a change, where and why: what every card event records."""

    operator: str
    outlet: str | None = None
    reason: str | None = None


LAPSE = Actor(SYSTEM, None, "temporary loss not confirmed at a counter within 5 days")


# ----------------------------------------------------------------------------- the events


def report_lost(
    world: World,
    *,
    card_number: str,
    channel: str,
    operator: str,
    outlet: str | None = None,
    reason: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """挂失: by phone or app a temporary loss, lapsing after 5 days; at a counter a formal one."""
    channel = _channel(channel)
    if outlet is not None and channel is not Channel.COUNTER:
        raise InvalidInput(
            "loss.outlet", f"a loss reported by {channel.value} is not taken at an outlet; "
            "leave out --outlet, or report it at the counter (--channel counter)", "--outlet")
    return change_card(
        world, card_number, operator=operator, outlet=outlet, reason=reason, now=now,
        transition=lambda state: lifecycle.report_lost(state, channel, now), event="reported_lost",
        details={"channel": channel.value},
    )


def _state_event(
    step: Callable[[CardState, datetime], CardState], event: str, doc: str
) -> Callable[..., dict[str, Any]]:
    """An event that only moves the card's state by ``step`` (and what follows from the new state)."""

    def run(
        world: World, *, card_number: str, operator: str, outlet: str | None = None, reason: str | None = None,
        now: datetime,
    ) -> dict[str, Any]:
        return change_card(
            world, card_number, operator=operator, outlet=outlet, reason=reason, now=now,
            transition=lambda state: step(state, now), event=event,
        )

    run.__name__ = run.__qualname__ = step.__name__
    run.__doc__ = doc
    return run


confirm_loss = _state_event(lifecycle.confirm_loss, "loss_confirmed",
                            "A temporary loss made formal at a counter before it lapses.")
unblock = _state_event(lifecycle.unblock, "unblocked", "解挂: the card is found; it and its financial account work again.")


def cancel(
    world: World, *, card_number: str, operator: str, reason: str, outlet: str | None = None, now: datetime,
) -> dict[str, Any]:
    """注销: the account's balance is paid out in cash at ``outlet``, the account closed, the card ended.

    Refused while a purse refund for the holder is still to come: an account that waits
    for money must not be closed.
    """
    if not (reason or "").strip():
        raise InvalidInput("cancel.reason", "say why the card is cancelled (e.g. the holder died)", "--reason")

    def pay_out_and_close(db: sqlite_utils.Database, card: dict[str, Any], actor: Actor) -> dict[str, Any]:
        _refuse_while_refund_pending(db, card)
        account = ledger.account_of_card(db, card["card_number"])
        if account is None:
            return {"account_no": None, "payout_fen": 0}
        if ledger.get_account(db, account)["status"] == "frozen":  # the card was lost
            ledger.set_frozen(db, account, frozen=False, now=now)
        payout = ledger.balance(db, account)
        if payout:
            _require_cash_desk(world, actor, payout, node_of_db(db))
            ledger.pay_out(db, account_no=account, outlet=actor.outlet, amount_fen=payout,
                           txn_id=f"CANCEL-{card['card_number']}", operator=actor.operator,
                           memo=f"balance paid out on cancelling card {card['card_number']}", now=now)
        ledger.close_account(db, account, now)
        return {"account_no": account, "payout_fen": payout}

    return change_card(
        world, card_number, operator=operator, outlet=outlet, reason=reason.strip(), now=now,
        transition=lambda state: lifecycle.cancel(state, now), event="cancelled", also=pay_out_and_close,
    )


def lapse_temporary_losses(world: World, *, now: datetime) -> list[dict[str, Any]]:
    """Write the lapse of every temporary loss not confirmed in time; the cards are active again.

    The cards were already active in effect (``CardState.effective``); this brings their
    records, their accounts, the hub's directory and the blacklist up to date. Run it
    daily; running it twice changes nothing the second time.
    """
    lapsed: list[dict[str, Any]] = []
    for node in REGION_NODES:
        with UnitOfWork(world.region(node)) as uow:
            for card in uow.db.query("SELECT * FROM cards WHERE status = 'lost' AND loss_kind = 'temporary'"):
                state = CardState.from_row(card)
                if state.lapsed(now):
                    record_lapse(uow.db, card, now)
                    lapsed.append(_view(card["card_number"], state.effective(now), "loss_lapsed", LAPSE,
                                        state.loss_expires_at))
            uow.commit()
    outbox.deliver_pending(world, now)
    return lapsed


# ----------------------------------------------------------------------------- the mechanics


def change_card(
    world: World,
    card_number: str,
    *,
    operator: str,
    outlet: str | None,
    reason: str | None,
    now: datetime,
    transition: Callable[[CardState], CardState],
    event: str,
    details: dict[str, Any] | None = None,
    also: Callable[[sqlite_utils.Database, dict[str, Any], Actor], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run one staff event on a card: check who and where, apply ``transition``, record it all.

    ``also`` does the event's other writes in the same transaction (a cancellation's
    payout) and returns what it did, for the event's details and the answer.
    """
    number = parse_card_number(card_number)
    node, _ = locate_card(world, number)
    actor = authorise(world, operator, outlet, reason, card_node=node)
    with UnitOfWork(world.region(node)) as uow:
        card = card_row(uow.db, number)  # read again under the write lock
        before = CardState.from_row(card)
        after = transition(before)
        done = also(uow.db, card, actor) if also else {}
        record_change(uow.db, card, before, after, event=event, actor=actor, now=now,
                      details={**(details or {}), **done})
        uow.commit()
    outbox.deliver_pending(world, now)
    return {**_view(number, after, event, actor, now), **done}


def record_change(
    db: sqlite_utils.Database,
    card: dict[str, Any],
    before: CardState,
    after: CardState,
    *,
    event: str,
    actor: Actor,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Write a card's new state, its event and the hub's messages, inside the caller's transaction.

    A temporary loss that lapsed unrecorded is written first, as its own event at the
    moment it lapsed, so that the history tells what happened in order.
    """
    if before.lapsed(now):
        _lapse_event(db, before)
    event_id = record_event(db, card["card_number"], event=event, actor=actor, now=now, details=details)
    _settle(db, card, before, after, event, event_id, now)


def record_lapse(db: sqlite_utils.Database, card: dict[str, Any], now: datetime) -> None:
    """Write the lapse of the card's temporary loss, inside the caller's transaction."""
    state = CardState.from_row(card)
    _settle(db, card, state, state.effective(now), "loss_lapsed", _lapse_event(db, state), now)


def record_event(db: sqlite_utils.Database, card_number: str, *, event: str, actor: Actor, now: datetime,
                 details: dict[str, Any] | None = None) -> int:
    """Append one event to the card's history (append-only: a correction is a new event)."""
    return rows.insert(db, "card_events", {
        "card_number": card_number,
        "at": timestamp(now),
        "event": event,
        "operator": actor.operator,
        "outlet": actor.outlet,
        "reason": actor.reason,
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True) if details else None,
    })


def _lapse_event(db: sqlite_utils.Database, lost: CardState) -> int:
    assert lost.loss_expires_at is not None
    return record_event(db, lost.card_number, event="loss_lapsed", actor=LAPSE, now=lost.loss_expires_at)


def _settle(db: sqlite_utils.Database, card: dict[str, Any], before: CardState, after: CardState, event: str,
            event_id: int, now: datetime) -> None:
    """The card's row, its account and the hub's messages follow the new state."""
    rows.update(db, "cards", "card_number", card["card_number"], {**after.to_row(), "updated_at": timestamp(now)})
    _freeze_account_while_lost(db, card["card_number"], after, now)
    _tell_hub(db, card, before, after, event, event_id, now)


def _freeze_account_while_lost(db: sqlite_utils.Database, card_number: str, state: CardState, now: datetime) -> None:
    """A lost card's financial account takes no entries either way until the card is found or replaced."""
    account = ledger.account_of_card(db, card_number)
    if account is None:
        return
    frozen = ledger.get_account(db, account)["status"] == "frozen"
    if frozen != (state.status is lifecycle.Status.LOST):
        ledger.set_frozen(db, account, frozen=not frozen, now=now)


def _tell_hub(db: sqlite_utils.Database, card: dict[str, Any], before: CardState, after: CardState, event: str,
              event_id: int, now: datetime) -> None:
    """The directory learns the status; the blacklist learns the card when it goes on or off."""
    number = card["card_number"]
    outbox.enqueue(
        db, to_node=HUB, kind="card.status", key=f"card.status/{number}/{event_id}",
        payload=hub_directory.card_status_message(card, after.status.value, now),
        now=now,
    )
    change = lifecycle.blacklist_change(before, after)
    if change == "remove" and db.execute("SELECT 1 FROM card_events WHERE card_number = ? AND event = "
                                         "'purse_blocked'", [number]).fetchone():
        change = None  # the issuer blocked its purse (services.transit.purse_integrity): found again, it stays listed
    if change is not None:
        outbox.enqueue(
            db, to_node=HUB, kind=f"blacklist.{change}", key=f"blacklist.{change}/{number}/{event_id}",
            payload={"card_number": number, "reason": event},
            now=now,
        )


def authorise(world: World, operator: str, outlet: str | None, reason: str | None, *, card_node: str) -> Actor:
    """The operator, checked to exist with a counter role where they act; the outlet, checked to exist.

    An operator works at the outlets of their own region; without an outlet (the 12333
    call centre, say) they may act from any region.
    """
    if outlet is not None:
        outlet = lookup.get_outlet(world, outlet)["code"]
        home = lookup.node_of_outlet(outlet)
    else:
        home, _ = lookup.require_operator_anywhere(world, operator)
    staff = operators.require_operator(world.region(home), operator, roles=STAFF_ROLES)
    return Actor(staff["code"], outlet, (reason or "").strip() or None)


def parse_card_number(text: str, field: str = lifecycle.FIELD) -> str:
    try:
        return CardNumber.parse(text).value
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, field) from None


def locate_card(world: World, card_number: str, field: str = lifecycle.FIELD) -> tuple[str, dict[str, Any]]:
    """The issuing region's node and the card's row; NotFound when no region issued it."""
    found = lookup.find_card(world, card_number)
    if found is None:
        raise NotFound("card.unknown", f"no card {card_number} in Beijing, Tianjin or Hebei", field)
    return found


def card_row(db: sqlite_utils.Database, card_number: str) -> dict[str, Any]:
    row = rows.get(db, "cards", "card_number", card_number)
    if row is None:
        raise NotFound("card.unknown", f"no card {card_number}", lifecycle.FIELD)
    return row


def _channel(text: str) -> Channel:
    try:
        return Channel(text)
    except ValueError:
        choices = ", ".join(c.value for c in Channel)
        raise InvalidInput("loss.channel", f"{text!r} is not a channel ({choices})", "--channel") from None


def _require_cash_desk(world: World, actor: Actor, amount: int, card_node: str) -> None:
    """Cash changes hands at a bank-branch outlet (社银合作) of the region keeping the account, as deposits do."""
    outlet = lookup.get_outlet(world, actor.outlet) if actor.outlet else None
    if outlet is not None and outlet["kind"] == "bank_branch" and outlet["node"] == card_node:
        return
    where = NODE_NAMES[card_node]
    raise RuleRefused(
        "cancel.cash_outlet", f"the account holds {format_fen(amount)}, paid out in cash at one of {where}'s "
        f"bank-branch outlets (社银合作): " + (f"{outlet['code']} is not one" if outlet else "give it with --outlet"),
        "--outlet")


def _refuse_while_refund_pending(db: sqlite_utils.Database, card: dict[str, Any]) -> None:
    pending = db.execute(
        "SELECT r.old_card, r.amount_fen, r.due_at, r.basis FROM purse_refunds r JOIN cards c "
        "ON c.card_number = r.old_card WHERE c.citizen_id = ? AND r.paid_at IS NULL", [card["citizen_id"]],
    ).fetchone()
    if pending is not None:
        old, amount, due, basis = pending
        what = "(its amount from the clearing records)" if basis == "clearing" else f"of {format_fen(amount)}"
        raise RuleRefused(
            "cancel.refund_pending",
            f"the purse refund {what} from replaced card {old} is due {due[:10]}; "
            "cancel after it is paid into the account", lifecycle.FIELD)


def _view(number: str, state: CardState, event: str, actor: Actor, at: datetime) -> dict[str, Any]:
    """The answer of every life event (``--json``)."""
    return {
        "card_number": number,
        "status": state.status.value,
        "loss_kind": state.loss_kind.value if state.loss_kind else None,
        "loss_expires_at": state.loss_expires_at.isoformat() if state.loss_expires_at else None,
        "event": event,
        "at": at.isoformat(),
        "operator": actor.operator,
        "outlet": actor.outlet,
        "reason": actor.reason,
    }

