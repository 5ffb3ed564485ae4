"""Medical claims over HTTP: the back office's reads, refunds (退费) and owed amounts (``sbcard medical …``).

Claims are those of the caller's region's insured (``sbcard medical claims``, with the keys of
its ``--json``), and the offline claims still queued at the region's hospitals. A refund
without a reader writes no card log (``ef08_written`` is null): the claim, the accumulators,
the personal account and the ledger are reversed as ``sbcard medical refund`` does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import api_fields
from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.masking import mask_middle
from sbcard.domain.staff import AUDITOR, FINANCE_CHECKER, FINANCE_MAKER, SUPERVISOR
from sbcard.services.medical import claims as medical_claims
from sbcard.services.medical import host as medical_host
from sbcard.services.medical import routing
from sbcard.services.medical.owed import settle_owed
from sbcard.store.unit_of_work import UnitOfWork

router = APIRouter(prefix="/medical", tags=["medical claims"])

READERS = (FINANCE_MAKER, FINANCE_CHECKER, SUPERVISOR, AUDITOR)
BACK_OFFICE = (FINANCE_MAKER, FINANCE_CHECKER, SUPERVISOR)


class Refund(BaseModel):
    items: list[str] | None = Field(default=None, max_length=200, description="Refund only these item codes; the "
                                    "rest is settled again as a new claim. None: the whole claim.")


class SettleOwed(BaseModel):
    outlet: str | None = Field(default=None, max_length=32, description="Not offered here: the holder's account "
                               "settles it (cash is settled at a bank-branch counter).")


def _claim_node(call: Call, claim_id: str) -> tuple[str, dict[str, Any]]:
    """(insured node, claim view) of a settled claim in the caller's region; 404 / 403 otherwise."""
    found = call.read(lambda world: routing.find_claim(world, claim_id.strip()))
    if found is None:
        raise NotFound("medical.claim.unknown", f"no settled claim {claim_id.strip()}", "claim_id")
    call.require_scope(node=found[0])
    return found


@router.get("/claims", summary="The region's claims (of its insured), and the offline ones queued at its hospitals")
@api_fields
def claims(card: str | None = Query(default=None, max_length=32), hospital: str | None = Query(default=None,
           max_length=32), call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    node = call.principal.node
    card_number = card.strip().upper() if card else None
    code = hospital.strip().upper() if hospital else None

    def do(world) -> list[dict[str, Any]]:
        uow = UnitOfWork(world.region(node))
        rows = medical_host.claims(uow, card_number=card_number, hospital=code)
        rows += [medical_claims.listed(q) for q in medical_claims.entries(uow, card_number=card_number, hospital=code)]
        return sorted(rows, key=lambda r: (r["at"], r["claim_id"]))

    return {"claims": call.read(do)}


@router.get("/claims/{claim_id}", summary="One settled claim, with its items and the split")
@api_fields
def show(claim_id: str, call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    return _claim_node(call, claim_id)[1]


@router.post("/claims/{claim_id}/refund", summary="退费: reverse a claim of this year (partly, with items)")
@api_fields
def refund(claim_id: str, body: Refund | None = None,
           call: Call = Depends(staff_call(*BACK_OFFICE))) -> JSONResponse:
    body = body or Refund()
    wanted = [c.strip() for c in body.items if c.strip()] if body.items is not None else None
    if body.items is not None and not wanted:
        raise InvalidInput("medical.refund.items", "items names at least one item code", "items")
    _claim_node(call, claim_id)
    claim_id = claim_id.strip()

    def do(world) -> dict[str, Any]:
        # who asked for it is audited beside the hospital's own entry, in the refund's own transaction
        done = routing.refund(world, claim_id, wanted, now=call.now, requested_by=call.operator)
        return {**routing.refund_summary(done, wanted), "ef08_written": None, "operator": call.operator}

    return call.write(do, payload={"items": wanted})


@router.post("/claims/{claim_id}/settle-owed", summary="Settle what a reconciled offline claim left owed, once, "
             "through the holder's account")
@api_fields
def owed(claim_id: str, body: SettleOwed | None = None,
         call: Call = Depends(staff_call(*BACK_OFFICE))) -> JSONResponse:
    if body is not None and body.outlet:
        raise InvalidInput("medical.owed.outlet", "settling in cash is done at a bank-branch counter, not here: "
                           "leave outlet out to settle through the holder's account", "outlet")
    _claim_node(call, claim_id)

    def do(world) -> dict[str, Any]:
        done = settle_owed(world, claim_id.strip(), operator=call.operator, outlet=None, now=call.now)
        if done.get("account_no"):
            done = {**done, "account_no": mask_middle(done["account_no"], 6, 4)}
        return done

    return call.write(do, payload={"claim_id": claim_id.strip()})
