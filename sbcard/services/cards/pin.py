"""PIN change and reset: the chip checks and keeps the PIN; the service says who may ask, and records it.

The PIN lives only on the card: the holder changes it with the old one (CHANGE REFERENCE
DATA), and three wrong tries block it on the chip. Only the issuer can lift the block,
with the card maintenance key (RESET RETRY COUNTER), at a counter where staff have
checked the holder's identity. As with issuance, the card is written inside the
service's transaction: the event is recorded only once the card has done its part, so a
card that refuses, or is pulled out, leaves nothing recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import attrs
import sqlite_utils

from sbcard.chip import profile
from sbcard.chip.commands import encode_pin
from sbcard.chip.keys import CardKeys
from sbcard.chip.reading import CardSnapshot
from sbcard.domain import lifecycle as lifecycle_rules
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.lifecycle import CardState
from sbcard.domain.pin import check_new_pin
from sbcard.services.outlets import audit
from sbcard.services.cards import keys, lifecycle
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import World

HOLDER = "holder"  # the operator of what the holder does alone: no staff is involved


@attrs.define
class PinOrder:
    """One PIN operation on one card, held open until ``record`` (nothing kept without it)."""

    card_number: str
    card_id_code: str
    virtual_path: str | None
    keys: CardKeys | None  # for a reset: the maintenance key opens RESET RETRY COUNTER
    _record: Callable[[], dict[str, Any]]

    def check_card(self, snapshot: CardSnapshot) -> None:
        """The card in the reader must be the card named."""
        if (snapshot.card_number, snapshot.card_id_code) != (self.card_number, self.card_id_code):
            raise RuleRefused("card.wrong_card", f"the card in the reader is "
                              f"{snapshot.card_number or 'not a personalised card'}, not {self.card_number}",
                              "--reader")

    def record(self) -> dict[str, Any]:
        """The card has done it: record the event (and commit)."""
        return self._record()


@contextmanager
def pin_change(world: World, *, card_number: str, old_pin: str, new_pin: str, now: datetime) -> Iterator[PinOrder]:
    """The holder changes their PIN; the card checks the old one."""
    number = lifecycle.parse_card_number(card_number)
    node, _ = lifecycle.locate_card(world, number)
    with UnitOfWork(world.region(node)) as uow:
        card = _active_card(uow.db, number, now)
        _check_new(new_pin, card, old_pin=old_pin)
        actor = lifecycle.Actor(HOLDER)

        def record() -> dict[str, Any]:
            lifecycle.record_event(uow.db, number, event="pin_changed", actor=actor, now=now)
            uow.commit()
            return _view(number, "pin_changed", actor, now)

        yield PinOrder(number, card["card_id_code"], world.paths.resolve(card["virtual_path"]), None, record)


@contextmanager
def pin_reset(
    world: World, *, card_number: str, citizen_id: str, new_pin: str, operator: str, outlet: str | None = None,
    now: datetime,
) -> Iterator[PinOrder]:
    """Staff reset the PIN (and lift its block) for the holder, whose citizen ID they have checked."""
    number = lifecycle.parse_card_number(card_number)
    node, _ = lifecycle.locate_card(world, number)
    try:
        presented = CitizenId.parse(citizen_id).value
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, "--citizen-id") from None
    actor = lifecycle.authorise(world, operator, outlet, "identity checked", card_node=node)
    with UnitOfWork(world.region(node)) as uow:
        card = _active_card(uow.db, number, now)
        if presented != card["citizen_id"]:
            raise RuleRefused("pin.identity", f"the citizen ID given is not that of the holder of card {number}: "
                              "the PIN is reset only for the holder", "--citizen-id")
        _check_new(new_pin, card)

        def record() -> dict[str, Any]:
            lifecycle.record_event(uow.db, number, event="pin_reset", actor=actor, now=now,
                                   details={"identity": "citizen_id"})
            audit.record(uow.db, at=now, operator=actor.operator, outlet=actor.outlet, action="card.pin_reset",
                         subject=number, reason=actor.reason)
            uow.commit()
            return _view(number, "pin_reset", actor, now)

        yield PinOrder(number, card["card_id_code"], world.paths.resolve(card["virtual_path"]), keys.keys_for_card(uow.db, card), record)


def record_pin_blocked(world: World, *, card_number: str, now: datetime) -> None:
    """The third wrong PIN blocked the PIN on the chip: the counter will want to know when."""
    number = lifecycle.parse_card_number(card_number)
    node, _ = lifecycle.locate_card(world, number)
    with UnitOfWork(world.region(node)) as uow:
        lifecycle.record_event(uow.db, number, event="pin_blocked", actor=lifecycle.Actor(HOLDER, None,
                               "three wrong PINs"), now=now)
        uow.commit()


def _active_card(db: sqlite_utils.Database, number: str, now: datetime) -> dict[str, Any]:
    """The card's row, if it is active: a lost, replaced or cancelled card's PIN is not touched."""
    card = lifecycle.card_row(db, number)
    state = CardState.from_row(card).effective(now)
    if state.status is not lifecycle_rules.Status.ACTIVE:
        raise RuleRefused(f"card.{state.status.value}", f"card {number} is {state.describe()}; "
                          "only an active card's PIN can be changed or reset", lifecycle_rules.FIELD)
    return card


def _check_new(new_pin: str, card: dict[str, Any], *, old_pin: str | None = None) -> None:
    birth_date: date = CitizenId(card["citizen_id"]).birth_date
    check_new_pin(new_pin, birth_date=birth_date, field="--new-pin")
    if old_pin is not None:
        encode_pin(old_pin, "--old-pin")
    if old_pin is not None and new_pin == old_pin:
        raise InvalidInput("pin.unchanged", "the new PIN is the old one", "--new-pin")


def _view(number: str, event: str, actor: lifecycle.Actor, now: datetime) -> dict[str, Any]:
    """``card pin change|reset --json``."""
    return {"card_number": number, "event": event, "at": now.isoformat(), "operator": actor.operator,
            "outlet": actor.outlet, "tries_left": profile.PIN_TRIES}
