"""The SQL of the transit hosts (``sbcard.services.transit.host`` and ``purse_host``), by node and part.

- ``OperatorRecords``, in the operator's region (the uploading terminal's): its register
  of terminals, the records it took (``transit_records``), those that wait for an issuer
  out of reach (``transit_awaiting``, routed later: ``transit_routings``), the uploads
  and the refused batches;
- ``IssuerPurchases``, in the card's issuing region: the purchases it checked
  (``purse_purchases``), what it knows of each card's purse (``purse_shadow``, and the
  loads of ``purse_loads``), its cards' numbers;
- ``PurseLoads``, in the card's issuing region: the loads onto its cards' purses
  (``sbcard.services.transit.purse_host``);
- ``PurseIntegrity``, in the card's issuing region: what the issuer's answers to evidence
  against a purse read and write (``sbcard.services.transit.purse_integrity``): reversed
  loads the card may have credited, ``purse_blocked`` card events and their outbox
  messages, the flags of cleared purchases, the corrections' audit entries, the shadow;
- (the hub's side of an upload, its ``messages`` and blacklist history, is
  ``sbcard.store.repositories.exchange.HubExchanges``, shared with the medical routing).

Rows cross this boundary as tuples in the column orders named here (``RECORD_COLUMNS``,
``AWAITING_COLUMNS``, ``PURCHASE_COLUMNS``, ``SHADOW_COLUMNS``): a host writes hundreds of
thousands of records a night, so the hot paths take and give positional rows, never dicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlite_utils

from sbcard.store import rows
from sbcard.store.repositories.clearing import day_window
from sbcard.store.sequences import next_value

_PARAMS = 900  # host parameters per IN (...) list, under SQLite's historical 999

RECORD_COLUMNS = ("app_serial", "txn_type", "counter", "terminal_no", "terminal_serial", "card_number", "issuer_node",
                  "operator", "terminal", "amount_fen", "balance_before_fen", "at", "tac", "blacklist_version",
                  "details", "status", "reason", "flags", "uploaded_at", "upload_batch")
# A record's believed fields in ``PurseRecord.host_values`` order (``record_status`` is its ``status``), its details.
AWAITING_COLUMNS = ("app_serial", "txn_type", "counter", "terminal_no", "terminal_serial", "amount_fen",
                    "balance_before_fen", "date_time", "tac", "issuer_id", "issuer_node", "card_number", "terminal",
                    "operator", "blacklist_version", "record_status", "details")
PURCHASE_COLUMNS = ("terminal_no", "terminal_serial", "app_serial", "txn_type", "counter", "card_number", "amount_fen",
                    "balance_before_fen", "date_time", "tac", "from_node", "status", "reason", "flags", "received_at",
                    "operator")
SHADOW_COLUMNS = ("app_serial", "card_number", "expected_balance_fen", "last_offline_counter", "last_offline_at",
                  "offline_next", "offline_spent_fen", "loose", "updated_at")
KEY_COLUMNS = "app_serial, txn_type, counter, terminal_no, terminal_serial"  # a record's identity


def _insert(table: str, columns: Sequence[str], tail: str = "") -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}){tail}"


_INSERT_RECORDS = _insert("transit_records", RECORD_COLUMNS)
_INSERT_AWAITING = _insert("transit_awaiting", (*AWAITING_COLUMNS, "upload_batch", "uploaded_at"))
_SELECT_AWAITING = (f"SELECT {', '.join(AWAITING_COLUMNS)}, upload_batch, uploaded_at FROM transit_awaiting "
                    "WHERE issuer_node = ? AND seq > ? AND seq <= ?")
_INSERT_PURCHASES = _insert("purse_purchases", PURCHASE_COLUMNS)
_UPSERT_SHADOWS = _insert("purse_shadow", SHADOW_COLUMNS, """
    ON CONFLICT (app_serial) DO UPDATE SET
        expected_balance_fen = excluded.expected_balance_fen,
        last_offline_counter = excluded.last_offline_counter,
        last_offline_at = excluded.last_offline_at,
        offline_next = excluded.offline_next,
        offline_spent_fen = excluded.offline_spent_fen,
        loose = excluded.loose,
        updated_at = excluded.updated_at""")


def select_in(db: sqlite_utils.Database, sql: str, values: Sequence[Any]) -> list[tuple]:
    """``sql`` with ``IN ({})`` over ``values``, in parts of at most ``_PARAMS`` parameters."""
    out: list[tuple] = []
    for start in range(0, len(values), _PARAMS):
        part = values[start:start + _PARAMS]
        out += db.execute(sql.format(", ".join("?" * len(part))), list(part)).fetchall()
    return out


def _key_ranges(keys: Iterable[tuple[str, str, int, str, int]]) -> dict[str, list[int]]:
    """Per terminal number, the lowest and highest terminal serial among ``keys``."""
    ranges: dict[str, list[int]] = {}
    for key in keys:
        serial = key[4]
        lo_hi = ranges.setdefault(key[3], [serial, serial])
        if serial < lo_hi[0]:
            lo_hi[0] = serial
        elif serial > lo_hi[1]:
            lo_hi[1] = serial
    return ranges


class CardNumbers:
    """A region's cards by application serial (any region: the issuer's directory of its own cards)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def of(self, app_serials: Sequence[str]) -> dict[str, str]:
        """{application serial: card number} of those of ``app_serials`` that are this region's cards."""
        return dict(select_in(self.db, "SELECT app_serial, card_number FROM cards WHERE app_serial IN ({})",
                              app_serials))


