"""The hub's national card directory and blacklist (hub.db).

The issuing region owns a card's record; the hub keeps what every other node must be
able to ask without knowing the issuer: where a card comes from, its status, and whether
a person already holds a valid card anywhere ("one valid card per person in the whole
country"). Regions write here only through the outbox (``sbcard.services.exchange.outbox``).

The blacklist is published in numbered versions that terminals copy; each version adds or
removes cards relative to the previous one, and a published version never changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from sbcard.store import rows
from sbcard.store.migrations import timestamp

VALID_STATUSES = ("issued", "active", "lost")


def upsert_card(
    hub_db: sqlite_utils.Database,
    *,
    card_number: str,
    card_id_code: str,
    citizen_id: str,
    issuing_region: str,
    status: str,
    now: dt.datetime,
) -> bool:
    """Record a card's current status; an update older than the one held is ignored.

    Returns whether the directory changed. Call inside the hub's unit of work.
    """
    at = now.isoformat()
    current = card_entry(hub_db, card_number)
    if current is not None:
        if current["updated_at"] > at or (current["status"] == status and current["updated_at"] == at):
            return False
        if (current["card_id_code"], current["citizen_id"]) != (card_id_code, citizen_id):
            raise ValueError(f"card {card_number}: the directory holds another chip or person for this number")
    rows.upsert(
        hub_db,
        "card_directory",
        {
            "card_number": card_number,
            "card_id_code": card_id_code,
            "citizen_id": citizen_id,
            "issuing_region": issuing_region,
            "status": status,
            "updated_at": at,
        },
        pk="card_number",
    )
    return True


def card_entry(hub_db: sqlite_utils.Database, card_number: str) -> dict[str, Any] | None:
    return rows.get(hub_db, "card_directory", "card_number", card_number)


def valid_card_of(hub_db: sqlite_utils.Database, citizen_id: str) -> dict[str, Any] | None:
    """The person's valid card (issued, active or lost) anywhere in the country, or None."""
    marks = ", ".join("?" for _ in VALID_STATUSES)
    found = list(hub_db.query(f"SELECT * FROM card_directory WHERE citizen_id = ? AND status IN ({marks}) "
                              "ORDER BY updated_at DESC", [citizen_id, *VALID_STATUSES]))
    return found[0] if found else None


def cards_of(hub_db: sqlite_utils.Database, citizen_id: str) -> list[dict[str, Any]]:
    """Every card the directory knows for the person, newest first."""
    return list(hub_db["card_directory"].rows_where("citizen_id = ?", [citizen_id], order_by="updated_at DESC"))


def blacklist_version(hub_db: sqlite_utils.Database) -> int:
    """The latest published version; 0 before the first."""
    return hub_db.execute("SELECT coalesce(max(version), 0) FROM blacklist_versions").fetchone()[0]


def is_blacklisted(hub_db: sqlite_utils.Database, card_number: str, version: int | None = None) -> bool:
    """Whether the card is on the list as of ``version`` (default: the latest)."""
    row = hub_db.execute(
        "SELECT action FROM blacklist_entries WHERE card_number = ? AND version <= ? ORDER BY version DESC LIMIT 1",
        [card_number, blacklist_version(hub_db) if version is None else version],
    ).fetchone()
    return row is not None and row[0] == "add"


def blacklisted_cards(hub_db: sqlite_utils.Database, version: int | None = None) -> set[str]:
    """The whole list as of ``version`` (default: the latest): what a terminal copies."""
    rows = hub_db.execute(
        """
        SELECT card_number FROM blacklist_entries e
        WHERE version = (SELECT max(version) FROM blacklist_entries
                         WHERE card_number = e.card_number AND version <= ?)
          AND action = 'add'
        """,
        [blacklist_version(hub_db) if version is None else version],
    ).fetchall()
    return {r[0] for r in rows}


def publish_blacklist(
    hub_db: sqlite_utils.Database,
    *,
    adds: Iterable[str] = (),
    removes: Iterable[str] = (),
    note: str | None = None,
    now: dt.datetime,
) -> int:
    """Publish a new version adding and removing cards; returns the version now current.

    Cards already in the state asked for are left out; when nothing is left, no version is
    published and the current one is returned. Call inside the hub's unit of work.
    """
    adds, removes = list(dict.fromkeys(adds)), list(dict.fromkeys(removes))
    both = set(adds) & set(removes)
    if both:
        raise ValueError(f"cards both added to and removed from the blacklist: {sorted(both)}")
    changes = [(c, "add") for c in adds if not is_blacklisted(hub_db, c)]
    changes += [(c, "remove") for c in removes if is_blacklisted(hub_db, c)]
    current = blacklist_version(hub_db)
    if not changes:
        return current
    version = current + 1
    hub_db["blacklist_versions"].insert({"version": version, "published_at": now.isoformat(), "note": note})
    hub_db["blacklist_entries"].insert_all(
        {"version": version, "card_number": card, "action": action, "reason": note} for card, action in changes
    )
    return version


def card_status_message(card: dict[str, Any], status: str, now: dt.datetime) -> dict[str, Any]:
    """The payload of an outbox ``card.status`` message: the directory's entry for a card."""
    return {
        "card_number": card["card_number"],
        "card_id_code": card["card_id_code"],
        "citizen_id": card["citizen_id"],
        "issuing_region": card["card_id_code"][:6],
        "status": status,
        "at": timestamp(now),
    }
