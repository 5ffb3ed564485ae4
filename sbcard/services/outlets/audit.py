"""The audit log: who did what to whom, when, from where and why (append-only)."""

from __future__ import annotations

import json
from pathlib import Path

from sbcard.clock import Clock
from sbcard.domain.errors import InvalidInput
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.regions import node_of
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import open_world


def record(db, *, at, operator: str, action: str, subject: str, outlet: str | None = None,
           reason: str | None = None, details: dict | None = None) -> None:
    """Append one entry; call inside the use case's unit of work (a plain INSERT: every use case writes one)."""
    db.execute(
        "INSERT INTO audit_log (at, operator, outlet, action, subject, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [at.isoformat(), operator, outlet, action, subject, reason,
         json.dumps(details or {}, ensure_ascii=False, sort_keys=True)],
    )


def record_personal_data_shown(home: Path, clock: Clock, operator: str | None, snapshot, command: str) -> None:
    """Revealing a holder's ID and name is itself a recorded act, in the issuing region."""
    if not operator:
        raise InvalidInput("operator.missing", "--show-personal needs --operator: revealing personal data is audited",
                           "--operator")
    with open_world(home) as world, UnitOfWork(world.region(node_of(snapshot.region))) as uow:
        record(
            uow.db,
            at=clock.now(),
            operator=operator,
            action="show_personal",
            subject=snapshot.card_number,
            details={"command": command, "citizen_id": mask_citizen_id(snapshot.citizen_id or "")},
        )
        uow.commit()
