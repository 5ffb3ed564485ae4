"""The hospital's region (就医地): claim ids, and the queue of claims settled offline.

Claim ids are the hospital's: ``<hospital code>-<8-digit serial>`` (``BJH003-00000042``), the
serial from the hospital's region's sequence ``medical_claim:<hospital>``, taken in its own
small transaction before the claim leaves the point of sale (a claim refused afterwards
leaves a gap, never a number used twice). The serial is what the card's medical log
(DF04/EF08) records.

A claim settled offline (the insured region unreachable) waits in
``medical_offline_queue`` with what the point of sale sent and the split it made, until
``sbcard.services.medical.routing.reconcile`` delivers it; the insured region's answer (or its
refusal, for staff) is kept with it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sbcard.domain.errors import RuleRefused
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.medical import MedicalRepository
from sbcard.store.sequences import current_value, next_value
from sbcard.store.unit_of_work import UnitOfWork

SERIAL_DIGITS = 8


def new_claim_id(uow: UnitOfWork, hospital: str) -> tuple[str, int]:
    """(claim id, serial) for a new claim at ``hospital``: committed at once in the hospital's region."""
    with uow:
        serial = next_value(uow.db, f"medical_claim:{hospital}")
        uow.finish()
    if serial >= 10**SERIAL_DIGITS:
        raise RuleRefused("medical.claim_ids", f"hospital {hospital} has used all its claim numbers")
    return f"{hospital}-{serial:0{SERIAL_DIGITS}d}", serial


def was_issued(uow: UnitOfWork, hospital: str, claim_id: str) -> bool:
    """Whether ``claim_id`` is ``<hospital>-<serial>`` with a serial the hospital's region already handed out."""
    prefix = f"{hospital}-"
    serial = claim_id[len(prefix):]
    if not claim_id.startswith(prefix) or len(serial) != SERIAL_DIGITS or not serial.isascii() \
            or not serial.isdigit():
        return False
    return 1 <= int(serial) <= current_value(uow.db, f"medical_claim:{hospital}")


def queue_offline(uow: UnitOfWork, request: ClaimRequest, offline: dict[str, Any], *,
                  insured_node: str, now: dt.datetime) -> dict[str, Any]:
    """Keep an offline claim for its insured region; its queue row."""
    row = {
        "claim_id": request.claim_id, "hospital": request.hospital, "card_number": request.card_number,
        "insured_node": insured_node, "status": "queued",
        "request": json.dumps(request.to_json(), ensure_ascii=False, separators=(",", ":")),
        "offline": json.dumps(offline, ensure_ascii=False, separators=(",", ":")), "result": None,
        "queued_at": timestamp(now), "reconciled_at": None,
    }
    with uow:
        uow.get(MedicalRepository).queue(row)
        uow.finish()
    return queue_view(row)


IN_DOUBT = {"in_doubt": True, "total_fen": None, "fund_fen": None, "account_fen": None, "self_fen": None}


def keep_in_doubt(uow: UnitOfWork, request: ClaimRequest, *, insured_node: str, now: dt.datetime) -> None:
    """An online claim whose answer was lost between the regions (``routing.settle``): kept in the offline queue,
    its request as sent online and ``offline`` marked in doubt (no offline split), so that ``reconcile`` asks the
    hub for it again under the same key. Kept once: a claim id already in the queue is left as it is."""
    with uow:
        store = uow.get(MedicalRepository)
        if store.queued_claim(request.claim_id) is None:
            store.queue({
                "claim_id": request.claim_id, "hospital": request.hospital, "card_number": request.card_number,
                "insured_node": insured_node, "status": "queued",
                "request": json.dumps(request.to_json(), ensure_ascii=False, separators=(",", ":")),
                "offline": json.dumps(IN_DOUBT, separators=(",", ":")), "result": None,
                "queued_at": timestamp(now), "reconciled_at": None,
            })
        uow.finish()


def queued(uow: UnitOfWork, insured_node: str | None = None) -> list[dict[str, Any]]:
    """The claims still waiting, oldest first (only ``insured_node``'s, if given)."""
    return uow.get(MedicalRepository).queued(insured_node)


def has_queued(uow: UnitOfWork, insured_node: str) -> bool:
    return uow.get(MedicalRepository).has_queued(insured_node)


def mark(uow: UnitOfWork, claim_id: str, *, status: str, result: dict[str, Any], now: dt.datetime) -> None:
    """A queued claim delivered (``reconciled``) or refused by its insured region."""
    with uow:
        uow.get(MedicalRepository).mark_queued(claim_id, status=status, at=timestamp(now),
                                               result=json.dumps(result, ensure_ascii=False, default=str))
        uow.finish()


def find(uow: UnitOfWork, claim_id: str) -> dict[str, Any] | None:
    row = uow.get(MedicalRepository).queued_claim(claim_id)
    return queue_view(row) if row is not None else None


def entries(uow: UnitOfWork, *, card_number: str | None = None, hospital: str | None = None,
            status: str | None = "queued") -> list[dict[str, Any]]:
    return [queue_view(r) for r in uow.get(MedicalRepository).queue_entries(card_number=card_number,
                                                                             hospital=hospital, status=status)]


def listed(entry: dict[str, Any]) -> dict[str, Any]:
    """A claim waiting at the hospital's region (``entries``) as a row of the claims list, beside the settled
    ones: queued offline, or an online claim whose answer was lost (in doubt), with no refund of its own."""
    in_doubt = entry["in_doubt"]
    return {"claim_id": entry["claim_id"], "status": "in_doubt" if in_doubt else "queued",
            "mode": "online" if in_doubt else "offline", "card_number": entry["card_number"],
            "hospital": entry["hospital"], "insured_node": entry["insured_node"], "at": entry["at"],
            "total_fen": entry["total_fen"], "fund_fen": entry["fund_fen"], "account_fen": entry["account_fen"],
            "self_fen": entry["self_fen"], "refund_of": None}


def queue_view(row: dict[str, Any]) -> dict[str, Any]:
    request = json.loads(row["request"])
    offline = json.loads(row["offline"])
    return {
        "claim_id": row["claim_id"], "status": row["status"], "hospital": row["hospital"],
        "card_number": row["card_number"], "insured_node": row["insured_node"], "at": request["at"],
        "total_fen": offline["total_fen"], "fund_fen": offline["fund_fen"], "account_fen": offline["account_fen"],
        "self_fen": offline["self_fen"], "in_doubt": bool(offline.get("in_doubt")), "queued_at": row["queued_at"],
        "reconciled_at": row["reconciled_at"],
        "result": json.loads(row["result"]) if row["result"] else None,
    }