class OperatorRecords:
    """What the operator's region keeps of its terminals' uploads."""

    UPLOAD_SEQUENCE = "transit_upload"

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- the register of terminals
    def terminal(self, terminal_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM terminals WHERE id = ?", [terminal_id]))
        return rows[0] if rows else None

    def terminals(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: row} of those of ``ids`` registered here."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _PARAMS):
            part = list(ids[start:start + _PARAMS])
            for row in self.db.query(f"SELECT * FROM terminals WHERE id IN ({', '.join('?' * len(part))})", part):
                out[row["id"]] = row
        return out

    def operators_by_number(self) -> dict[str, str]:
        """{terminal number (upper case): operator} of every terminal registered here."""
        return {row[0].upper(): row[1] for row in self.db.execute("SELECT terminal_no, operator FROM terminals")}

    # --- uploads
    def refuse(self, *, terminal: str, sent: int, code: str, reason: str, mac: str | None, at: str) -> None:
        self.db["transit_upload_refusals"].insert({"terminal": terminal, "sent": sent, "code": code, "reason": reason,
                                                   "mac": mac, "refused_at": at})

    def next_batch_number(self) -> int:
        return next_value(self.db, self.UPLOAD_SEQUENCE)

    def add_upload(self, row: dict[str, Any]) -> None:
        self.db["transit_uploads"].insert(row)

    def taken_keys(self, keys: Iterable[tuple[str, str, int, str, int]]) -> set[tuple]:
        """Those of ``keys`` already taken: in ``transit_records``, or waiting for their issuer."""
        wanted = _key_ranges(keys)
        tables = ["transit_records"]
        if self.db.execute("SELECT 1 FROM transit_awaiting LIMIT 1").fetchone():
            tables.append("transit_awaiting")
        taken: set[tuple] = set()
        for table in tables:
            sql = f"SELECT {KEY_COLUMNS} FROM {table} WHERE terminal_no = ? AND terminal_serial BETWEEN ? AND ?"
            for terminal_no, (lo, hi) in wanted.items():
                taken.update(map(tuple, self.db.execute(sql, [terminal_no, lo, hi])))
        return taken

    def add_records(self, rows: list[tuple]) -> None:
        """Rows in ``RECORD_COLUMNS`` order, appended in key order (terminal number, serial)."""
        rows.sort(key=lambda row: (row[3], row[4]))
        self.db.conn.executemany(_INSERT_RECORDS, rows)

    # --- records waiting for their issuer
    def add_awaiting(self, rows: list[tuple]) -> None:
        """Rows in ``AWAITING_COLUMNS`` order, then upload batch and time; appended in key order."""
        rows.sort(key=lambda row: (row[3], row[4]))
        self.db.conn.executemany(_INSERT_AWAITING, rows)

    def routed_up_to(self, issuers: Iterable[str]) -> dict[str, int]:
        """Per issuer, the highest ``transit_awaiting.seq`` routed (records above it still wait)."""
        return {issuer: self.db.execute("SELECT coalesce(max(to_seq), 0) FROM transit_routings WHERE issuer_node = ?",
                                        [issuer]).fetchone()[0] for issuer in issuers}

    def waiting_up_to(self, routed: dict[str, int]) -> dict[str, int]:
        """Per issuer with records waiting above ``routed``, the highest ``seq`` among them."""
        out = {}
        for issuer, seq in routed.items():
            top = self.db.execute("SELECT max(seq) FROM transit_awaiting WHERE issuer_node = ?", [issuer]).fetchone()[0]
            if top is not None and top > seq:
                out[issuer] = top
        return out

    def waiting_count(self, routed: dict[str, int]) -> int:
        return sum(self.db.execute("SELECT count(*) FROM transit_awaiting WHERE issuer_node = ? AND seq > ?",
                                   [issuer, seq]).fetchone()[0] for issuer, seq in routed.items())

    def awaiting(self, issuer: str, after: int, up_to: int) -> Iterator[tuple]:
        """The rows waiting for ``issuer`` with ``after < seq <= up_to``: ``AWAITING_COLUMNS``, batch, time."""
        return self.db.execute(_SELECT_AWAITING, [issuer, after, up_to])

    def add_routings(self, rows: Iterable[tuple[str, int, int, int, str]]) -> None:
        """(issuer, from seq, to seq, records, routed at) of each issuer's records routed."""
        self.db.conn.executemany("INSERT INTO transit_routings (issuer_node, from_seq, to_seq, records, routed_at) "
                                 "VALUES (?, ?, ?, ?, ?)", rows)


class IssuerPurchases:
    """What the card's issuer keeps of the purchases on its cards."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def earlier(self, keys: Iterable[tuple[str, str, int, str, int]]) -> Iterator[tuple]:
        """(key columns…, status, reason, flags) of the purchases seen before in the serial ranges of ``keys``."""
        sql = (f"SELECT {KEY_COLUMNS}, status, reason, flags FROM purse_purchases "
               "WHERE terminal_no = ? AND terminal_serial BETWEEN ? AND ?")
        for terminal_no, (lo, hi) in _key_ranges(keys).items():
            yield from self.db.execute(sql, [terminal_no, lo, hi])

    def shadows(self, app_serials: Sequence[str]) -> dict[str, tuple]:
        """{app serial: (app serial, expected balance, last counter, its time, next, spent, loose)}."""
        return {row[0]: row for row in select_in(
            self.db, "SELECT app_serial, expected_balance_fen, last_offline_counter, last_offline_at, offline_next, "
                     "offline_spent_fen, loose FROM purse_shadow WHERE app_serial IN ({})", app_serials)}

    def loads(self, app_serials: Sequence[str]) -> list[tuple[str, int, int, str, str]]:
        """(app serial, online counter, amount, status, load id) of the cards' loads; a reversed load whose
        correction is posted (``<id>-COR`` in the ledger: the card credited it after all) counts as confirmed."""
        return select_in(
            self.db, "SELECT app_serial, online_counter, amount_fen, CASE WHEN status = 'reversed' AND EXISTS "
                     "(SELECT 1 FROM ledger_entries e WHERE e.txn_id = l.id || '-COR') THEN 'confirmed' "
                     "ELSE status END, id FROM purse_loads l WHERE app_serial IN ({})", app_serials)

    def load(self, load_id: str) -> dict[str, Any]:
        return dict(next(iter(self.db.query("SELECT * FROM purse_loads WHERE id = ?", [load_id]))))

    def add_purchases(self, rows: list[tuple]) -> None:
        """Rows in ``PURCHASE_COLUMNS`` order, appended in key order (terminal number, serial)."""
        rows.sort(key=lambda row: (row[0], row[1]))
        self.db.conn.executemany(_INSERT_PURCHASES, rows)

    def save_shadows(self, rows: list[tuple]) -> None:
        """Rows in ``SHADOW_COLUMNS`` order, each replacing the card's."""
        self.db.conn.executemany(_UPSERT_SHADOWS, rows)


class PurseLoads:
    """The issuer's loads onto its cards' purses (``purse_loads``), and the cards they are made on."""

    # A load that happened: confirmed, or reversed yet found credited by the card (its correction posted).
    _LIVE = ("status = 'confirmed' OR status = 'reversed' AND EXISTS "
             "(SELECT 1 FROM ledger_entries e WHERE e.txn_id = l.id || '-COR')")

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def card(self, app_serial: str) -> dict[str, Any] | None:
        """The card with this application serial (inside a transaction: locked for it), or None."""
        return rows.first(self.db, "SELECT * FROM cards WHERE app_serial = ?", [app_serial])

    def get(self, load_id: str) -> dict[str, Any] | None:
        return rows.first(self.db, "SELECT * FROM purse_loads WHERE id = ?", [load_id])

    def pending(self, app_serial: str) -> list[dict[str, Any]]:
        """The card's pending loads, by online counter."""
        return [dict(row) for row in self.db.query("SELECT * FROM purse_loads WHERE app_serial = ? AND "
                                                   "status = 'pending' ORDER BY online_counter", [app_serial])]

    def a_pending(self, app_serial: str) -> str | None:
        """The id of one of the card's pending loads, or None."""
        row = self.db.execute("SELECT id FROM purse_loads WHERE app_serial = ? AND status = 'pending'",
                              [app_serial]).fetchone()
        return None if row is None else row[0]

    def live_at(self, app_serial: str, online_counter: int) -> str | None:
        """The id of the load that happened at this online counter of the card, or None."""
        row = self.db.execute(f"SELECT id FROM purse_loads l WHERE app_serial = ? AND online_counter = ? AND "
                              f"({self._LIVE})", [app_serial, online_counter]).fetchone()
        return None if row is None else row[0]

    def unreversed_at(self, app_serial: str, online_counter: int) -> dict[str, Any] | None:
        """The card's load at this online counter that was not reversed (pending or confirmed), or None."""
        return rows.first(self.db, "SELECT * FROM purse_loads WHERE app_serial = ? AND online_counter = ? "
                                   "AND status != 'reversed'", [app_serial, online_counter])

    def add_pending(self, row: dict[str, Any]) -> None:
        """A new load, pending (``id``, card, account, counter, amounts, terminal, date-time, MAC2, txn, staff…)."""
        rows.insert(self.db, "purse_loads", {**row, "status": "pending", "tac": None, "how": None,
                                             "reversal_txn_id": None, "settled_at": None})

    def confirm(self, load_id: str, *, tac: str | None, how: str, at: str) -> None:
        self.db.execute("UPDATE purse_loads SET status = 'confirmed', tac = ?, how = ?, settled_at = ? WHERE id = ?",
                        [tac, how, at, load_id])

    def reverse(self, load_id: str, *, reversal_txn_id: str, at: str) -> None:
        self.db.execute("UPDATE purse_loads SET status = 'reversed', how = 'counter', reversal_txn_id = ?, "
                        "settled_at = ? WHERE id = ?", [reversal_txn_id, at, load_id])


class PurseIntegrity:
    """The issuer's corrections of reversed loads, its card blocks, flags and shadow (one region)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- credited reversals
    def uncorrected_reversals(self, app_serial: str) -> list[dict[str, Any]]:
        """The card's reversed loads that no correction (``<id>-COR``) took back and no live load at the
        same online counter explains, in online-counter order."""
        return [dict(r) for r in self.db.query(
            "SELECT * FROM purse_loads l WHERE l.app_serial = ? AND l.status = 'reversed' "
            "AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.txn_id = l.id || '-COR') "
            "AND NOT EXISTS (SELECT 1 FROM purse_loads o WHERE o.app_serial = l.app_serial "
            "                AND o.online_counter = l.online_counter AND o.id != l.id AND (o.status != 'reversed' "
            "                OR EXISTS (SELECT 1 FROM ledger_entries f WHERE f.txn_id = o.id || '-COR'))) "
            "ORDER BY l.online_counter, l.created_at", [app_serial])]

    # --- blocks
    def first_event(self, card_number: str, event: str) -> tuple[int, str, str, str] | None:
        """(id, at, reason, details) of the card's first event of this kind, or None."""
        return self.db.execute("SELECT id, at, reason, details FROM card_events WHERE card_number = ? AND event = ? "
                               "ORDER BY id LIMIT 1", [card_number, event]).fetchone()

    def add_event(self, *, card_number: str, at: str, event: str, operator: str, reason: str, details: str) -> int:
        """A card event without an outlet; its id."""
        cursor = self.db.execute(
            "INSERT INTO card_events (card_number, at, event, operator, outlet, reason, details) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?)", [card_number, at, event, operator, reason, details])
        return cursor.lastrowid

    def blacklist_add_pending(self, reason_prefix: str) -> bool:
        """Whether an undelivered ``blacklist.add`` outbox message's payload holds ``"<reason_prefix>``."""
        return self.db.execute("SELECT 1 FROM outbox WHERE delivered_at IS NULL AND kind = 'blacklist.add' "
                               "AND payload LIKE ? LIMIT 1", [f'%"{reason_prefix}%']).fetchone() is not None

    # --- flags and gaps
    def flagged_on(self, day: dt.date) -> Iterator[tuple[str, str | None, str]]:
        """(app serial, card number, flags JSON) of the purchases cleared on ``day`` that bear flags."""
        return self.db.execute(
            "SELECT app_serial, card_number, flags FROM purse_purchases WHERE clearing_day = ? AND flags IS NOT NULL",
            [day.isoformat()])

    def loose(self, app_serial: str) -> str | None:
        """The card's shadow's ``loose`` (JSON), or None without a shadow."""
        row = self.db.execute("SELECT loose FROM purse_shadow WHERE app_serial = ?", [app_serial]).fetchone()
        return None if row is None else row[0]

    def flagged_history(self, app_serial: str) -> list[tuple[int, str, int, str, str]]:
        """(counter, terminal number, terminal serial, flags JSON, clearing day) of the card's cleared flagged
        purchases, by clearing day, counter, terminal number and serial."""
        return self.db.execute(
            "SELECT counter, terminal_no, terminal_serial, flags, clearing_day FROM purse_purchases "
            "WHERE flags IS NOT NULL AND clearing_day IS NOT NULL AND app_serial = ? "
            "ORDER BY clearing_day, counter, terminal_no, terminal_serial", [app_serial]).fetchall()

    # --- what a day shows
    def audit_details_on(self, action: str, day: dt.date) -> list[str]:
        """The details (JSON) of the audit entries of ``action`` made on ``day`` (Beijing), by id."""
        (since, since_args), (until, until_args) = day_window("at", day)
        return [row[0] for row in self.db.execute(
            f"SELECT details FROM audit_log WHERE action = ? AND {until} AND {since} ORDER BY id",
            [action, *until_args, *since_args])]

    def events_on(self, event: str, day: dt.date) -> list[tuple[str, str, str, str]]:
        """(card number, at, reason, details) of the card events of ``event`` made on ``day`` (Beijing), by id."""
        (since, since_args), (until, until_args) = day_window("at", day)
        return self.db.execute(
            f"SELECT card_number, at, reason, details FROM card_events WHERE event = ? AND {until} "
            f"AND {since} ORDER BY id", [event, *until_args, *since_args]).fetchall()

    # --- the issuer's shadow of the purse
    def shadow_balance(self, card_number: str) -> int | None:
        """The expected balance the issuer's shadow holds for the card, or None without a shadow."""
        row = self.db.execute("SELECT s.expected_balance_fen FROM purse_shadow s JOIN cards c ON c.app_serial = "
                              "s.app_serial WHERE c.card_number = ?", [card_number]).fetchone()
        return None if row is None else row[0]

    def credit_shadow(self, app_serial: str, card_number: str, amount_fen: int, online_next: int, at: str) -> None:
        """The shadow takes a credited load: balance up by ``amount_fen``, online counter at least ``online_next``."""
        self.db.execute(
            """INSERT INTO purse_shadow (app_serial, card_number, expected_balance_fen, last_offline_counter,
                                         last_online_counter, updated_at)
               VALUES (?, ?, ?, NULL, ?, ?)
               ON CONFLICT (app_serial) DO UPDATE SET
                   expected_balance_fen = expected_balance_fen + excluded.expected_balance_fen,
                   last_online_counter = max(last_online_counter, excluded.last_online_counter),
                   updated_at = excluded.updated_at""",
            [app_serial, card_number, amount_fen, online_next, at])
