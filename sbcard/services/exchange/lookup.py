"""Finding which node holds an outlet, a person, a card or an operator.

Outlets carry their node in their code; cards are found through the hub's directory
(the issuing region is the owner of the card's record); persons and operators are
looked for in the three regions. Every answer names the node, so the caller opens its
unit of work on the right database. A world that holds one node asks the others through
its link (``sbcard.services.exchange.peers``), the regions it holds first.
"""

from __future__ import annotations

import re
from typing import Any

from sbcard.domain.errors import NotFound, RuleRefused
from sbcard.domain.outlets import OutletCode
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.services.exchange import peers
from sbcard.store.world import HUB, REGION_NODES, World

_WHITESPACE = re.compile(r"\s+")


def node_of_outlet(code: str) -> str:
    """The node that owns the outlet, from its code's prefix (InvalidInput "--outlet" if malformed)."""
    return OutletCode.parse(code).node


def get_outlet(world: World, code: str) -> dict[str, Any]:
    """The outlet's row plus its `node`; NotFound "outlet.unknown" (field "--outlet")."""
    parsed = OutletCode.parse(code)
    rows = list(world.region(parsed.node).query("SELECT * FROM outlets WHERE code = ?", [str(parsed)]))
    if not rows:
        raise NotFound("outlet.unknown", f"no outlet {parsed} in {NODE_NAMES[parsed.node]}", "--outlet")
    return {**rows[0], "node": parsed.node}


def find_person(world: World, citizen_id: str) -> tuple[str, dict[str, Any]] | None:
    """(node, person) for the region whose registry holds the person, or None."""
    for node in peers.regions_to_search(world):
        person = peers.ask(world, node, "registry.person", citizen_id=citizen_id)
        if person is not None:
            return node, person
    return None


def find_card(world: World, card_number: str) -> tuple[str, dict[str, Any]] | None:
    """(issuing node, card row) from the regions this world holds, else through the hub's directory, or None.

    A world that holds every region finds the card in its issuer's database; one that holds
    one region looks there first (no other node is asked for its own cards) and then asks
    the issuer the hub's directory names, then the other regions (a card whose directory
    entry is still in its region's outbox).
    """
    number = _WHITESPACE.sub("", card_number or "").upper()
    for node in REGION_NODES:
        if world.holds(node):
            row = peers.ask(world, node, "cards.card", card_number=number)
            if row is not None:
                return node, row
    if all(world.holds(node) for node in REGION_NODES):
        return None
    entry = peers.ask(world, HUB, "directory.card_entry", card_number=number)
    home = node_of(entry["issuing_region"]) if entry else None
    for node in peers.regions_to_search(world, home):
        if not world.holds(node):
            row = peers.ask(world, node, "cards.card", card_number=number)
            if row is not None:
                return node, row
    return None


def find_operator(world: World, code: str, *, regions: tuple[str, ...] | None = None) -> tuple[str, dict[str, Any]] | None:
    """(node, operator) of the region the operator works for, or None. Codes are unique nationally.

    ``regions``: look only there (signing in at a region's node looks at that region's staff).
    """
    for node in peers.regions_to_search(world) if regions is None else regions:
        operator = peers.ask(world, node, "operators.operator", code=code)
        if operator is not None:
            return node, operator
    return None


def require_operator_anywhere(world: World, code: str) -> tuple[str, dict[str, Any]]:
    """As `find_operator`, refusing an unknown operator (NotFound "operator.unknown", "--operator")."""
    found = find_operator(world, code)
    if found is None:
        raise NotFound("operator.unknown", f"no operator {code!r} in any region's card service", "--operator")
    return found


def refuse_taken_operator_code(world: World, code: str) -> None:
    """Operator codes are unique nationally: RuleRefused "operator.exists" when a region has it."""
    found = find_operator(world, code)
    if found is not None:
        raise RuleRefused("operator.exists", f"operator {(code or '').strip()} already exists in "
                          f"{NODE_NAMES[found[0]]}", "CODE")
