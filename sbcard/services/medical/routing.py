"""Medical claims between regions: hospital node → hub → insured node, each exchange recorded once.

A point of sale's claim (``sbcard.domain.medical_claim.ClaimRequest``) is settled by the
holder's insured region (``sbcard.services.medical.host``), which the hub reaches only
while its link is up (``sbcard.services.exchange.links``). Every exchange goes through the hub
and is recorded in its ``messages`` under the idempotency key ``<kind>/<claim id>``
(``medical.settle/BJH003-00000042``, ``medical.refund/…``) with the answer, the hub's
write lock held meanwhile, as the transit uploads do:

- a settle sent again (a point of sale's retry, a reconciliation repeated after a crash)
  gets the recorded answer and the insured region does nothing (it also keeps each
  claim id once);
- a refund recorded before is refused as refunded already.

A refusal by a rule is not recorded: nothing happened, the caller is told why.

``reconcile`` sends the claims the hospitals' regions queued while an insured region was
down, oldest first, once its link is up again — on demand (``sbcard medical reconcile``)
and, for that region, before every online settle (so a holder's accumulators take the
claims in the order they happened).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from sbcard.domain import medical
from sbcard.domain.errors import NotFound, RuleRefused, SbcardError
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.services.cards import pin
from sbcard.services.exchange import directory as hub_directory, links, outbox
from sbcard.services.medical import claims as medical_claims, host as medical_host
from sbcard.store.repositories.exchange import HubExchanges
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World

SETTLE = "medical.settle"
REFUND = "medical.refund"


class Unreachable(RuleRefused):
    """The hub cannot reach a region's host (its link is down)."""


def reachable(world: World, node: str) -> bool:
    return links.is_up(world.hub(), node)


def insured_node_of(request: ClaimRequest) -> str:
    return node_of(request.insured_region)


def settle(world: World, request: ClaimRequest, *, hospital_node: str, now: dt.datetime) -> dict[str, Any]:
    """Route one claim to its insured region and return the settled claim's view.

    ``Unreachable`` when either end's link is down (the point of sale then settles
    offline). Claims queued for that region are reconciled first.
    """
    insured = insured_node_of(request)
    for node in (hospital_node, insured):
        if not reachable(world, node):
            raise Unreachable("link.down", f"the hub cannot reach {NODE_NAMES[node]} ({node}): its link is down")
    if any(medical_claims.has_queued(UnitOfWork(world.region(n)), insured) for n in REGION_NODES):
        reconcile(world, now=now, insured_node=insured)
    return _exchange(world, SETTLE, request.claim_id, from_node=hospital_node, to_node=insured,
                     payload=request.to_json(), now=now,
                     apply=lambda uow: medical_host.settle(uow, request, now=now))[0]


