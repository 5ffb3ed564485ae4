"""The SQL of clearing and settlement (``sbcard.services.clearing``) that both of its modules need.

On the hub: the day's clearing lines and the settlements it recorded. On a region: the
figures the purse float is reconciled against.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

# The columns of a clearing line, as the regions and the hub keep it.
LINE_COLUMNS = ("day", "kind", "payer_node", "payee_node", "party", "count", "amount_fen", "flagged", "refunds")


class ClearingRepository:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- on the hub ----------------------------------------------------------------------

    def hub_lines(self, day: str) -> list[dict[str, Any]]:
        """The day's lines as the hub holds them (with ``delivered_at``), sorted by kind, payer, payee, party."""
        return [dict(zip((*LINE_COLUMNS, "delivered_at"), r)) for r in self.db.execute(
            f"SELECT {', '.join(LINE_COLUMNS)}, delivered_at FROM clearing_lines WHERE day = ? "
            "ORDER BY kind, payer_node, payee_node, party", [day])]

    def settlement_of(self, day: str) -> dict[str, Any] | None:
        """The hub's settlements row of the day (matrix, net, parties, result as JSON text), or None."""
        found = list(self.db.query("SELECT * FROM settlements WHERE day = ?", [day]))
        return found[0] if found else None

    def record_settlement(self, settlement: dict[str, Any], message: dict[str, Any]) -> None:
        """The day's settlement and the hub's message that records it, in the caller's transaction."""
        self.db["settlements"].insert(settlement)
        self.db["messages"].insert(message)

    # --- on a region ---------------------------------------------------------------------

    def float_figures(self) -> dict[str, int]:
        """What the purse float is reconciled against (fen): the cards' expected purse balances, purchases
        accepted and not yet cleared, loads in flight, replaced cards' purses paid back."""
        def one(sql: str) -> int:
            return int(self.db.execute(sql).fetchone()[0] or 0)

        return {
            "cards": one("SELECT sum(expected_balance_fen) FROM purse_shadow"),
            "uncleared": one("SELECT sum(amount_fen) FROM purse_purchases WHERE status = 'cleared' "
                             "AND clearing_day IS NULL"),
            "pending": one("SELECT sum(amount_fen) FROM purse_loads WHERE status = 'pending'"),
            "refunded": one("SELECT sum(amount_fen) FROM purse_refunds WHERE paid_at IS NOT NULL"),
        }
