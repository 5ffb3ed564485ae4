"""Issuance and the card's life at a counter: apply, issue on a reader, activate, show, lose, unblock,
replace, cancel, reset the PIN (``sbcard card …`` over HTTP, the same use cases and ``--json`` keys).

The operator of every act is the session's. Counter acts are for ``counter`` and
``supervisor`` accounts; auditors read. An act done at an outlet is in the caller's scope
only at their own region's outlets, and only at their own outlet when the account has
one; the outlet defaults to the account's. The card in the reader is one of the world's
emulated cards (``sbcard.api.readers``): the next blank of the outlet's stock unless the
body names one.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import body_fields
from sbcard.api.reads import require_read_scope
from sbcard.api.readers import checked_spec, chip_is_blank, file_spec, reader_for
from sbcard.domain.errors import InvalidInput
from sbcard.domain.masking import mask_card_holder, mask_middle
from sbcard.domain.money import format_fen
from sbcard.domain.pin import check_new_pin
from sbcard.domain.staff import AUDITOR, COUNTER, SUPERVISOR
from sbcard.services.cards import card_view, issuance, lifecycle
from sbcard.services.cards import pin as pins
from sbcard.services.cards.activation import ActivationDesk
from sbcard.services.cards.issuance import IssuanceDesk
from sbcard.services.cards.replacement import Replacement
from sbcard.services.exchange.lookup import node_of_outlet
from sbcard.services.outlets import stock
from sbcard.services.people.registry import record_personal_data_shown
from sbcard.store.world import World
from terminals.apps import counter

router = APIRouter(tags=["cards"])

COUNTER_ACTS = (COUNTER, SUPERVISOR)
READERS = (COUNTER, SUPERVISOR, AUDITOR)
APPLICATION_STATUSES = Literal["applied", "in_production", "mailed", "delivered", "issued", "withdrawn"]


# ----------------------------------------------------------------------------- bodies


class Application(BaseModel):
    citizen_id: str = Field(max_length=40, description="The applicant's citizen ID (社会保障号码).")
    outlet: str | None = Field(default=None, max_length=20,
                               description="The outlet applied at (default: the caller's own outlet).")
    online: bool = Field(default=False, description="Made centrally and mailed to `address`.")
    address: str | None = Field(default=None, max_length=200, description="Delivery address of an online application.")
    guardian_id: str | None = Field(default=None, max_length=40, description="The guardian applying for a minor.")


class ApplicationStep(BaseModel):
    status: Literal["in_production", "mailed", "delivered", "withdrawn"]


class OnReader(BaseModel):
    reader: str | None = Field(default=None, max_length=1000,
                               description="emulator:<path> of a blank of the outlet's stock (default: the next one).")
    chip_serial: str | None = Field(default=None, max_length=40,
                                    description="The blank of the outlet's stock to use, by its chip serial.")


class Activation(BaseModel):
    pin: str = Field(max_length=12, repr=False, description="The holder's new PIN (6 digits; never kept or logged).")
    outlet: str | None = Field(default=None, max_length=20,
                               description="Where (default: the caller's outlet, else the card's issuing outlet).")
    reader: str | None = Field(default=None, max_length=1000, description="Default: the card's own virtual file.")


class Event(BaseModel):
    outlet: str | None = Field(default=None, max_length=20, description="Default: the caller's own outlet.")
    reason: str | None = Field(default=None, max_length=200)


class Loss(Event):
    channel: Literal["counter", "phone", "app"] = Field(
        default="counter", description="counter: a formal loss; phone or app: temporary, lapses after 5 days.")


class Cancellation(Event):
    reason: str = Field(max_length=200, description="Why the card is cancelled (e.g. the holder died).")


class Replacing(OnReader):
    outlet: str | None = Field(default=None, max_length=20,
                               description="The outlet issuing the new card (default: the caller's own).")
    old_card_presented: bool = Field(default=False, description="The holder brought the old card: its purse "
                                     "balance is read from it (else from the clearing records).")
    guardian_id: str | None = Field(default=None, max_length=40, description="The guardian replacing a minor's card.")
    reason: str | None = Field(default=None, max_length=200)


class PinReset(BaseModel):
    citizen_id: str = Field(max_length=40, description="The holder's citizen ID, checked against the card.")
    new_pin: str = Field(max_length=12, repr=False, description="The new PIN (never kept or logged).")
    outlet: str | None = Field(default=None, max_length=20, description="Default: the caller's own outlet.")
    reader: str | None = Field(default=None, max_length=1000, description="Default: the card's own virtual file.")


# ----------------------------------------------------------------------------- helpers


def _outlet(call: Call, given: str | None, *, required: bool = False) -> str | None:
    """The outlet of the act (the body's, else the caller's own), checked to be in the caller's scope."""
    outlet = (given or "").strip() or call.principal.outlet
    if outlet is None:
        if required:
            raise InvalidInput("outlet.missing", "give the outlet where it is done (your account has none)", "outlet")
        return None
    outlet = outlet.upper()
    call.require_scope(node=node_of_outlet(outlet), outlet=outlet)
    return outlet


