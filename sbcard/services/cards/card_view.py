"""What the counter sees of a card: its record, found by card number or by the holder's ID.

Read-only. The card's record lives in its issuing region; the status shown is the
effective one (a temporary loss past its lapse shows ``active``, as every decision takes
it). Personal data is returned in clear: the edge (``sbcard/cli``) masks it. A process that
holds one node asks the issuing region's process what it does not hold (``cards.of_person``,
``cards.card``, ``cards.issuer_facts``: ``services/exchange/peers.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from sbcard.domain.card_number import CardNumber
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.lifecycle import CardState
from sbcard.domain.masking import mask_citizen_id
from sbcard.services.exchange import lookup
from sbcard.services.outlets import audit
from sbcard.services.exchange import peers
from sbcard.services.accounts import ledger
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World

FIELD = "CARD_OR_CITIZEN_ID"
_WHITESPACE = re.compile(r"\s+")
_PREFERENCE = {"active": 0, "lost": 1, "issued": 2, "replaced": 3, "cancelled": 4}


def find(world: World, card_or_citizen_id: str) -> tuple[str, dict[str, Any]]:
    """(issuing node, card row): a card number, or a citizen ID whose valid (else latest) card it is."""
    text = _WHITESPACE.sub("", card_or_citizen_id or "").upper()
    if len(text) == 18:
        return _card_of_person(world, text)
    try:
        number = CardNumber.parse(text).value
    except InvalidInput as e:
        raise InvalidInput(e.code, f"neither a card number nor a citizen ID: {e.message}", FIELD) from None
    found = lookup.find_card(world, number)
    if found is None:
        raise NotFound("card.unknown", f"no card {number} in Beijing, Tianjin or Hebei", FIELD)
    return found


def _card_of_person(world: World, text: str) -> tuple[str, dict[str, Any]]:
    try:
        cid = CitizenId.parse(text)
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, FIELD) from None
    candidates = []
    for node in REGION_NODES:  # every region's cards of the person: a region's process is asked (cards.of_person)
        if world.holds(node):
            rows = list(world.region(node).query("SELECT * FROM cards WHERE citizen_id = ?", [cid.value]))
        else:
            rows = peers.ask(world, node, "cards.of_person", citizen_id=cid.value)
        candidates += [(node, row) for row in rows]
    if not candidates:
        raise NotFound("card.none", f"{cid.masked()} holds no card issued in Beijing, Tianjin or Hebei", FIELD)
    return min(candidates, key=lambda c: (_PREFERENCE[c[1]["status"]], -_ordinal(c[1]["created_at"])))


def _ordinal(at: str) -> float:
    return dt.datetime.fromisoformat(at).timestamp()


def card_view(world: World, card_or_citizen_id: str, *, now: dt.datetime) -> dict[str, Any]:
    """The card's record for ``card show`` (stable keys), personal data in clear."""
    node, card = find(world, card_or_citizen_id)
    if world.holds(node):
        held = _issuer_facts(world.region(node), card["card_number"], card["citizen_id"])
    else:
        held = peers.ask(world, node, "cards.issuer_facts", card_number=card["card_number"],
                         citizen_id=card["citizen_id"])
    person, account, replaced_by = held["name"], held["account_no"], held["replaced_by"]
    state = CardState.from_row(card).effective(now)
    return {
        "card_number": card["card_number"],
        "status": state.status.value,
        "region": card["card_id_code"][:6],
        "issuing_node": node,
        "citizen_id": card["citizen_id"],
        "name": person,
        "issue_date": card["issue_date"],
        "expiry_date": card["expiry_date"],
        "loss_kind": state.loss_kind.value if state.loss_kind else None,
        "loss_expires_at": state.loss_expires_at.isoformat() if state.loss_expires_at else None,
        "account_no": account,
        "card_id_code": card["card_id_code"],
        "chip_serial": card["chip_serial"],
        "app_serial": card["app_serial"],
        "application_id": card["application_id"],
        "outlet": card["outlet"],
        "replaces": card["replaces"],
        "replaced_by": replaced_by,
        "blacklisted": peers.ask(world, HUB, "directory.is_blacklisted", card_number=card["card_number"]),
        "virtual_path": card["virtual_path"],
        "updated_at": card["updated_at"],
    }


def _issuer_facts(db: Any, card_number: str, citizen_id: str) -> dict[str, Any]:
    """(question ``cards.issuer_facts``, a region) What the card's record reads of its issuer's other
    records: the holder's name, the card's account, the card that replaced it."""
    person = db.execute("SELECT name FROM persons WHERE citizen_id = ?", [citizen_id]).fetchone()
    replaced_by = db.execute("SELECT card_number FROM cards WHERE replaces = ?", [card_number]).fetchone()
    return {"name": person[0] if person else None, "account_no": ledger.account_of_card(db, card_number),
            "replaced_by": replaced_by[0] if replaced_by else None}


peers.register("cards.issuer_facts", peers.REGION, _issuer_facts)


def history(world: World, card_number: str) -> list[dict[str, Any]]:
    """Everything that happened to the card, oldest first, with who, where, when and why."""
    node, card = find(world, card_number)
    rows = world.region(node).query(
        "SELECT at, event, operator, outlet, reason, details FROM card_events WHERE card_number = ? ORDER BY id",
        [card["card_number"]],
    )
    return [
        {
            "card_number": card["card_number"],
            "at": row["at"],
            "event": row["event"],
            "operator": row["operator"],
            "outlet": row["outlet"],
            "reason": row["reason"],
            "details": json.loads(row["details"]) if row["details"] else {},
        }
        for row in rows
    ]


def record_personal_data_shown(world: World, view: dict[str, Any], *, operator: str | None, now: dt.datetime) -> None:
    """Revealing a holder's ID and name is itself recorded, in the card's issuing region."""
    if not operator:
        raise InvalidInput("operator.missing", "--show-personal needs --operator: revealing personal data is audited",
                           "--operator")
    lookup.require_operator_anywhere(world, operator)
    with UnitOfWork(world.region(view["issuing_node"])) as uow:
        audit.record(uow.db, at=now, operator=operator.strip(), action="show_personal", subject=view["card_number"],
                     details={"command": "card show", "citizen_id": mask_citizen_id(view["citizen_id"])})
        uow.commit()
