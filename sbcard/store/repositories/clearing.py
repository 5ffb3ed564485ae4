"""The SQL of clearing and settlement (``sbcard.services.clearing``).

``ClearingRepository``, on the hub: the day's clearing lines as the hub keeps and delivers
them, the settlements it recorded, and its message log for both. ``RegionClearingRepository``,
on a region: its clearing runs, the lines it is a party to (as payer, sent to the hub; as
payee, delivered by it through its inbox), the purchases and claims a run marks with its
day, what the day's report reads (flagged purchases, rejected records, duplicates), and the
figures the purse float is reconciled against. The money is the ledger's
(``sbcard.services.accounts.ledger``), never read or written here.

A clearing date is a Beijing day: ``before_end`` is the SQL condition "this timestamp is
before the end of the day", and ``day_window`` the pair that bounds a day's instants (the
clearing's reads here, and ``transit.PurseIntegrity``'s corrections and blocks of a day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlite_utils

from sbcard.clock import BEIJING

# The columns of a clearing line, as the regions and the hub keep it.
LINE_COLUMNS = ("day", "kind", "payer_node", "payee_node", "party", "count", "amount_fen", "flagged", "refunds")
_COLUMNS = ", ".join(LINE_COLUMNS)
_MARKS = ", ".join("?" * len(LINE_COLUMNS))

# A condition of SQL and its parameters.
Condition = tuple[str, list[str]]


def end_of_day_utc(day: dt.date) -> str:
    """The end of ``day`` in Beijing, as SQLite's ``datetime()`` shows an instant (UTC)."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=BEIJING)
    return end.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def before_end(column: str, day: dt.date) -> Condition:
    """SQL (and its parameters) for "the ISO timestamp in ``column`` is before the end of ``day`` in Beijing".

    Beijing timestamps (every one the services write) compare as text with the day's end
    in Beijing; another offset is compared as an instant (``datetime()``). The first term, a
    text bound above any timestamp of such an instant, lets SQLite range-scan an index.
    """
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=BEIJING)
    local = end.isoformat()
    offset = local[-6:]
    sql = (f"{column} < ? AND (substr({column}, -6) = '{offset}' AND {column} < ? OR "
           f"substr({column}, -6) != '{offset}' AND datetime({column}) < ?)")
    return sql, [(day + dt.timedelta(days=2)).isoformat(), local, end_of_day_utc(day)]


def day_window(column: str, day: dt.date) -> tuple[Condition, Condition]:
    """(since, until): the SQL conditions "``column`` is not before ``day`` began" and "is before it ended"."""
    since_sql, since_args = before_end(column, day - dt.timedelta(days=1))
    return (f"NOT ({since_sql})", since_args), before_end(column, day)


def _lines(found: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(LINE_COLUMNS, r)) for r in found]


class ClearingRepository:
    """On the hub: the clearing lines it takes from the payers and delivers to the payees, the settlements."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- lines ---------------------------------------------------------------------------

    def hub_lines(self, day: str) -> list[dict[str, Any]]:
        """The day's lines as the hub holds them (with ``delivered_at``), sorted by kind, payer, payee, party."""
        return [dict(zip((*LINE_COLUMNS, "delivered_at"), r)) for r in self.db.execute(
            f"SELECT {_COLUMNS}, delivered_at FROM clearing_lines WHERE day = ? "
            "ORDER BY kind, payer_node, payee_node, party", [day])]

    def take_lines(self, payer: str, lines: Sequence[Mapping[str, Any]], at: str) -> None:
        """A payer's lines, received at ``at``; its own region's lines (payee = payer) need no delivery."""
        self.db.conn.executemany(
            f"INSERT INTO clearing_lines ({_COLUMNS}, received_at, delivered_at) VALUES ({_MARKS}, ?, ?)",
            [(*(r[c] for c in LINE_COLUMNS), at, at if r["payee_node"] == payer else None) for r in lines])

    def undelivered_count(self) -> int:
        """How many lines wait for their payee's region."""
        return int(self.db.execute("SELECT count(*) FROM clearing_lines WHERE delivered_at IS NULL").fetchone()[0])

    def undelivered_groups(self) -> list[tuple[str, str, str]]:
        """(day, payer, payee) of each delivery still to make, in that order."""
        return [(day, payer, payee) for day, payer, payee in self.db.execute(
            "SELECT DISTINCT day, payer_node, payee_node FROM clearing_lines WHERE delivered_at IS NULL "
            "ORDER BY day, payer_node, payee_node")]

    def lines_between(self, day: str, payer: str, payee: str) -> list[dict[str, Any]]:
        """The day's lines of the payer to the payee, by kind and party."""
        return _lines(self.db.execute(
            f"SELECT {_COLUMNS} FROM clearing_lines WHERE day = ? AND payer_node = ? AND payee_node = ? "
            "ORDER BY kind, party", [day, payer, payee]))

    def mark_delivered(self, day: str, payer: str, payee: str, at: str) -> None:
        self.db.execute("UPDATE clearing_lines SET delivered_at = ? WHERE day = ? AND payer_node = ? AND "
                        "payee_node = ? AND delivered_at IS NULL", [at, day, payer, payee])

    # --- the message log -----------------------------------------------------------------

    def has_message(self, idempotency_key: str) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE idempotency_key = ?",
                               [idempotency_key]).fetchone() is not None

    def insert_message(self, message: dict[str, Any]) -> None:
        self.db["messages"].insert(message)

    # --- settlements ---------------------------------------------------------------------

    def settlement_of(self, day: str) -> dict[str, Any] | None:
        """The hub's settlements row of the day (matrix, net, parties, result as JSON text), or None."""
        found = list(self.db.query("SELECT * FROM settlements WHERE day = ?", [day]))
        return found[0] if found else None

    def record_settlement(self, settlement: dict[str, Any], message: dict[str, Any]) -> None:
        """The day's settlement and the hub's message that records it, in the caller's transaction."""
        self.db["settlements"].insert(settlement)
        self.insert_message(message)