def _card_node(call: Call, card_number: str) -> str:
    """The node of the region that issued the card (NotFound when none did)."""
    return call.read(lambda world: lifecycle.locate_card(world, lifecycle.parse_card_number(card_number)))[0]


def _card_act_outlet(call: Call, card_number: str, given: str | None) -> str | None:
    """The outlet of an act on a card, in the caller's scope; with no outlet (an account that has none, a
    loss by phone or app) the card must be of the caller's own region."""
    outlet = _outlet(call, given)
    if outlet is None:
        call.require_scope(node=_card_node(call, card_number))
    return outlet


def _blank_spec(world: World, outlet: str, body: OnReader) -> str:
    """The reader with the blank: the one the body names, else the next blank of the outlet's stock."""
    if body.reader and body.chip_serial:
        raise InvalidInput("reader.ambiguous", "name the blank by `reader` or by `chip_serial`, not both", "reader")
    if body.reader:
        return checked_spec(world, body.reader)
    return file_spec(stock.blank_to_issue(world, outlet=outlet, chip_serial=body.chip_serial,
                                          usable=chip_is_blank)["path"])


def _card_spec(world: World, given: str | None, virtual_path: str | None) -> str:
    if given:
        return checked_spec(world, given)
    if virtual_path:
        return file_spec(virtual_path)
    raise InvalidInput("reader.missing", "the world keeps no virtual card for this card: give `reader`", "reader")


def _masked_application(view: dict[str, Any]) -> dict[str, Any]:
    """An application as answered: the delivery address masked (revealed only by ``show_personal``, audited)."""
    address = view.get("delivery_address")
    return {**view, "delivery_address": mask_middle(address, 6, 0) if address else None}


def _application_nodes(view: dict[str, Any]) -> set[str]:
    """The regions whose staff read an application: its issuing region's and its outlet's."""
    return {view["issuing_node"], node_of_outlet(view["outlet"])}


def _masked_card(view: dict[str, Any]) -> dict[str, Any]:
    account = view.get("account_no")
    return {**mask_card_holder(view), "account_no": mask_middle(account, 6, 4) if account else None}


def _account_shown(call: Call, world: World, done: dict[str, Any], card_number: str, reveal: bool,
                   act: str) -> dict[str, Any]:
    """An act's answer with its ``account_no`` masked, as every other answer masks a financial identifier;
    shown whole only to a role that may reveal and asked (``show_personal``), and then audited in the
    act's own region (the holder's citizen ID, as ``card show`` records it)."""
    account = done.get("account_no")
    if not account:
        return done
    if not reveal:
        return {**done, "account_no": mask_middle(account, 6, 4)}
    view = card_view.card_view(world, card_number, now=call.now)
    record_personal_data_shown(world.region(view["issuing_node"]), citizen_id=view["citizen_id"],
                               operator=call.operator, command=f"POST /api/v1/cards/{card_number}/{act}",
                               now=call.now)
    return done


def _refund(done: dict[str, Any]) -> str:
    """What happens to the old card's purse balance, in words."""
    due = f" from {done['refund_due_at'][:10]}" if done["refund_due_at"] else ""
    if done["purse_balance_fen"] is None:
        return f"not read (the old card was not presented): refunded to the account from the clearing records{due}"
    if not done["purse_balance_fen"]:
        return "nothing to refund: the old purse was empty"
    return f"{format_fen(done['purse_balance_fen'])} refunded to the account{due}"


# ----------------------------------------------------------------------------- applications


