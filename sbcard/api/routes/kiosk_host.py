"""Self-service purse loads (自助圈存) on the host API: ``/api/v1/host/purse/…``, signed by a load kiosk.

The four calls of the load terminal's host port (``terminals.apps.loader.LoadHost``) as
routes, answered by ``KioskHost`` (``sbcard.services.transit.kiosk_host``): the card's
pending loads, settling them from what the card shows, ``begin`` (MAC1 checked, the
holder's account debited, MAC2; an ``Idempotency-Key`` required, so a retry after a lost
MAC2 gets the same MAC2 and never a second debit) and ``confirm`` (the card's TAC). The
state between the calls is the issuer's ``purse_loads`` row, so each is its own request.
Only a registered kiosk may call them (any other terminal: 403 ``terminal.not_kiosk``);
the operator of record is the kiosk and the outlet its registered one, never the body's.
docs/api/terminals.md, "Self-service loads at a kiosk".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StrictBool, StrictInt

from sbcard.api.calls import Call
from sbcard.api.errors import ApiError
from sbcard.api.fields import body_fields
from sbcard.api.terminal_auth import terminal_call, terminal_of
from sbcard.domain.purse_load import MAX_BALANCE_FEN, CardLoadEvidence, LoadRequest, LoggedLoad
from sbcard.services.outlets.staff import Forbidden
from sbcard.services.terminals import kiosk
from sbcard.services.transit import purse_host
from sbcard.services.transit.kiosk_host import KioskHost
from sbcard.store.world import World

router = APIRouter(prefix="/host/purse", tags=["host API for terminals: kiosk loads"])

APP_SERIAL = r"^[0-9]{20}$"
HEX8 = r"^[0-9A-Fa-f]{8}$"
HEX12 = r"^[0-9A-Fa-f]{12}$"
DATETIME14 = r"^[0-9]{14}$"


class Begin(BaseModel):
    """``LoadRequest``: the card's answer to INITIALIZE FOR LOAD, as it was, and the kiosk's PIN check."""

    app_serial: str = Field(pattern=APP_SERIAL)
    amount_fen: StrictInt = Field(gt=0, le=MAX_BALANCE_FEN)
    terminal_no: str = Field(pattern=HEX12, description="The kiosk's own terminal number (its register row's).")
    balance_fen: StrictInt = Field(ge=0, le=0xFFFFFFFF)
    online_counter: StrictInt = Field(ge=0, le=0xFFFF)
    key_version: StrictInt = Field(ge=0, le=0xFF)
    algorithm_id: StrictInt = Field(ge=0, le=0xFF)
    random: str = Field(pattern=HEX8)
    mac1: str = Field(pattern=HEX8)
    pin_verified: StrictBool = Field(description="The kiosk VERIFYed the holder's PIN on the card before "
                                                 "INITIALIZE FOR LOAD (required true).")


class Prove(BaseModel):
    online_counter: StrictInt = Field(ge=0, le=0xFFFF)
    tac: str = Field(pattern=HEX8)


class Logged(BaseModel):
    counter: StrictInt = Field(ge=0, le=0xFFFF)
    amount_fen: StrictInt = Field(ge=0, le=0xFFFFFFFF)
    terminal_no: str = Field(pattern=HEX12)
    date_time: str = Field(pattern=DATETIME14)


class CounterProof(BaseModel):
    """The card's whole answer to the 1-fen INITIALIZE FOR LOAD the online counter comes from (never completed)."""

    amount_fen: StrictInt = Field(ge=0, le=MAX_BALANCE_FEN, description="1: the probe's amount.")
    terminal_no: str = Field(pattern=HEX12)
    balance_fen: StrictInt = Field(ge=0, le=0xFFFFFFFF)
    online_counter: StrictInt = Field(ge=0, le=0xFFFF)
    key_version: StrictInt = Field(ge=0, le=0xFF)
    algorithm_id: StrictInt = Field(ge=0, le=0xFF)
    random: str = Field(pattern=HEX8)
    mac1: str = Field(pattern=HEX8)


class Evidence(BaseModel):
    """``CardLoadEvidence``: what the card shows about its loads."""

    app_serial: str = Field(pattern=APP_SERIAL)
    balance_fen: StrictInt | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    online_counter: StrictInt | None = Field(default=None, ge=0, le=0xFFFF)
    proves: list[Prove] = Field(default_factory=list, max_length=64)
    logged: list[Logged] = Field(default_factory=list, max_length=64)
    counter_proof: CounterProof | None = Field(
        default=None, description="Required for the online counter to count: the issuer checks its MAC1 with the "
                                  "card's DLK; without it no load is reversed (or confirmed by the counter).")


