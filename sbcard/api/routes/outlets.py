"""The outlets of the caller's region and their blank card stock (receive, show, spoil)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import body_fields
from sbcard.api.readers import shown_path
from sbcard.domain.outlets import KINDS
from sbcard.domain.regions import node_of, validate_region_code
from sbcard.domain.staff import AUDITOR, COUNTER, SUPERVISOR
from sbcard.services.exchange.lookup import node_of_outlet
from sbcard.services.outlets import stock
from sbcard.store.world import World
from terminals.emulator.blank import create_blank

router = APIRouter(prefix="/outlets", tags=["outlets and stock"])

COUNTER_ACTS = (COUNTER, SUPERVISOR)
READERS = (COUNTER, SUPERVISOR, AUDITOR)
Kind = Literal[tuple(KINDS)]  # type: ignore[valid-type]


class Delivery(BaseModel):
    count: StrictInt = Field(description=f"How many blanks arrived (1–{stock.MAX_DELIVERY}).")


class Spoiled(BaseModel):
    chip_serial: str = Field(max_length=40)
    reason: str = Field(max_length=200, description="Why it cannot be used (damaged, lost…).")


def _scoped(call: Call, code: str) -> tuple[str, str]:
    outlet = code.strip().upper()
    node = node_of_outlet(outlet)
    call.require_scope(node=node, outlet=outlet)
    return node, outlet


@router.get("", summary="The outlets of the caller's region, with the blanks each holds")
def outlets(region: str | None = None, kind: Kind | None = None, call: Call = Depends(staff_call(*READERS))):
    with body_fields():
        area = validate_region_code(region) if region else None
        if area is not None:
            call.require_scope(node=node_of(area))
        items = call.read(lambda world: stock.outlets_with_stock(world.region(call.principal.node), area=area))
    return {"outlets": [o for o in items if kind is None or o["kind"] == kind]}


@router.get("/{code}/stock", summary="An outlet's blanks: counts by status and each blank")
def stock_show(code: str, call: Call = Depends(staff_call(*READERS))):
    with body_fields(outlet="code"):
        node, outlet = _scoped(call, code)

        def read(world: World) -> dict[str, Any]:
            db = world.region(node)
            level = stock.stock_of(db, outlet)
            items = stock.blanks(db, level["outlet"])
            return {**level, "blanks": [{"chip_serial": b["chip_serial"], "path": shown_path(world, b["path"]),
                                         "status": b["status"], "received_at": b["received_at"],
                                         "used_for": b["used_for"]} for b in items]}

        return call.read(read)


@router.post("/{code}/stock/receive", status_code=201, summary="Take delivery of blank cards")
def stock_receive(code: str, body: Delivery, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    with body_fields(outlet="code"):
        node, outlet = _scoped(call, code)

        def do(world: World) -> dict[str, Any]:
            db = world.region(node)
            data = stock.receive_stock(db, outlet=outlet, count=body.count, operator=call.operator, now=call.now,
                                       cards_dir=world.paths.cards_dir, make_blank=create_blank)
            return {**data, "paths": [shown_path(world, p) for p in data["paths"]],  # relative to the home
                    "low": stock.stock_of(db, outlet)["low"]}

        return call.write(do, payload=body, status=201)


@router.post("/{code}/stock/spoil", summary="Write off a blank that cannot be used")
def stock_spoil(code: str, body: Spoiled, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    with body_fields(outlet="code"):
        node, outlet = _scoped(call, code)

        def do(world: World) -> dict[str, Any]:
            db = world.region(node)
            row = stock.spoil_blank(db, outlet=outlet, chip_serial=body.chip_serial, operator=call.operator,
                                    reason=body.reason, now=call.now)
            level = stock.stock_of(db, row["outlet"])
            return {"outlet": row["outlet"], "chip_serial": row["chip_serial"], "status": row["status"],
                    "in_stock": level["in_stock"]}

        return call.write(do, payload=body)