@router.post("/applications", status_code=201, summary="Apply for a card (申领) at an outlet, or online")
def apply(body: Application, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    if body.online != (body.address is not None):
        raise InvalidInput("application.address", "`online` and `address` go together", "address")
    with body_fields():
        outlet = _outlet(call, body.outlet, required=True)
        return call.write(lambda world: _masked_application(issuance.apply(
            world, citizen_id=body.citizen_id, outlet=outlet, operator=call.operator, now=call.now,
            online_address=body.address, guardian_id=body.guardian_id)), payload=body, status=201)


@router.get("/applications", summary="The applications of the caller's region, oldest first")
def applications(status: APPLICATION_STATUSES | None = None, call: Call = Depends(staff_call(*READERS))):
    node = call.principal.node
    items = call.read(lambda world: issuance.list_applications(world, status=status))
    return {"applications": [_masked_application(a) for a in items if node in _application_nodes(a)]}


@router.get("/applications/{application_id}", summary="One application (of the caller's region)")
def application(application_id: str, show_personal: bool = Query(default=False, description="Reveal the "
                "delivery address (roles that may; audited)."), call: Call = Depends(staff_call(*READERS))):
    reveal = call.may_reveal(show_personal)
    with body_fields():
        view = call.read(lambda world: issuance.show_application(world, application_id))
        if call.principal.node not in _application_nodes(view):
            require_read_scope(call, view["issuing_node"])
        if not reveal:
            return _masked_application(view)

        def shown(world: World) -> dict[str, Any]:
            node, row = issuance.get_application(world, application_id)
            record_personal_data_shown(world.region(node), citizen_id=row["citizen_id"], operator=call.operator,
                                       command=f"GET /api/v1/applications/{row['id']}", now=call.now)
            return view

        return call.write(shown, idempotent=False)


@router.post("/applications/{application_id}/status", summary="Move an online application along, or withdraw one")
def application_step(application_id: str, body: ApplicationStep, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    def do(world: World) -> dict[str, Any]:
        _, row = issuance.get_application(world, application_id)
        _outlet(call, row["outlet"])
        return _masked_application(issuance.set_application_status(world, application_id, body.status,
                                                                   operator=call.operator, now=call.now))

    with body_fields(set="status"):
        return call.write(do, payload=body)


@router.post("/applications/{application_id}/issue", status_code=201,
             summary="Issue the application's card (即时制卡) on a blank of the outlet's stock")
def issue(application_id: str, body: OnReader | None = None, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    body = body or OnReader()

    def do(world: World) -> dict[str, Any]:
        desk = IssuanceDesk(world, application_id, operator=call.operator, now=call.now)
        with reader_for(_blank_spec(world, desk.outlet, body)) as reader:
            outcome = counter.issue(reader, desk)
        return {**outcome.record, "apdus": outcome.apdus}

    with body_fields():
        _outlet(call, call.read(lambda world: issuance.get_application(world, application_id))[1]["outlet"])
        return call.write(do, payload=body, status=201)


# ----------------------------------------------------------------------------- the card


@router.post("/cards/{card_number}/activate", summary="Activate an issued card: the holder's PIN, the account opens")
def activate(card_number: str, body: Activation, show_personal: bool = Query(default=False, description="Show "
             "the account number whole (roles that may; audited)."), call: Call = Depends(staff_call(*COUNTER_ACTS))):
    reveal = call.may_reveal(show_personal)
    with body_fields(pin="pin"):
        check_new_pin(body.pin)  # the birth-date rule is checked against the card itself
        issued_at = call.read(lambda world: lifecycle.locate_card(world, lifecycle.parse_card_number(card_number)))
        outlet = _outlet(call, body.outlet or call.principal.outlet or issued_at[1]["outlet"])

        def do(world: World) -> dict[str, Any]:
            desk = ActivationDesk(world, card_number, operator=call.operator, now=call.now, outlet=outlet)
            with reader_for(_card_spec(world, body.reader, desk.virtual_path)) as reader:
                outcome = counter.activate(reader, desk, body.pin)
            done = {**outcome.record, "apdus": outcome.apdus}
            return _account_shown(call, world, done, done["card_number"], reveal, "activate")

        return call.write(do, payload=body.model_dump(exclude={"pin"}))


@router.get("/cards/{card_or_citizen_id}", summary="A card's record, by card number or the holder's citizen ID")
def show(card_or_citizen_id: str, show_personal: bool = Query(default=False, description="Reveal the holder's "
         "ID and name (roles that may; audited)."), call: Call = Depends(staff_call(*READERS))):
    reveal = call.may_reveal(show_personal)
    with body_fields():
        if not reveal:
            data = call.read(lambda world: card_view.card_view(world, card_or_citizen_id, now=call.now))
            require_read_scope(call, data["issuing_node"], masked_elsewhere=True)
            return _masked_card(data)

        def shown(world: World) -> dict[str, Any]:
            data = card_view.card_view(world, card_or_citizen_id, now=call.now)
            require_read_scope(call, data["issuing_node"], reveal=True)
            card_view.record_personal_data_shown(world, data, operator=call.operator, now=call.now)
            return data

        return call.write(shown, idempotent=False)


@router.get("/cards/{card_number}/history", summary="Everything that happened to a card")
def history(card_number: str, call: Call = Depends(staff_call(*READERS))):
    with body_fields(CARD_OR_CITIZEN_ID="card_number"):
        events = call.read(lambda world: card_view.history(world, card_number))
        require_read_scope(call, _card_node(call, events[0]["card_number"]) if events else None)
        return {"events": events}


@router.post("/cards/{card_number}/lost", summary="挂失: at a counter a formal loss; by phone or app a temporary one")
def report_lost(card_number: str, body: Loss | None = None, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    body = body or Loss()
    with body_fields():
        if body.channel == "counter":
            outlet = _card_act_outlet(call, card_number, body.outlet)
        elif body.outlet:
            raise InvalidInput("loss.outlet", f"a loss reported by {body.channel} is not taken at an outlet", "outlet")
        else:  # 12333 or the app: taken by the staff of the card's own region only
            outlet = None
            call.require_scope(node=_card_node(call, card_number))
        return call.write(lambda world: lifecycle.report_lost(
            world, card_number=card_number, channel=body.channel, operator=call.operator, outlet=outlet,
            reason=body.reason, now=call.now), payload=body)


def _event_route(path: str, event: str, summary: str) -> None:
    def route(card_number: str, body: Event | None = None, call: Call = Depends(staff_call(*COUNTER_ACTS))):
        body = body or Event()
        with body_fields():
            outlet = _card_act_outlet(call, card_number, body.outlet)
            return call.write(lambda world: getattr(lifecycle, event)(
                world, card_number=card_number, operator=call.operator, outlet=outlet, reason=body.reason,
                now=call.now), payload=body)

    route.__name__ = event
    router.post(f"/cards/{{card_number}}/{path}", summary=summary)(route)


_event_route("confirm-loss", "confirm_loss", "Make a temporary loss formal, before it lapses")
_event_route("unblock", "unblock", "解挂: a lost card is found; it and its account work again")


@router.post("/cards/{card_number}/replace", status_code=201,
             summary="补换卡: a new card on a blank of the outlet's stock; the old one ends, its purse is refunded")
def replace(card_number: str, body: Replacing | None = None, show_personal: bool = Query(default=False,
            description="Show the account number whole (roles that may; audited)."),
            call: Call = Depends(staff_call(*COUNTER_ACTS))):
    body = body or Replacing()
    reveal = call.may_reveal(show_personal)
    with body_fields(old_reader="old_card_presented"):
        outlet = _outlet(call, body.outlet, required=True)

        def do(world: World) -> dict[str, Any]:
            job = Replacement(world, card_number, operator=call.operator, outlet=outlet, reason=body.reason,
                              now=call.now, guardian_id=body.guardian_id)
            if body.old_card_presented:
                old = lifecycle.locate_card(world, job.old_card)[1]
                with reader_for(_card_spec(world, None, world.paths.resolve(old["virtual_path"]))) as reader:
                    job.old_card_presented(counter.read_back(reader))
            with reader_for(_blank_spec(world, outlet, body)) as reader:
                job.check_blank(counter.chip_info(reader))
                outcome = counter.issue(reader, job.issuance_desk())
            done = {**job.result(outcome.record), "apdus": outcome.apdus}
            return _account_shown(call, world, {**done, "refund": _refund(done)}, done["new_card"], reveal, "replace")

        return call.write(do, payload=body, status=201)


@router.post("/cards/{card_number}/cancel", summary="注销: pay out the account's balance, close it, end the card")
def cancel(card_number: str, body: Cancellation, show_personal: bool = Query(default=False, description="Show "
           "the account number whole (roles that may; audited)."), call: Call = Depends(staff_call(*COUNTER_ACTS))):
    reveal = call.may_reveal(show_personal)
    with body_fields():
        outlet = _card_act_outlet(call, card_number, body.outlet)

        def do(world: World) -> dict[str, Any]:
            done = lifecycle.cancel(world, card_number=card_number, operator=call.operator, reason=body.reason,
                                    outlet=outlet, now=call.now)
            return _account_shown(call, world, done, done["card_number"], reveal, "cancel")

        return call.write(do, payload=body)


@router.post("/cards/{card_number}/pin/reset", summary="Set a new PIN (and lift a block) for the holder, "
             "identity checked")
def pin_reset(card_number: str, body: PinReset, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    with body_fields(pin="new_pin"):
        outlet = _card_act_outlet(call, card_number, body.outlet)

        def do(world: World) -> dict[str, Any]:
            with pins.pin_reset(world, card_number=card_number, citizen_id=body.citizen_id, new_pin=body.new_pin,
                                operator=call.operator, outlet=outlet, now=call.now) as order:
                with reader_for(_card_spec(world, body.reader, order.virtual_path)) as reader:
                    order.check_card(counter.read_back(reader))
                    counter.set_pin(reader, order.keys, body.new_pin)
                return order.record()

        return call.write(do, payload=body.model_dump(exclude={"new_pin"}))

