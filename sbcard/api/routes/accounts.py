"""The card's financial account (金融账户): balance and entries; cash in and out at a bank-branch outlet."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import body_fields
from sbcard.api.reads import require_read_scope
from sbcard.domain.errors import InvalidInput
from sbcard.domain.staff import AUDITOR, COUNTER, SUPERVISOR
from sbcard.services.accounts import cash
from sbcard.services.exchange.lookup import node_of_outlet

router = APIRouter(prefix="/accounts", tags=["accounts"])

COUNTER_ACTS = (COUNTER, SUPERVISOR)
READERS = (COUNTER, SUPERVISOR, AUDITOR)


class Cash(BaseModel):
    amount_fen: StrictInt = Field(description="Integer fen (¥12.30 is 1230); never a float.")
    outlet: str | None = Field(default=None, max_length=20,
                               description="The bank-branch outlet whose till it is (default: the caller's own).")
    txn_id: str | None = Field(default=None, max_length=40, description="The slip number (default: allocated).")
    memo: str | None = Field(default=None, max_length=200)


@router.get("/{card_number}", summary="The card's account: number, status, balance and every entry")
def show(card_number: str, call: Call = Depends(staff_call(*READERS))):
    with body_fields():
        data = call.read(lambda world: cash.account_view(world, card_number))
        require_read_scope(call, data["node"])  # an account's entries: its own region's staff only
        return data


def _cash_route(move: str, summary: str) -> None:
    def route(card_number: str, body: Cash, call: Call = Depends(staff_call(*COUNTER_ACTS))):
        with body_fields(amount="amount_fen"):
            outlet = (body.outlet or call.principal.outlet or "").strip().upper()
            if not outlet:
                raise InvalidInput("outlet.missing", "give the bank-branch outlet (your account has none)", "outlet")
            call.require_scope(node=node_of_outlet(outlet), outlet=outlet)
            return call.write(lambda world: getattr(cash, move)(
                world, card_number=card_number, amount_fen=body.amount_fen, operator=call.operator, outlet=outlet,
                now=call.now, txn_id=body.txn_id, memo=body.memo), payload=body)

    route.__name__ = move
    router.post(f"/{{card_number}}/{move}", summary=summary)(route)


_cash_route("deposit", "Cash handed in at a bank-branch outlet, credited to the card's account")
_cash_route("withdraw", "Cash paid out at a bank-branch outlet from the account of an active card")