class Confirm(BaseModel):
    app_serial: str = Field(pattern=APP_SERIAL)
    online_counter: StrictInt = Field(ge=0, le=0xFFFF)
    tac: str = Field(pattern=HEX8)


def _kiosk(call: Call) -> dict[str, Any]:
    """The calling terminal's register row, if it is a load kiosk (403 ``terminal.not_kiosk`` if not)."""
    terminal = terminal_of(call)
    if kiosk.outlet_of(terminal) is None:
        raise Forbidden("terminal.not_kiosk", f"terminal {terminal['id']} is not a load kiosk: the purse routes "
                        "answer kiosks registered at an outlet (`sbcard terminal add --kind kiosk`)", "terminal")
    return terminal


def _fields():  # type: ignore[no-untyped-def]
    """The use case's errors name this API's fields: the card in the kiosk's reader is the body's ``app_serial``."""
    return body_fields(reader="app_serial", amount="amount_fen")


def _invalid(exc: Exception) -> ApiError:
    return ApiError(422, "load.request_invalid", f"not a load request: {exc}", None)


@router.get("/pending", summary="The card's loads debited and not yet seen credited or refused")
def pending(app_serial: str = Query(pattern=APP_SERIAL, description="The card's T-Union application serial."),
            call: Call = Depends(terminal_call)):
    _kiosk(call)

    def read(world: World) -> dict[str, Any]:
        loads = purse_host.pending_loads(world, app_serial)
        return {"app_serial": app_serial, "pending": [
            {"load_id": p.load_id, "online_counter": p.online_counter, "amount_fen": p.amount_fen,
             "balance_before_fen": p.balance_before_fen, "terminal_no": p.terminal_no, "date_time": p.date_time}
            for p in loads]}

    return call.read(read)


@router.post("/settle", summary="Settle the card's pending loads from what the card shows (confirm or reverse)")
def settle(body: Evidence, call: Call = Depends(terminal_call)):
    terminal = _kiosk(call)
    try:
        evidence = CardLoadEvidence(
            app_serial=body.app_serial, balance_fen=body.balance_fen, online_counter=body.online_counter,
            proves={p.online_counter: bytes.fromhex(p.tac) for p in body.proves},
            logged=tuple(LoggedLoad(counter=e.counter, amount_fen=e.amount_fen, terminal_no=e.terminal_no.upper(),
                                    date_time=e.date_time) for e in body.logged),
            counter_proof=None if body.counter_proof is None else LoadRequest(
                app_serial=body.app_serial, **{**body.counter_proof.model_dump(),
                                               "terminal_no": body.counter_proof.terminal_no.upper(),
                                               "random": bytes.fromhex(body.counter_proof.random),
                                               "mac1": bytes.fromhex(body.counter_proof.mac1)}))
    except (TypeError, ValueError) as exc:
        raise _invalid(exc) from None

    def do(world: World) -> dict[str, Any]:
        with _fields():
            return {"app_serial": body.app_serial,
                    "settled": KioskHost(world, terminal, now=call.now).settle(evidence)}

    return call.write(do, payload=body, idempotent=False)


@router.post("/begin", summary="圈存 step 1: MAC1 checked, the holder's account debited, MAC2 "
                             "(Idempotency-Key required)")
def begin(body: Begin, call: Call = Depends(terminal_call)):
    terminal = _kiosk(call)
    try:
        request = LoadRequest(
            app_serial=body.app_serial, amount_fen=body.amount_fen, terminal_no=body.terminal_no.upper(),
            balance_fen=body.balance_fen, online_counter=body.online_counter, key_version=body.key_version,
            algorithm_id=body.algorithm_id, random=bytes.fromhex(body.random), mac1=bytes.fromhex(body.mac1),
            pin_verified=body.pin_verified)
    except (TypeError, ValueError) as exc:
        raise _invalid(exc) from None

    def do(world: World) -> dict[str, Any]:
        host = KioskHost(world, terminal, now=call.now)
        with _fields():
            grant = host.begin_load(request)
        return {"load_id": grant.load_id, "card_number": grant.card_number, "mac2": grant.mac2.hex().upper(),
                "date_time": grant.date_time, "account_balance_fen": grant.account_balance_fen,
                "terminal": terminal["id"], "outlet": host.outlet, "operator": host.operator,
                "corrections": host.corrections}

    return call.write(do, payload=body)


@router.post("/confirm", summary="圈存 step 3: the card's TAC for the load; confirmed once it verifies")
def confirm(body: Confirm, call: Call = Depends(terminal_call)):
    terminal = _kiosk(call)

    def do(world: World) -> dict[str, Any]:
        with _fields():
            return KioskHost(world, terminal, now=call.now).confirm_load(body.app_serial, body.online_counter,
                                                                         bytes.fromhex(body.tac))

    return call.write(do, payload=body, idempotent=False)