class RegionClearingRepository:
    """On a region: its clearing runs and lines, the records a run clears, what the day's report reads."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- runs ----------------------------------------------------------------------------

    def run_summary(self, day: str) -> str | None:
        """The summary (JSON text) of the region's clearing run of the day, or None (not run here)."""
        row = self.db.execute("SELECT summary FROM clearing_runs WHERE day = ?", [day]).fetchone()
        return None if row is None else str(row[0])

    def insert_run(self, day: str, run_at: str, summary: str) -> None:
        self.db.execute("INSERT INTO clearing_runs (day, run_at, summary) VALUES (?, ?, ?)", [day, run_at, summary])

    # --- transit: the purchases this region accepted as the cards' issuer ----------------

    def purchases_to_clear(self, day: dt.date) -> list[tuple[str, str | None, str | None, int, int, int]]:
        """(operator's node, operator, terminal_no, count, amount_fen, flagged) of the purchases accepted, received
        before the end of ``day`` and in no clearing yet, by operator; terminal_no only where the operator is not
        known (kept before it was), and then one group per terminal."""
        received, args = before_end("received_at", day)
        return self.db.execute(
            "SELECT from_node, operator, CASE WHEN operator IS NULL THEN terminal_no END, count(*), "
            "sum(amount_fen), sum(flags IS NOT NULL) FROM purse_purchases WHERE status = 'cleared' "
            f"AND clearing_day IS NULL AND {received} GROUP BY from_node, operator, 3", args).fetchall()

    def mark_purchases_cleared(self, day: dt.date) -> None:
        """The purchases ``purchases_to_clear`` counts get ``day`` as their clearing day."""
        received, args = before_end("received_at", day)
        self.db.execute(f"UPDATE purse_purchases SET clearing_day = ? WHERE status = 'cleared' "
                        f"AND clearing_day IS NULL AND {received}", [day.isoformat(), *args])

    def operator_of_terminal(self, terminal_no: str) -> str | None:
        """The operator of a terminal of this region's register (any case of its number), or None."""
        row = self.db.execute("SELECT operator FROM terminals WHERE upper(terminal_no) = ?",
                              [terminal_no.upper()]).fetchone()
        return row[0] if row else None

    def loose_counters(self) -> list[tuple[str, str | None, int, str]]:
        """(app_serial, card_number, next offline counter, loose counters as JSON) of the cards with a counter
        cleared above the next one expected, by card."""
        return self.db.execute(
            "SELECT s.app_serial, s.card_number, s.offline_next, s.loose FROM purse_shadow s WHERE s.loose != '[]' "
            "AND EXISTS (SELECT 1 FROM json_each(s.loose) j WHERE json_extract(j.value, '$[0]') > s.offline_next) "
            "ORDER BY s.card_number, s.app_serial").fetchall()

    # --- medical: the claims this region settled as the insured region -------------------

    def claims_to_clear(self, day: dt.date) -> list[tuple[str, str, str | None]]:
        """(hospital's node, hospital, txn_id) of the claims settled before the end of ``day`` in no clearing yet."""
        settled, args = before_end("recorded_at", day)
        return self.db.execute(
            f"SELECT hospital_node, hospital, txn_id FROM medical_claims WHERE clearing_day IS NULL AND {settled}",
            args).fetchall()

    def refunds_to_clear(self, day: dt.date) -> list[tuple[str, str, str | None]]:
        """(hospital's node, hospital, reversal txn_id) of the claims refunded before the end of ``day`` whose
        refund is in no clearing yet."""
        refunded, args = before_end("refunded_at", day)
        return self.db.execute(
            "SELECT hospital_node, hospital, reversal_txn_id FROM medical_claims WHERE refunded_at IS NOT NULL "
            f"AND refund_clearing_day IS NULL AND {refunded}", args).fetchall()

    def mark_claims_cleared(self, day: dt.date) -> None:
        """The claims and the refunds the two reads above find get ``day`` as their clearing day."""
        settled, settled_args = before_end("recorded_at", day)
        refunded, refunded_args = before_end("refunded_at", day)
        key = day.isoformat()
        self.db.execute(f"UPDATE medical_claims SET clearing_day = ? WHERE clearing_day IS NULL AND {settled}",
                        [key, *settled_args])
        self.db.execute("UPDATE medical_claims SET refund_clearing_day = ? WHERE refunded_at IS NOT NULL AND "
                        f"refund_clearing_day IS NULL AND {refunded}", [key, *refunded_args])

    # --- lines ---------------------------------------------------------------------------

    def insert_lines(self, lines: Sequence[Mapping[str, Any]], created_at: str) -> None:
        """Lines this region is a party to, each with its ledger transaction (``txn_id``, or None)."""
        self.db.conn.executemany(
            f"INSERT INTO clearing_lines ({_COLUMNS}, txn_id, created_at) VALUES ({_MARKS}, ?, ?)",
            [(*(r[c] for c in LINE_COLUMNS), r["txn_id"], created_at) for r in lines])

    def unsent_days(self, payer: str) -> list[str]:
        """The days of the payer's lines not sent to the hub yet, oldest first."""
        return [day for (day,) in self.db.execute(
            "SELECT DISTINCT day FROM clearing_lines WHERE sent_at IS NULL AND payer_node = ? ORDER BY day",
            [payer])]

    def payer_lines(self, day: str, payer: str) -> list[dict[str, Any]]:
        """The payer's lines of the day, by kind, payee and party."""
        return _lines(self.db.execute(
            f"SELECT {_COLUMNS} FROM clearing_lines WHERE day = ? AND payer_node = ? "
            "ORDER BY kind, payee_node, party", [day, payer]))

    def day_lines(self, day: str) -> list[dict[str, Any]]:
        """The day's lines this region holds: its own as the payer, and those delivered to it as the payee."""
        return _lines(self.db.execute(
            f"SELECT {_COLUMNS} FROM clearing_lines WHERE day = ? ORDER BY kind, payer_node, payee_node, party",
            [day]))

    def mark_sent(self, day: str, payer: str, at: str) -> None:
        self.db.execute("UPDATE clearing_lines SET sent_at = ? WHERE day = ? AND payer_node = ? AND sent_at IS NULL",
                        [at, day, payer])

    # --- the inbox -----------------------------------------------------------------------

    def has_received(self, idempotency_key: str) -> bool:
        return self.db.execute("SELECT 1 FROM inbox WHERE idempotency_key = ?",
                               [idempotency_key]).fetchone() is not None

    def insert_received(self, message: dict[str, Any]) -> None:
        self.db["inbox"].insert(message)

    # --- what the day's report reads -----------------------------------------------------

    def flagged_purchases(self, day: str) -> list[tuple[Any, ...]]:
        """(card_number, app_serial, counter, terminal_no, terminal_serial, amount_fen, operator's node, operator,
        flags as JSON) of the flagged purchases in the day's clearing, by card and counter."""
        return self.db.execute(
            "SELECT card_number, app_serial, counter, terminal_no, terminal_serial, amount_fen, from_node, "
            "operator, flags FROM purse_purchases WHERE clearing_day = ? AND flags IS NOT NULL "
            "ORDER BY card_number, counter, terminal_no, terminal_serial", [day]).fetchall()

    def rejected_records(self, day: dt.date) -> list[tuple[Any, ...]]:
        """(card_number, app_serial, counter, terminal, terminal_no, terminal_serial, amount_fen, issuer's node,
        operator, reason) of the records uploaded here on ``day`` (Beijing) and rejected, by card and counter."""
        (since, since_args), (until, until_args) = day_window("uploaded_at", day)
        return self.db.execute(
            "SELECT card_number, app_serial, counter, terminal, terminal_no, terminal_serial, amount_fen, "
            f"issuer_node, operator, reason FROM transit_records WHERE status = 'rejected' AND {until} "
            f"AND {since} ORDER BY card_number, app_serial, counter, terminal_no, terminal_serial",
            [*until_args, *since_args]).fetchall()

    def duplicates(self, day: dt.date) -> int:
        """How many records uploaded here on ``day`` (Beijing) had been sent before."""
        (since, since_args), (until, until_args) = day_window("uploaded_at", day)
        return int(self.db.execute(
            f"SELECT coalesce(sum(duplicates), 0) FROM transit_uploads WHERE {until} AND {since}",
            [*until_args, *since_args]).fetchone()[0])

    # --- the purse float -----------------------------------------------------------------

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
