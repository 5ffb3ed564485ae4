"""Purse loads (圈存) at a counter: ``sbcard transit load`` and ``transit recover`` over HTTP.

A load is a staff act: a signed-in ``counter`` or ``supervisor`` at an outlet of their own
region's service (their own outlet when the account has one), recorded as theirs. The
money comes from the holder's financial account (``PurseHost`` of
``sbcard.services.transit.purse_host``, found by the card's issuer: a Tianjin card at a
Beijing counter is loaded from its Tianjin account — in a process that serves one region, by the
issuer's process over HTTP, each step asked straight: docs/api/nodes.md), and the load terminal
(``terminals.apps.loader``) drives the card on the counter's reader: the card's own
emulated file unless the body names one (``sbcard.api.readers``). The reader must hold the
card the path names: another card is refused before any money moves.

A card torn out of the reader mid-load is not an error to retry blindly: the load may be
pending (the account debited, the card perhaps credited). The answer is 409 ``load.torn``,
kept for the Idempotency-Key like any refusal, so a retry never loads a second time (any other
failure once the account was debited is 409 ``load.unfinished``, kept the same way); the
card presented again (``…/purse/recover``, or the next load, which settles first) ends the
pending load from what the card shows: credited, or the money back in the account.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import body_fields
from sbcard.api.readers import checked_spec, file_spec, reader_for
from sbcard.chip.reader import CardIOError
from sbcard.domain.errors import InvalidInput, RuleRefused, SbcardError
from sbcard.domain.outlets import OutletCode
from sbcard.domain.purse_load import MAX_BALANCE_FEN, CardLoadEvidence, LoadGrant, LoadRequest, PendingLoad
from sbcard.domain.staff import COUNTER, SUPERVISOR
from sbcard.services.cards import lifecycle
from sbcard.services.exchange.lookup import node_of_outlet
from sbcard.services.transit.purse_host import PurseHost
from sbcard.store.world import World
from terminals.apps import loader

router = APIRouter(tags=["purse"])

COUNTER_ACTS = (COUNTER, SUPERVISOR)


class Load(BaseModel):
    amount_fen: StrictInt = Field(gt=0, le=MAX_BALANCE_FEN,
                                  description=f"Integer fen, 1 to {MAX_BALANCE_FEN} (the purse's maximum, "
                                              "¥1,000.00, bounds the balance after the load too).")
    outlet: str | None = Field(default=None, max_length=20,
                               description="The outlet where it is done (default: the caller's own).")
    reader: str | None = Field(default=None, max_length=1000,
                               description="emulator:<path>[?tear=N] of the card on the counter's reader "
                                           "(default: the card's own virtual file).")


class Presented(BaseModel):
    outlet: str | None = Field(default=None, max_length=20, description="Default: the caller's own outlet.")
    reader: str | None = Field(default=None, max_length=1000, description="Default: the card's own virtual file.")


class _ThisCard:
    """``PurseHost`` for the one card the path names: a card of another holder in the reader is refused
    at the terminal's first question to the host, before anything is settled or debited."""

    def __init__(self, host: PurseHost, app_serial: str, card_number: str) -> None:
        self.host, self.app_serial, self.card_number = host, app_serial, card_number
        self.begun: LoadGrant | None = None  # the host debited the account and answered MAC2

    def _check(self, app_serial: str) -> None:
        if app_serial != self.app_serial:
            raise RuleRefused("reader.other_card", f"the card in the reader is not card {self.card_number} "
                              f"(its application serial is {app_serial})", "reader")

    def pending_loads(self, app_serial: str) -> list[PendingLoad]:
        self._check(app_serial)
        return self.host.pending_loads(app_serial)

    def settle(self, evidence: CardLoadEvidence) -> list[dict[str, Any]]:
        self._check(evidence.app_serial)
        return self.host.settle(evidence)

    def begin_load(self, request: LoadRequest) -> LoadGrant:
        self._check(request.app_serial)
        self.begun = self.host.begin_load(request)
        return self.begun

    def confirm_load(self, app_serial: str, online_counter: int, tac: bytes) -> dict[str, Any]:
        self._check(app_serial)
        return self.host.confirm_load(app_serial, online_counter, tac)


