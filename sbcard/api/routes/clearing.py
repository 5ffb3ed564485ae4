"""Clearing (清分) and settlement (结算) over HTTP: ``sbcard clearing run | report``, ``sbcard settlement show``.

Clearing is the hub's act over the three regions at once: a process that serves the hub
(``--node all``) runs it itself; a region's own process (``--node bj``), where finance staff
sign in, asks the hub's process to run it (the node-signed act ``clearing.run``), which
reaches each region's process in turn (``docs/api/nodes.md``). The reports are read where
they are asked: what this process does not hold is asked of the node that does.

Starting a run settles money between the three regions, so it is a checker's act, not a
maker's: a finance checker or a supervisor, of any region (the hub has no staff of its own; a
run is the same whoever starts it — it clears what the records say, once per date — and is
audited in its operator's region, action ``clearing.run``; the hub keeps the operator with the
day's record). A finance maker prepares batches and does not clear (403 ``role.forbidden``,
saying so). Reading the reports is also a maker's and an auditor's. The answers carry the keys
of the CLI's ``--json``.

A run's date defaults to yesterday (Beijing time): a date is cleared once, for all three regions,
so clearing today at 10:00 would close it for everyone with the afternoon's records left to the
next date. Today is refused (422 ``clearing.date``) unless a supervisor asks for it with
``"force": true`` (a finance checker may not); a date that has not begun is refused always.
The CLI (``sbcard clearing run``), the operator's own tool, keeps its default of today.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import api_fields
from sbcard.clock import BEIJING
from sbcard.domain.errors import InvalidInput
from sbcard.domain.staff import AUDITOR, FINANCE_CHECKER, FINANCE_MAKER, SUPERVISOR
from sbcard.services.clearing import purse_records, settlement
from sbcard.services.exchange import peers
from sbcard.services.outlets.staff import Forbidden
from sbcard.store.world import HUB

router = APIRouter(tags=["clearing and settlement"])

RUNNERS = (SUPERVISOR, FINANCE_CHECKER)
READERS = (SUPERVISOR, FINANCE_MAKER, FINANCE_CHECKER, AUDITOR)
DATE = "The clearing date YYYY-MM-DD (default: today, Beijing time)."
RUN_DATE = "The date to clear, YYYY-MM-DD (default: yesterday, Beijing time; today only with force)."


class ClearingRun(BaseModel):
    date: str | None = Field(default=None, max_length=10, description=RUN_DATE)
    force: bool = Field(default=False, description="Clear today's date before it has ended (a supervisor only): "
                        "it closes the date for all three regions, the day's later records go to the next date.")


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
    asked = body or ClearingRun()
    today = call.now.astimezone(BEIJING).date()
    day = today - dt.timedelta(days=1) if asked.date is None else purse_records.parse_day(asked.date, "date")
    purse_records.check_day(day, call.now)
    forced = day == today
    if forced and not asked.force:
        raise InvalidInput("clearing.date", f"{day.isoformat()} is today and has not ended: a date is cleared once "
                           "for all three regions (a supervisor may clear it early with force: true)", "date")
    if forced and call.principal.role != SUPERVISOR:
        raise Forbidden("role.forbidden", f"operator {call.operator} is a {call.principal.role}: clearing today "
                        "before it has ended closes it for all three regions, a supervisor's decision", "force")
    node = call.principal.node

    def audited(world, answer: dict[str, Any]) -> dict[str, Any]:
        purse_records.audit_run(world, node, operator=call.operator, day=day, answer=answer, forced=forced,
                                now=call.now)
        return answer

    if call.service.config.serves(HUB):
        return call.write(lambda world: audited(world, purse_records.run_clearing(
            world, day, now=call.now, operator=call.operator).to_dict()), payload={"date": day.isoformat()})
    # At a region's own process: the hub's process runs it. Not under this process's write lock — the
    # hub's run sends this region its part while the call waits — and idempotent by its date (the hub
    # records the run once), so it needs no Idempotency-Key here. The audit entry is a transaction of its own.
    return JSONResponse(call.read(lambda world: audited(world, peers.perform(
        world, HUB, "clearing.run", {"date": day.isoformat(), "operator": call.operator}, call.now))))


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
