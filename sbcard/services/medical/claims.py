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

import sqlite_utils

from sbcard.domain.errors import RuleRefused
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork

SERIAL_DIGITS = 8


def new_claim_id(db: sqlite_utils.Database, hospital: str) -> tuple[str, int]:
    """(claim id, serial) for a new claim at ``hospital``: committed at once in the hospital's region."""
    with UnitOfWork(db) as uow:
        serial = next_value(uow.db, f"medical_claim:{hospital}")
        uow.commit()
    if serial >= 10**SERIAL_DIGITS:
        raise RuleRefused("medical.claim_ids", f"hospital {hospital} has used all its claim numbers")
    return f"{hospital}-{serial:0{SERIAL_DIGITS}d}", serial


def queue_offline(db: sqlite_utils.Database, request: ClaimRequest, offline: dict[str, Any], *,
                  insured_node: str, now: dt.datetime) -> dict[str, Any]:
    """Keep an offline claim for its insured region; its queue row."""
    row = {
        "claim_id": request.claim_id, "hospital": request.hospital, "card_number": request.card_number,
        "insured_node": insured_node, "status": "queued",
        "request": json.dumps(request.to_json(), ensure_ascii=False, separators=(",", ":")),
        "offline": json.dumps(offline, ensure_ascii=False, separators=(",", ":")), "result": None,
        "queued_at": timestamp(now), "reconciled_at": None,
    }
    with UnitOfWork(db) as uow:
        uow.db["medical_offline_queue"].insert(row)
        uow.commit()
    return queue_view(row)


def queued(db: sqlite_utils.Database, insured_node: str | None = None) -> list[dict[str, Any]]:
    """The claims still waiting, oldest first (only ``insured_node``'s, if given)."""
    sql = "SELECT * FROM medical_offline_queue WHERE status = 'queued'"
    args: list[Any] = []
    if insured_node:
        sql += " AND insured_node = ?"
        args.append(insured_node)
    return list(db.query(sql + " ORDER BY queued_at, claim_id", args))


def has_queued(db: sqlite_utils.Database, insured_node: str) -> bool:
    return db.execute("SELECT 1 FROM medical_offline_queue WHERE status = 'queued' AND insured_node = ? LIMIT 1",
                      [insured_node]).fetchone() is not None


def mark(db: sqlite_utils.Database, claim_id: str, *, status: str, result: dict[str, Any], now: dt.datetime) -> None:
    """A queued claim delivered (``reconciled``) or refused by its insured region."""
    with UnitOfWork(db) as uow:
        uow.db.execute("UPDATE medical_offline_queue SET status = ?, result = ?, reconciled_at = ? "
                       "WHERE claim_id = ? AND status = 'queued'",
                       [status, json.dumps(result, ensure_ascii=False, default=str), timestamp(now), claim_id])
        uow.commit()


def find(db: sqlite_utils.Database, claim_id: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM medical_offline_queue WHERE claim_id = ?", [claim_id]))
    return queue_view(rows[0]) if rows else None


def entries(db: sqlite_utils.Database, *, card_number: str | None = None, hospital: str | None = None,
            status: str | None = "queued") -> list[dict[str, Any]]:
    where, args = [], []
    for column, value in (("card_number", card_number), ("hospital", hospital), ("status", status)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    sql = "SELECT * FROM medical_offline_queue" + (" WHERE " + " AND ".join(where) if where else "")
    return [queue_view(r) for r in db.query(sql + " ORDER BY queued_at, claim_id", args)]


def queue_view(row: dict[str, Any]) -> dict[str, Any]:
    request = json.loads(row["request"])
    offline = json.loads(row["offline"])
    return {
        "claim_id": row["claim_id"], "status": row["status"], "hospital": row["hospital"],
        "card_number": row["card_number"], "insured_node": row["insured_node"], "at": request["at"],
        "total_fen": offline["total_fen"], "fund_fen": offline["fund_fen"], "account_fen": offline["account_fen"],
        "self_fen": offline["self_fen"], "queued_at": row["queued_at"], "reconciled_at": row["reconciled_at"],
        "result": json.loads(row["result"]) if row["result"] else None,
    }
