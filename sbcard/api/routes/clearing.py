"""Clearing (清分) and settlement (结算) over HTTP: ``sbcard clearing run | report``, ``sbcard settlement show``.

Clearing is the hub's act over the three regions at once: a process that serves the hub
(``--node all``) runs it itself; a region's own process (``--node bj``), where finance staff
sign in, asks the hub's process to run it (the node-signed act ``clearing.run``), which
reaches each region's process in turn (``docs/api/nodes.md``). The reports are read where
they are asked: what this process does not hold is asked of the node that does.

Starting a run settles money between the three regions, so it is a checker's act, not a
maker's: a finance checker or a supervisor, of any region (the hub has no staff of its own; a
run is the same whoever starts it — it clears what the records say, once per date — and is
audited with its operator's region). A finance maker prepares batches and does not clear (403
``role.forbidden``, saying so). Reading the reports is also a maker's and an auditor's. The
answers carry the keys of the CLI's ``--json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import api_fields
from sbcard.clock import BEIJING
from sbcard.domain.staff import AUDITOR, FINANCE_CHECKER, FINANCE_MAKER, SUPERVISOR
from sbcard.services.clearing import purse_records, settlement
from sbcard.services.exchange import peers
from sbcard.services.outlets.staff import Forbidden
from sbcard.store.world import HUB

router = APIRouter(tags=["clearing and settlement"])

RUNNERS = (SUPERVISOR, FINANCE_CHECKER)
READERS = (SUPERVISOR, FINANCE_MAKER, FINANCE_CHECKER, AUDITOR)
DATE = "The clearing date YYYY-MM-DD (default: today, Beijing time)."


class ClearingRun(BaseModel):
    date: str | None = Field(default=None, max_length=10, description=DATE)


def _day(call: Call, text: str | None, field: str = "date"):
    if text is None:
        return call.now.astimezone(BEIJING).date()
    return purse_records.parse_day(text, field)


@router.post("/clearing/runs", summary="Clear a date once (a second run of it changes nothing and says so)")
@api_fields
def run(body: ClearingRun | None = None, call: Call = Depends(staff_call())) -> JSONResponse:
    if call.principal.role not in RUNNERS:
        raise Forbidden("role.forbidden", f"operator {call.operator} is a {call.principal.role}: a clearing run "
                        "settles money between the three regions, the act of a finance checker or a supervisor "
                        "(a finance maker prepares batches; it does not clear them)", "role")
    day = _day(call, (body or ClearingRun()).date)
    if call.service.config.serves(HUB):
        return call.write(lambda world: purse_records.run_clearing(world, day, now=call.now).to_dict(),
                          payload={"date": day.isoformat()})
    # At a region's own process: the hub's process runs it. Not under this process's write lock — the
    # hub's run sends this region its part while the call waits — and idempotent by its date (the hub
    # records the run once), so it needs no Idempotency-Key here.
    purse_records.check_day(day, call.now)
    return JSONResponse(call.read(lambda world: peers.perform(world, HUB, "clearing.run", {"date": day.isoformat()},
                                                              call.now)))


@router.get("/clearing/report", summary="A date's clearing: accepted, flagged, rejected records, gaps, medical")
@api_fields
def report(date: str | None = Query(default=None, max_length=10, description=DATE),
           call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    day = _day(call, date)
    return call.read(lambda world: purse_records.report(world, day))


@router.get("/settlement", summary="A date's settlement: the matrix, nets, parties, the purse float reconciled")
@api_fields
def show(date: str | None = Query(default=None, max_length=10, description=DATE),
         call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    day = _day(call, date)
    return call.read(lambda world: settlement.day_settlement(world, day))


@router.get("/settlement/region", summary="The signed-in operator's region's settlement of a date, from its own "
            "records")
@api_fields
def region(date: str | None = Query(default=None, max_length=10, description=DATE),
           call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    day = _day(call, date)
    return call.read(lambda world: settlement.region_settlement(world, call.principal.node, day))