def _outlet(call: Call, given: str | None) -> str:
    outlet = ((given or "").strip() or call.principal.outlet or "").upper()
    if not outlet:
        raise InvalidInput("outlet.missing", "a load is done at an outlet: give `outlet` (your account has none)",
                           "outlet")
    call.require_scope(node=node_of_outlet(outlet), outlet=outlet)
    return outlet


def _terminal_no(outlet: str) -> bytes:
    """The counter's load terminal: the outlet's district ‖ number ‖ 0001 (as ``transit load --outlet``)."""
    code = OutletCode.parse(outlet)
    return bytes.fromhex(f"{code.district}{code.number}0001")


def _card(world: World, card_number: str, given: str | None) -> tuple[dict[str, Any], str]:
    """The card's row and the reader's spec: the body's (checked), else the card's own virtual file."""
    _, card = lifecycle.locate_card(world, lifecycle.parse_card_number(card_number, "card_number"), "card_number")
    if not card.get("app_serial"):
        raise RuleRefused("card.no_purse", f"card {card['card_number']} has no T-Union purse", "card_number")
    if given:
        return card, checked_spec(world, given)
    path = world.paths.resolve(card["virtual_path"]) if card.get("virtual_path") else None
    if not path:
        raise InvalidInput("reader.missing", "the world keeps no virtual card for this card: give `reader`", "reader")
    return card, file_spec(str(path))


_PRESENT_AGAIN = ("present card {card} again (POST /api/v1/cards/{card}/purse/recover, or the next load settles "
                  "it first); a retry of this request does not load again")


def _torn(exc: CardIOError, card_number: str) -> RuleRefused:
    return RuleRefused("load.torn", f"{exc}: a load may be pending; " + _PRESENT_AGAIN.format(card=card_number),
                       "reader")


def _unfinished(exc: Exception, grant: LoadGrant) -> RuleRefused:
    """Anything that failed once the host had debited the account (the store busy past its retries, a crash of the
    confirmation): the load is pending, and a retry must not begin a second one."""
    return RuleRefused("load.unfinished", f"load {grant.load_id} was begun (the account debited) but not "
                       f"confirmed ({type(exc).__name__}); " + _PRESENT_AGAIN.format(card=grant.card_number),
                       "reader")


@router.post("/cards/{card_number}/purse/load",
             summary="圈存: move an amount from the card's financial account onto its purse, at a counter")
def load(card_number: str, body: Load, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    with body_fields(amount="amount_fen"):
        outlet = _outlet(call, body.outlet)

        def do(world: World) -> dict[str, Any]:
            card, spec = _card(world, card_number, body.reader)
            host = PurseHost(world, operator=call.operator, outlet=outlet, now=call.now)
            number = _terminal_no(outlet)
            guarded = _ThisCard(host, card["app_serial"], card["card_number"])
            try:
                with reader_for(spec) as reader:
                    outcome = loader.load(reader, guarded, body.amount_fen, number)
            except CardIOError as exc:
                raise _torn(exc, card["card_number"]) from None
            except Exception as exc:
                if guarded.begun is None or isinstance(exc, SbcardError):
                    raise
                raise _unfinished(exc, guarded.begun) from exc
            return outcome.to_dict(paid="account", terminal_no=number, corrections=host.corrections)

        return call.write(do, payload=body)


@router.post("/cards/{card_number}/purse/recover",
             summary="Settle the card's loads left pending by a tear: confirmed if the card credited them, "
                     "else the money back in the account")
def recover(card_number: str, body: Presented | None = None, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    body = body or Presented()
    with body_fields():
        outlet = _outlet(call, body.outlet)

        def do(world: World) -> dict[str, Any]:
            card, spec = _card(world, card_number, body.reader)
            host = PurseHost(world, operator=call.operator, outlet=outlet, now=call.now)
            try:
                with reader_for(spec) as reader:
                    outcome = loader.recover(reader, _ThisCard(host, card["app_serial"], card["card_number"]),
                                             _terminal_no(outlet))
            except CardIOError as exc:
                raise _torn(exc, card["card_number"]) from None
            return {"app_serial": outcome.app_serial, "balance_fen": outcome.balance_fen,
                    "settled": outcome.settled, "apdus": outcome.apdus}

        return call.write(do, payload=body)
