"""Masking of personal data for logs and human output (DESIGN.md, Privacy).

These functions take any text, valid or not: a log line about a mistyped citizen ID must
not reveal it either. They strip surrounding whitespace and never reveal the middle.
"""

from __future__ import annotations

STAR = "*"


def mask_middle(text: str, head: int, tail: int) -> str:
    """Keep ``head`` and ``tail`` characters, one star for each hidden one.

    Text too short to keep both ends and still hide something is all stars.
    """
    if len(text) <= head + tail:
        return STAR * len(text)
    return text[:head] + STAR * (len(text) - head - tail) + text[len(text) - tail :]


def mask_name(name: str) -> str:
    """Keep the first character, one star for each other: 张三 → 张*, 欧阳娜娜 → 欧***."""
    name = name.strip()
    if len(name) <= 1:
        return name
    return name[0] + STAR * (len(name) - 1)


def mask_citizen_id(text: str) -> str:
    """18 chars: first 6 (the region) + 8 stars + last 4; any other length: first 2 and last 2.

    Text of 4 characters or fewer is all stars, since keeping both ends would show it all.
    """
    text = text.strip()
    if len(text) == 18:
        return mask_middle(text, 6, 4)
    return mask_middle(text, 2, 2)


def mask_phone(text: str) -> str:
    """First 3 and last 4 characters: 13812345678 → 138****5678; 7 characters or fewer: all stars."""
    return mask_middle(text.strip(), 3, 4)


def mask_person(person: dict) -> dict:
    """A registry record (``person show``) with what identifies the person hidden: ID, name, phone, address, guardians."""
    address = person.get("address")
    return {
        **person,
        "citizen_id": mask_citizen_id(person["citizen_id"]),
        "name": mask_name(person["name"]),
        "phone": mask_phone(person["phone"]) if person.get("phone") else None,
        "address": mask_middle(address, 6, 0) if address else None,
        "guardians": [{**g, "citizen_id": mask_citizen_id(g["citizen_id"])} for g in person.get("guardians", ())],
    }


def mask_card_holder(view: dict) -> dict:
    """A card's record (``card show``) with the holder's citizen ID and name hidden."""
    return {**view, "citizen_id": mask_citizen_id(view["citizen_id"]),
            "name": mask_name(view["name"]) if view.get("name") else None}
