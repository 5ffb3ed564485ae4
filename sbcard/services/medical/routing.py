"""Medical claims between regions: hospital node → hub → insured node, each exchange recorded once.

A point of sale's claim (``sbcard.domain.medical_claim.ClaimRequest``) is settled by the
holder's insured region (``sbcard.services.medical.host``), which the hub reaches only
while its link is up (``sbcard.services.exchange.links``). Every exchange goes through the hub
and is recorded in its ``messages`` under the idempotency key ``<kind>/<claim id>``
(``medical.settle/BJH003-00000042``, ``medical.refund/…``) with the answer (the key
claimed first, so the same claim at once is not asked twice), as the transit uploads do:

- a settle sent again (a point of sale's retry, a reconciliation repeated after a crash)
  gets the recorded answer and the insured region does nothing (it also keeps each
  claim id once);
- a refund recorded before is refused as refunded already.

A refusal by a rule is not recorded: nothing happened, the caller is told why.

``reconcile`` sends the claims the hospitals' regions queued while an insured region was
down, oldest first, once its link is up again — on demand (``sbcard medical reconcile``)
and, for that region, before every online settle (so a holder's accumulators take the
claims in the order they happened).

Every exchange is a routed exchange (``sbcard.services.exchange.routed``): in process over the
whole world; in a process that serves one region, through the hub's process over HTTP to the
insured region's process. There an insured region "reachable" also means its process answers
now (a point of sale otherwise settles offline), and a region's process reconciles its own
hospitals' queue (its courier does, every round). A settle whose answer is lost on the way
(``ExchangeInDoubt``) is kept in that queue in doubt, never settled offline, and the same
reconciliation settles it by its key.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sbcard.domain import medical
from sbcard.domain.errors import NotFound, RuleRefused, SbcardError
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.services.cards import pin
from sbcard.services.exchange import directory as hub_directory, outbox, peers, routed
from sbcard.services.exchange.peers import ExchangeInDoubt, PeerUnavailable
from sbcard.services.medical import claims as medical_claims, host as medical_host
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World

SETTLE = "medical.settle"
REFUND = "medical.refund"


class Unreachable(RuleRefused):
    """The hub cannot reach a region's host (its link is down)."""


def reachable(world: World, node: str) -> bool:
    """Whether the hub reaches ``node``: its link (``links``); in a process that serves one node, also the
    node's process answering now (``routed.answering``)."""
    return routed.answering(world, node)


def insured_node_of(request: ClaimRequest) -> str:
    return node_of(request.insured_region)


def settle(world: World, request: ClaimRequest, *, hospital_node: str, now: dt.datetime) -> dict[str, Any]:
    """Route one claim to its insured region and return the settled claim's view.

    ``Unreachable`` when either end's link is down (the point of sale then settles
    offline). Claims queued for that region are reconciled first. ``PeerUnavailable`` when
    the hub's process or the insured region's could not be reached (nothing done: the point of
    sale may settle offline); ``ExchangeInDoubt`` when the answer was lost on the way — the
    claim may be settled, so it is kept in doubt at the hospital's region (in its offline queue,
    the online request as it was sent) and ``reconcile`` settles it by the same key: the hub's
    recorded answer, or the insured region's (which keeps each claim id once). Never offline.
    """
    insured = insured_node_of(request)
    for node in (hospital_node, insured):
        if not reachable(world, node):
            raise Unreachable("link.down", f"the hub cannot reach {NODE_NAMES[node]} ({node}): its link is down"
                              + ("" if world.whole else " or its process does not answer"))
    if any(medical_claims.has_queued(UnitOfWork(world.region(n)), insured) for n in REGION_NODES
           if world.holds(n)):  # a hospital's region elsewhere reconciles its own queue (its courier)
        reconcile(world, now=now, insured_node=insured)
    try:
        return _exchange(world, SETTLE, request.claim_id, from_node=hospital_node, to_node=insured,
                         payload=request.to_json(), now=now)[0]
    except ExchangeInDoubt:
        if world.holds(hospital_node):  # kept in doubt at the hospital's region: ``reconcile`` finds out
            medical_claims.keep_in_doubt(UnitOfWork(world.region(hospital_node)), request, insured_node=insured,
                                         now=now)
        raise


def _exchange(world: World, kind: str, claim_id: str, *, from_node: str, to_node: str, payload: dict[str, Any],
              now: dt.datetime) -> tuple[dict[str, Any], bool]:
    """(answer, True if recorded before) of one exchange, recorded once in the hub's ``messages``.

    A routed exchange (``sbcard.services.exchange.routed``, the kind's use case registered
    below): in process over the whole world, through the hub's process over HTTP in a
    process that serves one node."""
    key = f"{kind}/{claim_id}"
    return routed.exchange(world, kind, key, from_node=from_node, to_node=to_node, payload=payload,
                           record=_record(payload), now=now)


