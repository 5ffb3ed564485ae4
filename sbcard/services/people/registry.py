"""The registry of one region: persons, their insurance enrolment and their guardians.

A person is held by the region they are insured with (docs/card-service.md): that region
issues their card and keeps its account. Sex and birth date are never typed in: they
come from the citizen ID, so they cannot disagree with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.regions import NODE_NAMES
from sbcard.reference import load_ethnicities
from sbcard.services.outlets import audit
from sbcard.services.people.imports import SYSTEM, ImportReport, import_persons
from sbcard.services.people.record import RESIDENCES, PersonRecord, check_person, check_registry_node
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import node_of_db


# The command line's name for each field of a record (errors name what the user typed).
OPTIONS = {
    "citizen_id": "--citizen-id",
    "name": "--name",
    "region": "--region",
    "insured_region": "--insured-region",
    "insurance": "--insurance",
    "retired": "--retired",
    "ethnicity": "--ethnicity",
    "phone": "--phone",
    "address": "--address",
    "photo_ref": "--photo",
    "guardian_id": "--guardian-id",
    "guardian_relation": "--guardian-relation",
    "residence": "--residence",
}

__all__ = ["SYSTEM", "ImportReport", "OPTIONS", "add_person", "get_person", "import_persons", "insert_person",
           "record_personal_data_shown"]


def add_person(db: sqlite_utils.Database, *, now: datetime, operator: str = SYSTEM, **fields: Any) -> dict[str, Any]:
    """Register a person in this region (`db` = the region they are insured with).

    `fields` are those of `check_person`: citizen_id, name, region and insurance, and the
    optional ones. Refuses (with the command-line option in the error) a field that is
    wrong, a person insured elsewhere, and a citizen ID already registered here
    ("person.exists").
    """
    try:
        record = check_person(today=now.date(), **fields)
        check_registry_node(record, node_of_db(db))
    except SbcardError as e:
        raise type(e)(e.code, e.message, OPTIONS.get(e.field or "", e.field)) from None
    with UnitOfWork(db).step():
        if db["persons"].count_where("citizen_id = ?", [record.citizen_id.value]):
            raise RuleRefused(
                "person.exists",
                f"{record.citizen_id.masked()} is already registered in {NODE_NAMES[record.node]}",
                "--citizen-id",
            )
        insert_person(db, record, now)
        audit.record(db, at=now, operator=operator, action="person.add", subject=record.citizen_id.value,
                     details={"insured_region": record.insured_region, "insurance": record.insurance})
    return get_person(db, record.citizen_id.value)  # type: ignore[return-value]


def insert_person(db: sqlite_utils.Database, record: PersonRecord, now: datetime) -> None:
    """Write one checked record's rows; the caller holds the transaction."""
    at = timestamp(now)
    db["persons"].insert(record.person_row(at))
    db["enrolments"].insert(record.enrolment_row(at))
    guardian = record.guardian_row()
    if guardian is not None:
        db["guardians"].insert(guardian)


def get_person(db: sqlite_utils.Database, citizen_id: str) -> dict[str, Any] | None:
    """The person with their enrolment and guardians, or None when not registered here."""
    key = "".join((citizen_id or "").split()).upper()
    rows = list(
        db.query(
            """SELECT p.*, e.insured_region, e.insurance_type, e.retired, e.since
               FROM persons p LEFT JOIN enrolments e USING (citizen_id)
               WHERE p.citizen_id = ?""",
            [key],
        )
    )
    if not rows:
        return None
    row = rows[0]
    guardians = [
        {"citizen_id": g["guardian_id"], "relation": g["relation"]}
        for g in db.query("SELECT guardian_id, relation FROM guardians WHERE minor_id = ? ORDER BY guardian_id", [key])
    ]
    return {
        "citizen_id": row["citizen_id"],
        "name": row["name"],
        "sex": row["sex"],
        "birth_date": row["birth_date"],
        "ethnicity": row["ethnicity"],
        "ethnicity_name": load_ethnicities().get(row["ethnicity"]),
        "phone": row["phone"],
        "address": row["address"],
        "photo_ref": row["photo_ref"],
        "household_region": row["household_region"],
        "residence": row["residence"],
        "insured_region": row["insured_region"],
        "insurance": row["insurance_type"],
        "retired": bool(row["retired"]),
        "insured_since": row["since"],
        "guardians": guardians,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def record_personal_data_shown(
    db: sqlite_utils.Database, *, citizen_id: str, operator: str, command: str, now: datetime
) -> None:
    """Revealing a person's data is itself recorded, in the registry that holds them."""
    with UnitOfWork(db).step():
        audit.record(db, at=now, operator=operator, action="show_personal", subject=citizen_id,
                     details={"command": command})


def set_residence(db: sqlite_utils.Database, *, citizen_id: str, residence: str, operator: str,
                  now: datetime) -> dict[str, Any]:
    """Record a person's residence status (户籍 / 居住证 where they live), seen on their papers at a counter."""
    if residence not in RESIDENCES:
        raise InvalidInput("person.residence", f"{residence!r} is not one of {', '.join(RESIDENCES)}", "--residence")
    key = "".join((citizen_id or "").split()).upper()
    with UnitOfWork(db).step():
        row = db.execute("SELECT residence FROM persons WHERE citizen_id = ?", [key]).fetchone()
        if row is None:
            raise NotFound("person.unknown", "the person is not in this region's registry", "CITIZEN_ID")
        if row[0] != residence:
            db.execute("UPDATE persons SET residence = ?, updated_at = ? WHERE citizen_id = ?",
                       [residence, timestamp(now), key])
            audit.record(db, at=now, operator=operator, action="person.residence", subject=key,
                         details={"before": row[0], "after": residence})
    return get_person(db, key)  # type: ignore[return-value]
