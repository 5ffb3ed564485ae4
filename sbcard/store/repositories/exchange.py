"""The SQL of the hub's exchanges between regions (``services.transit.host``, ``services.medical.routing``).

- ``HubExchanges``, at the hub: the recorded answers of the regions it reached (``messages``,
  one row per idempotency key: an upload's chunk cleared by its issuer, a medical claim
  settled or refunded by the insured region) and the blacklist's history
  (``blacklist_versions``, ``blacklist_entries``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils


class HubExchanges:
    """The hub's record of exchanges with the regions, and the blacklist's history."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def answer(self, key: str) -> str | None:
        """The recorded result (JSON) of the message with this idempotency key, or None."""
        row = self.db.execute("SELECT result FROM messages WHERE idempotency_key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def recorded(self, key: str) -> dict[str, Any] | None:
        """The message with this idempotency key (from_node, payload and result as recorded), or None."""
        row = self.db.execute("SELECT from_node, payload, result FROM messages WHERE idempotency_key = ?",
                              [key]).fetchone()
        return None if row is None else {"from_node": row[0], "payload": row[1], "result": row[2]}

    def record(self, row: dict[str, Any]) -> None:
        self.db["messages"].insert(row)

    def answered(self, key: str, result: str) -> None:
        """A routed exchange claimed with no result yet (``result`` NULL: asked, answer not in) gets its answer."""
        self.db.execute("UPDATE messages SET result = ? WHERE idempotency_key = ? AND result IS NULL", [result, key])

    def unclaim(self, key: str) -> None:
        """A routed exchange claimed with no result yet that surely did not happen (refused, or never delivered)."""
        self.db.execute("DELETE FROM messages WHERE idempotency_key = ? AND result IS NULL", [key])

    def blacklist_published(self) -> list[tuple[int, str]]:
        """(version, published at) of every version of the blacklist."""
        return self.db.execute("SELECT version, published_at FROM blacklist_versions").fetchall()

    def blacklist_history(self) -> Iterator[tuple[str, int, str]]:
        """(card number, version, add|remove) of every entry, by version."""
        return self.db.execute("SELECT card_number, version, action FROM blacklist_entries ORDER BY version")
