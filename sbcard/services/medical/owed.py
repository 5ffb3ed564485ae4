"""What an offline claim's reconciliation left owed (``owed_fen``), settled by staff: ``sbcard medical settle-owed``.

Reconciling an offline claim settles the difference between what the holder paid at the
point of sale and the real self-pay with their financial account; where the account could
not take it (none open, not enough money) it stays owed, against ``FUND-MEDICAL-DUE``:
positive, the holder owes the fund; negative, the fund owes the holder. Staff settle it
later, once, in one transaction of the insured region with its audit entry: through the
holder's open financial account (the default), or in cash at a bank-branch outlet's till
of that region (``outlet``). A claim settled already answers its settlement again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.regions import NODE_NAMES
from sbcard.services.exchange import lookup
from sbcard.services.outlets import audit, operators
from sbcard.services.accounts import ledger
from sbcard.services.medical.host import DUE
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.medical import MedicalRepository
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World

ROLES = {"finance", "supervisor"}
CASH_ROLES = ROLES | {"counter"}  # cash at a bank-branch counter (社银合作)
FIELD = "CLAIM_ID"


def settle_owed(world: World, claim_id: str, *, operator: str, outlet: str | None,
                now: dt.datetime) -> dict[str, Any]:
    """Settle claim ``claim_id``'s ``owed_fen``; the settlement (``settled_now`` False when it was settled before)."""
    claim_id = claim_id.strip()
    if not claim_id:
        raise InvalidInput("medical.claim.empty", "give the claim id", FIELD)
    node = _insured_node(world, claim_id)
    uow = UnitOfWork(world.region(node))
    store = uow.get(MedicalRepository)
    place = _till(world, node, outlet) if outlet is not None else None
    with uow:
        staff = operators.require_operator(uow.db, operator, roles=CASH_ROLES if place else ROLES)
        claim = store.claim(claim_id)
        assert claim is not None  # _insured_node found it
        owed = claim["owed_fen"]
        if claim["owed_settled_at"] is not None:
            party = next(account for account, _ in ledger.legs(uow, claim["owed_txn_id"]) if account != DUE)
            return _view(claim, node, settled_now=False, via=_via(party), party=party)
        if not owed:
            raise RuleRefused("medical.owed.none", f"claim {claim_id} left nothing owed", FIELD)
        if place is not None:
            party = ledger.ensure_internal_account(uow, ledger.cash_account(place["code"]), "cash", now)
        else:
            party = _holder_account(uow, claim)
        txn_id = f"MED-{claim_id}-OWED"
        # owed > 0: the holder pays the fund what it is due; < 0: the fund pays the holder.
        entries = [(DUE, owed), (party, -owed)]
        ledger.post(uow, txn_id=txn_id, entries=entries, kind="medical_owed", operator=staff["code"],
                    outlet=place["code"] if place else None,
                    memo=f"claim {claim_id}: owed after reconciliation settled", now=now)
        store.mark_owed_settled(claim_id, txn_id=txn_id, at=timestamp(now))
        audit.record(uow.db, at=now, operator=staff["code"], outlet=place["code"] if place else None,
                     action="medical.settle_owed", subject=claim["card_number"],
                     details={"claim_id": claim_id, "owed_fen": owed, "txn_id": txn_id,
                              "via": "cash" if place else "account"})
        claim = {**claim, "owed_txn_id": txn_id, "owed_settled_at": timestamp(now)}
        uow.finish()
    return _view(claim, node, settled_now=True, via=_via(party), party=party)


def _insured_node(world: World, claim_id: str) -> str:
    """The region whose insured the claim is, among those the world holds (a process that serves one region
    settles its own insured's claims)."""
    for node in REGION_NODES:
        if not world.holds(node):
            continue
        if UnitOfWork(world.region(node)).get(MedicalRepository).has_claim(claim_id):
            return node
    raise NotFound("medical.claim.unknown", f"no claim {claim_id} (an offline claim is settled by `sbcard medical "
                   "reconcile` first)", FIELD)


def _till(world: World, node: str, outlet: str) -> dict[str, Any]:
    place = lookup.get_outlet(world, outlet)
    if place["kind"] != "bank_branch" or place["node"] != node:
        raise RuleRefused("medical.owed.outlet", f"cash is settled at a bank-branch outlet of {NODE_NAMES[node]} "
                          f"(the insured region); {place['code']} is not one", "--outlet")
    return place


def _holder_account(uow: UnitOfWork, claim: dict[str, Any]) -> str:
    """The holder's open financial account (it follows them to a replacement card)."""
    account = ledger.open_account_of(uow, claim["citizen_id"])
    if account is None:
        raise RuleRefused("account.none", "the holder has no open financial account: settle in cash at a "
                          "bank-branch outlet (--outlet)", "--outlet")
    return account


def _via(party: str) -> str:
    return "cash" if party.startswith(ledger.cash_account("")) else "account"


def _view(claim: dict[str, Any], node: str, *, settled_now: bool, via: str | None = None,
          party: str | None = None) -> dict[str, Any]:
    return {"claim_id": claim["claim_id"], "card_number": claim["card_number"], "insured_node": node,
            "owed_fen": claim["owed_fen"], "direction": "from_holder" if claim["owed_fen"] > 0 else "to_holder",
            "via": via, "account_no": party if via == "account" else None, "txn_id": claim["owed_txn_id"],
            "settled_at": claim["owed_settled_at"], "settled_now": settled_now}
