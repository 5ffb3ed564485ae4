"""Activation (启用): the holder sets their PIN and the card's financial account opens.

``ActivationDesk`` is the issuing region's side of ``card activate``, the host port the
counter terminal calls (``counter.ActivationHost``). For the card in the reader — it must
be the card asked for, with the 卡识别码 on record — it opens one transaction on the
issuing region, opens the holder's account in that region's ledger (or keeps the one a
replaced card handed on), and gives the counter the card's keys; the counter sets the
PIN under the card maintenance key; only then is the card recorded active, with its
event, an audit entry and the hub's directory message. A PIN write that fails leaves
the card ``issued`` and no account open: activation can simply be run again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from sbcard.chip.keys import CardKeys
from sbcard.chip.reading import CardSnapshot
from sbcard.domain import lifecycle
from sbcard.domain.errors import RuleRefused
from sbcard.domain.lifecycle import CardState
from sbcard.domain.bank_account import BankAccount
from sbcard.services.exchange import lookup, outbox
from sbcard.services.outlets import audit, operators
from sbcard.services.cards import keys
from sbcard.services.accounts import ledger
from sbcard.services.cards.issuance import COUNTER_ROLES
from sbcard.services.cards.lifecycle import Actor, card_row, locate_card, parse_card_number, record_change
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import World


@attrs.define
class ActivationOrder:
    """The card's keys, held open until ``record`` (``counter.ActivationOrder``)."""

    keys: CardKeys
    _record: Callable[[], dict[str, Any]]

    def record(self) -> dict[str, Any]:
        return self._record()


class ActivationDesk:
    """The issuing region's side of activating one card (``counter.ActivationHost``).

    Made before the reader is touched: an unknown card or operator, or a card that is not
    ``issued``, is refused first. The outlet defaults to the one that issued the card.
    """

    def __init__(
        self, world: World, card_number: str, *, operator: str, now: dt.datetime, outlet: str | None = None
    ) -> None:
        self.world, self.now = world, now
        number = parse_card_number(card_number)
        self.node, card = locate_card(world, number)
        lifecycle.activate(CardState.from_row(card), now)  # refuses a card that is not issued
        self.card_number = number
        self.outlet = lookup.get_outlet(world, outlet)["code"] if outlet else card["outlet"]
        self.operator = operators.require_operator(
            world.region(lookup.node_of_outlet(self.outlet)), operator, roles=COUNTER_ROLES
        )["code"]
        self.virtual_path: str | None = world.paths.resolve(card["virtual_path"])
        self.activated: dict[str, Any] | None = None

    @contextmanager
    def activation(self, snapshot: CardSnapshot) -> Iterator[ActivationOrder]:
        """Open the account and hand out the card's keys; record the card active on ``record``."""
        with UnitOfWork(self.world.region(self.node)) as uow:
            card = card_row(uow.db, self.card_number)  # again, under the write lock
            before = CardState.from_row(card)
            after = lifecycle.activate(before, self.now)
            if (snapshot.card_number, snapshot.card_id_code) != (card["card_number"], card["card_id_code"]):
                raise RuleRefused(
                    "card.wrong_card",
                    f"the card in the reader is {snapshot.card_number or 'not a card of ours'}, not {self.card_number}",
                    "--reader",
                )
            account = ledger.account_of_card(uow.db, self.card_number) or ledger.open_holder_account(
                uow.db, citizen_id=card["citizen_id"], card_number=self.card_number, node=self.node, now=self.now
            )
            actor = Actor(self.operator, self.outlet, None)

            def record() -> dict[str, Any]:
                details = {"account_no": BankAccount(account).masked()}
                record_change(uow.db, card, before, after, event="activated", actor=actor, now=self.now,
                                        details=details)
                audit.record(uow.db, at=self.now, operator=self.operator, outlet=self.outlet, action="card.activate",
                             subject=self.card_number, details=details)
                uow.finish()
                self.activated = {
                    "card_number": self.card_number,
                    "status": after.status.value,
                    "region": card["card_id_code"][:6],
                    "account_no": account,
                    "activated_at": self.now.isoformat(),
                    "operator": self.operator,
                    "outlet": self.outlet,
                }
                return self.activated

            yield ActivationOrder(keys.keys_for_card(uow.db, card), record)
        if self.activated is not None:
            outbox.deliver_pending(self.world, self.now)