def _exchange(world: World, kind: str, claim_id: str, *, from_node: str, to_node: str, payload: dict[str, Any],
              now: dt.datetime,
              apply: Callable[[UnitOfWork], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(answer, True if recorded before) of one exchange, recorded once in the hub's ``messages``.

    ``apply`` takes a unit of work over the insured region (``to_node``) and runs its use case."""
    key = f"{kind}/{claim_id}"
    sent = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    with UnitOfWork(world.hub()) as hub:
        exchanges = hub.get(HubExchanges)
        recorded = exchanges.recorded(key)
        if recorded is not None:
            # the kept answer is replayed only to the same request: another hospital (or another claim
            # under a claim id already used) is never given someone else's settlement
            if kind == SETTLE and (recorded["from_node"] != from_node or recorded["payload"] != sent):
                raise RuleRefused("medical.claim.exists", f"claim {claim_id} was settled already with another "
                                  "request: a claim id is settled once, for the request that used it first",
                                  "claim_id")
            return json.loads(recorded["result"]), True
        answer = apply(UnitOfWork(world.region(to_node)))
        exchanges.record({
            "idempotency_key": key, "kind": kind, "from_node": from_node, "to_node": to_node,
            "received_at": now.isoformat(),
            "payload": sent,
            "result": json.dumps(answer, ensure_ascii=False, separators=(",", ":"), default=str),
        })
        hub.commit()
    return answer, False


def find_claim(world: World, claim_id: str) -> tuple[str, dict[str, Any]] | None:
    """(insured node, claim view) of a settled claim, looked for in the three regions."""
    for node in REGION_NODES:
        view = medical_host.get_claim(UnitOfWork(world.region(node)), claim_id)
        if view is not None:
            return node, view
    return None


def refund(world: World, claim_id: str, codes: Sequence[str] | None, *, now: dt.datetime,
           requested_by: str | None = None) -> dict[str, Any]:
    """退费 through the hub: ``{"refunded": claim, "resettled": claim | None}`` (``medical_host.refund``;
    ``requested_by`` is audited in the refund's own transaction)."""
    claim_id = claim_id.strip()
    found = find_claim(world, claim_id)
    if found is None:
        for node in REGION_NODES:
            queued = medical_claims.find(UnitOfWork(world.region(node)), claim_id)
            if queued is not None and queued["status"] == "queued":
                raise RuleRefused("medical.claim.queued", f"claim {claim_id} was settled offline and is not "
                                  "reconciled yet: run `sbcard medical reconcile` once its region is reachable",
                                  "CLAIM_ID")
        raise NotFound("medical.claim.unknown", f"no claim {claim_id}", "CLAIM_ID")
    insured, claim = found
    if not reachable(world, insured):
        raise Unreachable("link.down", f"the hub cannot reach {NODE_NAMES[insured]} ({insured}): refund when its "
                          "link is up", "CLAIM_ID")
    if claim["status"] == "refunded":
        raise RuleRefused("medical.refund.done", f"claim {claim_id} was refunded already ({claim['refunded_at']})",
                          "CLAIM_ID")
    answer, before = _exchange(world, REFUND, claim_id, from_node=claim["hospital_node"], to_node=insured,
                               payload={"claim_id": claim_id, "items": list(codes or [])}, now=now,
                               apply=lambda uow: medical_host.refund(uow, claim_id, codes, now=now,
                                                                    requested_by=requested_by))
    if before:
        raise RuleRefused("medical.refund.done", f"claim {claim_id} was refunded already", "CLAIM_ID")
    return answer


def reconcile(world: World, *, now: dt.datetime, insured_node: str | None = None) -> dict[str, Any]:
    """Send the queued offline claims (all, or ``insured_node``'s) whose region is reachable.

    Returns ``{"reconciled": [claim], "refused": [{claim_id, code, message}], "waiting":
    [{claim_id, insured_node}]}``; a refused claim leaves the queue with the refusal kept.
    """
    out: dict[str, list[dict[str, Any]]] = {"reconciled": [], "refused": [], "waiting": []}
    pending = []
    for hospital_node in REGION_NODES:
        for row in medical_claims.queued(UnitOfWork(world.region(hospital_node)), insured_node):
            pending.append((row["queued_at"], row["claim_id"], hospital_node, row))
    for _, claim_id, hospital_node, row in sorted(pending, key=lambda p: (p[0], p[1])):
        insured = row["insured_node"]
        if not (reachable(world, insured) and reachable(world, hospital_node)):
            out["waiting"].append({"claim_id": claim_id, "insured_node": insured})
            continue
        request = ClaimRequest.from_json(json.loads(row["request"]))
        try:
            answer, _ = _exchange(world, SETTLE, claim_id, from_node=hospital_node, to_node=insured,
                                  payload=request.to_json(), now=now,
                                  apply=lambda uow, r=request: medical_host.settle(uow, r, now=now))
        except SbcardError as refused:
            result = {"refused": refused.code, "message": refused.message}
            medical_claims.mark(UnitOfWork(world.region(hospital_node)), claim_id, status="refused", result=result,
                                now=now)
            out["refused"].append({"claim_id": claim_id, "code": refused.code, "message": refused.message})
            continue
        medical_claims.mark(UnitOfWork(world.region(hospital_node)), claim_id, status="reconciled",
                            result={"claim_id": claim_id, "fund_fen": answer["fund_fen"],
                                    "self_fen": answer["self_fen"], "adjustment_fen": answer["adjustment_fen"],
                                    "owed_fen": answer["owed_fen"]}, now=now)
        out["reconciled"].append(answer)
    return out


def hospital_node(hospital: medical.Hospital) -> str:
    return node_of(hospital.region)


class PosHost:
    """The service behind a hospital's point of sale (``terminals.apps.medical.MedicalHost``).

    The card's status comes from the hub's directory (messages still in a region's outbox
    are delivered first), claim ids and the offline queue from the hospital's region, the
    settlement from the insured region through the hub.
    """

    def __init__(self, world: World, *, now: dt.datetime) -> None:
        self.world, self.now = world, now
        outbox.deliver_pending(world, now)

    def card_status(self, card_number: str) -> dict[str, Any] | None:
        hub = self.world.hub()
        entry = hub_directory.card_entry(hub, card_number)
        if entry is None:
            return None
        return {"status": entry["status"], "issuing_region": entry["issuing_region"],
                "blacklisted": hub_directory.is_blacklisted(hub, card_number)}

    def reachable(self, hospital: medical.Hospital, insured_node: str) -> bool:
        return reachable(self.world, hospital_node(hospital)) and reachable(self.world, insured_node)

    def new_claim(self, hospital: medical.Hospital) -> tuple[str, int]:
        return medical_claims.new_claim_id(UnitOfWork(self.world.region(hospital_node(hospital))), hospital.code)

    def issued(self, hospital: medical.Hospital, claim_id: str) -> bool:
        """Whether ``claim_id`` is one ``new_claim`` handed out to ``hospital`` (by its region)."""
        return medical_claims.was_issued(UnitOfWork(self.world.region(hospital_node(hospital))), hospital.code,
                                         claim_id)

    def settle(self, hospital: medical.Hospital, request: ClaimRequest) -> dict[str, Any]:
        return settle(self.world, request, hospital_node=hospital_node(hospital), now=self.now)

    def pin_blocked(self, card_number: str) -> None:
        pin.record_pin_blocked(self.world, card_number=card_number, now=self.now)

    def queue_offline(self, hospital: medical.Hospital, request: ClaimRequest, settlement: medical.Settlement) -> dict[str, Any]:
        return medical_claims.queue_offline(UnitOfWork(self.world.region(hospital_node(hospital))), request,
                                            settlement.to_json(), insured_node=insured_node_of(request), now=self.now)


def refund_summary(done: dict[str, Any], items: Any) -> dict[str, Any]:
    """What a refund gave back (the refund less what the kept items were settled again for), as the CLI and
    the API answer it: ``done`` is ``refund``'s answer, ``items`` the item codes asked for (None: all)."""
    refunded, resettled = done["refunded"], done["resettled"]
    back = {key: refunded[total] - (resettled[total] if resettled else 0)
            for key, total in (("refund_fen", "total_fen"), ("fund_fen", "fund_fen"), ("account_fen", "account_fen"),
                               ("self_fen", "self_fen"))}
    return {"claim_id": refunded["claim_id"], "status": refunded["status"], "items": items, **back,
            "refunded": refunded, "resettled": resettled}
