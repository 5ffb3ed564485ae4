"""The hub's list of transit concessions revoked on cards (hub.db), versioned with the blacklist.

When a holder's elderly free ride is enabled on a new card, the issuing region locks it
on the old card (``services.cards.concessions``) and tells the hub (outbox kind
``concession.revoke``). The old card's chip still says "enabled" until it is next at a
counter, so terminals must learn it from the hub: each revocation is published as a new
blacklist version (with no blacklist entry of its own), so the one version number a
terminal reports covers both lists. A revoked card stays valid; terminals charge it the
full fare. Regions write here only through the outbox.
"""

from __future__ import annotations

import datetime as dt

import sqlite_utils

from sbcard.services.exchange import directory as hub_directory


def publish_revocation(hub_db: sqlite_utils.Database, *, card_number: str, kind: str, reason: str | None,
                       now: dt.datetime) -> int:
    """Publish ``kind`` revoked on ``card_number`` as a new blacklist version; returns the version.

    A card already revoked for ``kind`` publishes nothing (the current version is returned).
    Call inside the hub's unit of work.
    """
    held = hub_db.execute("SELECT version FROM concession_revocations WHERE card_number = ? AND kind = ?",
                          [card_number, kind]).fetchone()
    if held is not None:
        return hub_directory.blacklist_version(hub_db)
    version = hub_directory.blacklist_version(hub_db) + 1
    hub_db["blacklist_versions"].insert({"version": version, "published_at": now.isoformat(),
                                         "note": f"concession {kind} revoked on {card_number}"})
    hub_db["concession_revocations"].insert({"version": version, "card_number": card_number, "kind": kind,
                                             "reason": reason})
    return version


def revoked_cards(hub_db: sqlite_utils.Database, kind: str = "elderly_free_ride",
                  version: int | None = None) -> set[str]:
    """The cards whose ``kind`` is revoked as of ``version`` (default: the latest): what a terminal copies."""
    upto = hub_directory.blacklist_version(hub_db) if version is None else version
    rows = hub_db.execute("SELECT card_number FROM concession_revocations WHERE kind = ? AND version <= ?",
                          [kind, upto]).fetchall()
    return {r[0] for r in rows}


def revocation_of(hub_db: sqlite_utils.Database, card_number: str) -> list[dict[str, object]]:
    """Every revocation published for the card, oldest first."""
    return [dict(r) for r in hub_db.query(
        "SELECT version, kind, reason FROM concession_revocations WHERE card_number = ? ORDER BY version",
        [card_number])]
