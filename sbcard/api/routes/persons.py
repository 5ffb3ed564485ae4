"""Persons in the registries: register, show (masked unless revealed, audited), record residence."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StrictBool, StrictInt

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import body_fields
from sbcard.api.reads import require_read_scope
from sbcard.domain.masking import mask_person
from sbcard.domain.staff import AUDITOR, COUNTER, SUPERVISOR
from sbcard.services.exchange import people_desk
from sbcard.services.people.registry import record_personal_data_shown
from sbcard.store.world import World

router = APIRouter(prefix="/persons", tags=["persons"])

COUNTER_ACTS = (COUNTER, SUPERVISOR)
READERS = (COUNTER, SUPERVISOR, AUDITOR)
# the CLI's option → this body's field, where they differ
_FIELDS = {"photo": "photo_ref"}


class NewPerson(BaseModel):
    citizen_id: str = Field(max_length=40, description="The citizen ID (社会保障号码); sex and birth date come from it.")
    name: str = Field(max_length=60, description="As printed on the card (GBK, at most 30 bytes).")
    region: str = Field(max_length=12, description="The district the person lives in (NNNNNN).")
    insurance: Literal["employee", "resident"]
    retired: StrictBool = False
    insured_region: str | None = Field(default=None, max_length=12,
                                       description="Where the person is insured (default: region).")
    ethnicity: StrictInt = Field(default=1, description="GB/T 3304 code.")
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=200)
    photo_ref: str | None = Field(default=None, max_length=200)
    guardian_id: str | None = Field(default=None, max_length=40)
    guardian_relation: str | None = Field(default=None, max_length=40)
    residence: Literal["hukou", "permit", "none", "unknown"] | None = None


class Residence(BaseModel):
    residence: Literal["hukou", "permit", "none", "unknown"]


@router.post("", status_code=201, summary="Register a person in the registry of the region they are insured with")
def add(body: NewPerson, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    with body_fields(**_FIELDS):
        node = people_desk.registry_node(body.region, body.insured_region)
        call.require_scope(node=node)
        fields = body.model_dump()
        citizen_id = fields.pop("citizen_id")

        def do(world: World) -> dict[str, Any]:
            data = people_desk.register_person(world, citizen_id=citizen_id, operator=call.operator, now=call.now,
                                               **fields)
            return {**mask_person(data), "node": node}

        return call.write(do, payload=body, idempotent=False, status=201)


@router.get("/{citizen_id}", summary="A person's registry record (masked unless show_personal, audited)")
def show(citizen_id: str, show_personal: bool = Query(default=False, description="Reveal ID, name, phone and "
         "address (roles that may; audited)."), call: Call = Depends(staff_call(*READERS))):
    reveal = call.may_reveal(show_personal)
    with body_fields():
        if not reveal:
            node, data = call.read(lambda world: people_desk.person_anywhere(world, citizen_id))
            require_read_scope(call, node, masked_elsewhere=True)  # another region's resident at the counter
            return {**mask_person(data), "node": node}

        def shown(world: World) -> dict[str, Any]:
            node, data = people_desk.person_anywhere(world, citizen_id)
            require_read_scope(call, node, reveal=True)  # never another region's record revealed
            record_personal_data_shown(world.region(node), citizen_id=data["citizen_id"], operator=call.operator,
                                       command="GET /api/v1/persons", now=call.now)
            return {**data, "node": node}

        return call.write(shown, idempotent=False)


@router.post("/{citizen_id}/residence", summary="Record a person's residence status (户籍 / 居住证), as their papers show")
def residence(citizen_id: str, body: Residence, call: Call = Depends(staff_call(*COUNTER_ACTS))):
    with body_fields(operator="scope"):  # the use case's refusals of the operator are of their scope
        node, _ = call.read(lambda world: people_desk.person_anywhere(world, citizen_id))
        call.require_scope(node=node)
        return call.write(lambda world: mask_person(people_desk.record_residence(
            world, citizen_id=citizen_id, residence=body.residence, operator=call.operator,
            operator_node=call.principal.node, now=call.now)), payload=body, idempotent=False)
