"""The registry as the counter uses it, across the three regions: register a person in the region
they are insured with, find a person wherever they are registered, record their residence.

Shared by ``sbcard person …`` and the service's ``/persons`` routes. Errors name the
command line's options; the service renames them to its fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.regions import NODE_NAMES, node_of, validate_region_code
from sbcard.services.exchange.lookup import find_person
from sbcard.services.outlets.operators import require_operator
from sbcard.services.people.registry import add_person, set_residence
from sbcard.store.world import World

COUNTER_ROLES = {"counter", "supervisor"}


def registry_node(region: str, insured_region: str | None = None) -> str:
    """The node whose registry holds a person insured in ``insured_region`` (default: ``region``)."""
    given, field = (insured_region, "--insured-region") if insured_region else (region, "--region")
    try:
        return node_of(validate_region_code(given))
    except SbcardError as e:
        raise InvalidInput(e.code, e.message, field) from None


def register_person(world: World, *, citizen_id: str, operator: str, now: datetime, **fields: Any) -> dict[str, Any]:
    """Register a person in the registry of the region they are insured with; refused if registered elsewhere."""
    node = registry_node(fields.get("region") or "", fields.get("insured_region"))
    found = find_person(world, citizen_id)
    if found is not None and found[0] != node:
        raise RuleRefused("person.exists", f"{mask_citizen_id(found[1]['citizen_id'])} is already registered in "
                          f"{NODE_NAMES[found[0]]}", "--citizen-id")
    return add_person(world.region(node), citizen_id=citizen_id, now=now, operator=operator, **fields)


def parse_id(citizen_id: str, field: str = "CITIZEN_ID") -> CitizenId:
    try:
        return CitizenId.parse(citizen_id)
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, field) from None


def person_anywhere(world: World, citizen_id: str) -> tuple[str, dict[str, Any]]:
    """(node, person) of whichever registry holds the person; NotFound naming CITIZEN_ID otherwise."""
    cid = parse_id(citizen_id)
    found = find_person(world, cid.value)
    if found is None:
        raise NotFound("person.unknown", f"{cid.masked()} is not registered in Beijing, Tianjin or Hebei", "CITIZEN_ID")
    return found


def record_residence(world: World, *, citizen_id: str, residence: str, operator: str, operator_node: str,
                     now: datetime) -> dict[str, Any]:
    """The person's residence status, recorded by staff of the region whose registry holds them."""
    node, person = person_anywhere(world, citizen_id)
    if operator_node != node:
        raise RuleRefused("person.residence.region", f"the person is in {NODE_NAMES[node]}'s registry: "
                          f"{NODE_NAMES[node]}'s staff record their residence, not {operator} "
                          f"({NODE_NAMES[operator_node]})", "--operator")
    require_operator(world.region(node), operator, roles=COUNTER_ROLES)
    return {**set_residence(world.region(node), citizen_id=person["citizen_id"], residence=residence,
                            operator=operator, now=now), "node": node}