def _record(payload: dict[str, Any]) -> str:
    """What the hub keeps of a claim's exchange (and compares a second request with): the payload's JSON text,
    computed by the hub itself from what it forwards (``routed.Kind.record``)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _settle_routed(uow: UnitOfWork, payload: dict[str, Any], _from_node: str, now: dt.datetime) -> dict[str, Any]:
    return medical_host.settle(uow, ClaimRequest.from_json(payload), now=now)


def _refund_routed(uow: UnitOfWork, payload: dict[str, Any], _from_node: str, now: dt.datetime) -> dict[str, Any]:
    return medical_host.refund(uow, payload["claim_id"], payload["items"] or None, now=now,
                               requested_by=payload.get("requested_by"))


# the kept answer is replayed only to the same request: another hospital (or another claim under a claim id
# already used) is never given someone else's settlement
routed.register(SETTLE, routed.Kind(apply=lambda *args: _settle_routed(*args), same_request=(
    "medical.claim.exists", "claim {id} was settled already with another request: a claim id is settled once, for "
    "the request that used it first", "claim_id"), record=_record))
# a refund is asked at the insured region (the answering one) on the hospital's claim: it may sign it to the hub
routed.register(REFUND, routed.Kind(apply=lambda *args: _refund_routed(*args), record=_record, answerer_asks=True))


def find_claim(world: World, claim_id: str) -> tuple[str, dict[str, Any]] | None:
    """(insured node, claim view) of a settled claim, looked for in the three regions (those this world holds:
    a process that serves one region finds its own insured's claims)."""
    for node in _held(world):
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
        for node in _held(world):
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
                               payload={"claim_id": claim_id, "items": list(codes or []),
                                        "requested_by": requested_by}, now=now)
    if before:
        raise RuleRefused("medical.refund.done", f"claim {claim_id} was refunded already", "CLAIM_ID")
    return answer


def reconcile(world: World, *, now: dt.datetime, insured_node: str | None = None) -> dict[str, Any]:
    """Send the queued offline claims (all, or ``insured_node``'s) whose region is reachable.

    Returns ``{"reconciled": [claim], "refused": [{claim_id, code, message}], "waiting":
    [{claim_id, insured_node}]}``; a refused claim leaves the queue with the refusal kept.
    A process that serves one region sends its own hospitals' queue (through the hub's
    process); an insured region out of reach (its link down, or its process or the hub's not
    answering) leaves its claims waiting.
    """
    out: dict[str, list[dict[str, Any]]] = {"reconciled": [], "refused": [], "waiting": []}
    pending = []
    for hospital_node in _held(world):
        for row in medical_claims.queued(UnitOfWork(world.region(hospital_node)), insured_node):
            pending.append((row["queued_at"], row["claim_id"], hospital_node, row))
    reach: dict[str, bool] = {}  # asked once per region in a run (over HTTP, one node per process)

    def up(node: str) -> bool:
        if node not in reach:
            reach[node] = reachable(world, node)
        return reach[node]

    for _, claim_id, hospital_node, row in sorted(pending, key=lambda p: (p[0], p[1])):
        insured = row["insured_node"]
        if not (up(insured) and up(hospital_node)):
            out["waiting"].append({"claim_id": claim_id, "insured_node": insured})
            continue
        request = ClaimRequest.from_json(json.loads(row["request"]))
        try:
            answer, _ = _exchange(world, SETTLE, claim_id, from_node=hospital_node, to_node=insured,
                                  payload=request.to_json(), now=now)
        except PeerUnavailable:  # the hub's or the insured region's process stopped answering: later
            reach[insured] = False
            out["waiting"].append({"claim_id": claim_id, "insured_node": insured})
            continue
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


def _held(world: World) -> list[str]:
    return [node for node in REGION_NODES if world.holds(node)]


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
        if self.world.holds(HUB):
            hub = self.world.hub()
            entry = hub_directory.card_entry(hub, card_number)
            listed = entry is not None and hub_directory.is_blacklisted(hub, card_number)
        else:  # asked of the hub's process
            entry = peers.ask(self.world, HUB, "directory.card_entry", card_number=card_number)
            listed = entry is not None and peers.ask(self.world, HUB, "directory.is_blacklisted",
                                                     card_number=card_number)
        if entry is None:
            return None
        return {"status": entry["status"], "issuing_region": entry["issuing_region"], "blacklisted": listed}

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
