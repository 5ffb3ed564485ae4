"""Cross-region registrations (异地就医备案) kept by the insured region (国医保发〔2022〕22号).

A registration is a record at the holder's insured region: its kind (异地安置退休,
异地长期居住, 常驻异地工作, 异地转诊, 其他临时外出就医), the place of treatment's province and
the days it is valid (both counted; a long-term one may be open-ended, a temporary one
has an end). Staff make it at a counter (``operator``) or the holder makes it themselves
(``operator`` ``"holder"``: the 国家医保服务平台 app in real life). An emergency (急诊抢救)
is not registered: it is deemed registered (视同已备案) by the visit itself.

Refused: a first day before the holder was born or more than a year ahead, a last day
more than ten years after the first (typos), a province that is the holder's own, a
temporary kind without an end, a period
that overlaps another registration of the holder for the same province (one place, one
registration at a time: end the old one first), a holder not insured here.
The settlement (``medical_host``) looks up ``valid_on`` for the day of treatment.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.domain import medical
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.concessions import birthday_at
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.masking import mask_citizen_id
from sbcard.services.outlets import audit
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.medical import MedicalRepository
from sbcard.store.unit_of_work import UnitOfWork

HOLDER = "holder"
# Bounds of the input, not rules of the scheme: beyond them a date is a typo.
MAX_DAYS_AHEAD = 366  # a registration's first day at most a year from today
MAX_YEARS = 10  # its last day at most ten years after its first


def _value(row: dict[str, Any]) -> medical.Registration:
    return medical.Registration(row["kind"], row["province"], dt.date.fromisoformat(row["valid_from"]),
                                dt.date.fromisoformat(row["valid_to"]) if row["valid_to"] else None, row["id"])


def view(row: dict[str, Any], today: dt.date | None = None) -> dict[str, Any]:
    """A registration as the CLI shows it (stable keys)."""
    reg = _value(row)
    out: dict[str, Any] = {
        "id": row["id"], "kind": row["kind"], "kind_name": medical.KIND_NAMES[row["kind"]], "province": row["province"],
        "valid_from": row["valid_from"], "valid_to": row["valid_to"], "operator": row["operator"],
        "created_at": row["created_at"], "cancelled_at": row["cancelled_at"]}
    if today is not None:
        out["valid_today"] = row["cancelled_at"] is None and reg.valid_on(today)
    return out


def register(uow: UnitOfWork, *, citizen_id: str, kind: str, province: str, valid_from: dt.date,
             valid_to: dt.date | None, operator: str, now: dt.datetime) -> dict[str, Any]:
    """Record one registration for a holder insured here; its view. See the module doc for refusals."""
    if kind not in medical.REGISTRABLE_KINDS:
        hint = " (an emergency is deemed registered by the visit: --emergency at settlement)" \
            if kind == medical.EMERGENCY else ""
        raise InvalidInput("medical.registration.kind",
                           f"{kind!r} is not one of {', '.join(medical.REGISTRABLE_KINDS)}{hint}", "--kind")
    if province not in medical.PROVINCES:
        raise InvalidInput("medical.registration.province",
                           f"{province!r} is not one of the provinces {', '.join(medical.PROVINCES)}", "--province")
    if kind not in medical.LONG_TERM_KINDS and valid_to is None:
        raise InvalidInput("medical.registration.to", f"a temporary registration ({kind}) needs its last day",
                           "--to")
    if valid_to is not None and valid_to < valid_from:
        raise InvalidInput("medical.registration.to", f"the last day {valid_to} is before the first {valid_from}",
                           "--to")
    born = CitizenId.parse(citizen_id).birth_date
    if valid_from < born:
        raise InvalidInput("medical.registration.from",
                           f"the first day {valid_from} is before the holder was born ({born})", "--from")
    if valid_from > now.date() + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidInput("medical.registration.from", f"the first day {valid_from} is more than a year ahead "
                           f"(a registration is made for a move or a treatment that is coming)", "--from")
    if valid_to is not None and valid_to > birthday_at(valid_from, MAX_YEARS):
        raise InvalidInput("medical.registration.to", f"the last day {valid_to} is more than {MAX_YEARS} years "
                           f"after the first ({valid_from}): a typo, not a registration", "--to")
    store = uow.get(MedicalRepository)
    with uow:
        person = store.enrolment(citizen_id)
        if person is None or not person[0]:
            raise NotFound("medical.not_insured", f"{mask_citizen_id(citizen_id)} is not insured here", "--card")
        if medical.province_of(person[0]) == province:
            raise RuleRefused("medical.registration.home",
                              f"the holder is insured in {province}: treatment there needs no registration",
                              "--province")
        for row in store.live_registrations(citizen_id, province):
            other = _value(row)
            ends = other.valid_to or dt.date.max
            if valid_from <= ends and (valid_to or dt.date.max) >= other.valid_from:
                raise RuleRefused("medical.registration.overlap",
                                  f"registration {row['id']} ({row['kind']}, {row['valid_from']} to "
                                  f"{row['valid_to'] or 'open'}) already covers part of that period in {province}",
                                  "--from")
        reg_id = store.insert_registration({
            "citizen_id": citizen_id, "kind": kind, "province": province, "valid_from": valid_from.isoformat(),
            "valid_to": valid_to.isoformat() if valid_to else None, "operator": operator,
            "created_at": timestamp(now)})
        audit.record(uow.db, at=now, operator=operator, action="medical.register", subject=citizen_id,
                     details={"id": reg_id, "kind": kind, "province": province, "valid_from": valid_from.isoformat(),
                              "valid_to": valid_to.isoformat() if valid_to else None,
                              "citizen_id": mask_citizen_id(citizen_id)})
        row = store.registration(reg_id)
        uow.finish()
    return view(row, now.date())


def cancel(uow: UnitOfWork, *, citizen_id: str, registration_id: int, operator: str,
           now: dt.datetime) -> dict[str, Any]:
    """取消备案: the registration no longer counts from now (claims settled on it stand); its view.

    Refused: a registration that is not this holder's (``NotFound``), one cancelled already.
    """
    store = uow.get(MedicalRepository)
    with uow:
        found = store.registration(registration_id, citizen_id)
        if found is None:
            raise NotFound("medical.registration.unknown", f"the holder has no registration {registration_id}",
                           "REGISTRATION_ID")
        if found["cancelled_at"] is not None:
            raise RuleRefused("medical.registration.cancelled",
                              f"registration {registration_id} was cancelled already ({found['cancelled_at']})",
                              "REGISTRATION_ID")
        store.cancel_registration(registration_id, timestamp(now))
        audit.record(uow.db, at=now, operator=operator, action="medical.register_cancel", subject=citizen_id,
                     details={"id": registration_id, "citizen_id": mask_citizen_id(citizen_id)})
        row = store.registration(registration_id)
        uow.finish()
    return view(row, now.date())


def listing(uow: UnitOfWork, citizen_id: str, today: dt.date) -> list[dict[str, Any]]:
    """A holder's registrations, oldest first, each saying whether it is valid today."""
    return [view(row, today) for row in uow.get(MedicalRepository).registrations(citizen_id)]


def valid_on(uow: UnitOfWork, citizen_id: str, province: str, day: dt.date) -> medical.Registration | None:
    """The holder's registration for treatment in ``province`` valid on ``day`` (not cancelled), if any."""
    for row in uow.get(MedicalRepository).live_registrations(citizen_id, province, newest_first=True):
        reg = _value(row)
        if reg.valid_on(day):
            return reg
    return None
