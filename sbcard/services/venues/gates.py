"""Venue gates and what they record: visits, library readers, loans and fines (一卡通游 · 览 · 阅).

Everything lives in the venue's region (its node from the venue's region code):

- **Gates** are terminals of that region (its ``terminals`` table, operator = the venue's
  code, station = the venue's name), made like a transit validator — a PSAM with every
  issuer's consumer keys, the hub's blacklist — by ``add_gate`` with the composition
  root's ``install`` (``sbcard venue gate add``); ``gate_for`` picks the venue's first gate
  and makes one when the venue has none (its first ``venue enter``). Their purse purchases
  are ordinary offline records, sent by ``sbcard transit upload`` like a validator's.
- **Visits** (``venue_visits``): ``GateHost`` is the gate's host port — how often a card
  entered today (the daily limit), the holder's statuses for the price rules
  (``holder_statuses``), the visit to record, and a torn purchase completed at a later
  tap (``completed``: the admission it paid, or the fines).
- **Libraries**: the holder is registered at the first loan (by citizen ID: a new card
  finds the same loans); ``borrow``, ``return_item`` (the fine fixed then, owed until the
  library's gate takes it from the purse: ``fines_paid``), ``loans``.

Each use case is one transaction of the venue's region.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlite_utils

from sbcard.domain import library as library_rules
from sbcard.domain.concessions import BJ_ELDERLY_FREE_BUS, CardConcession
from sbcard.domain.errors import NotFound, RuleRefused
from sbcard.domain.venues import ELDERLY_CARD, STUDENT, Venue, statuses_of
from sbcard.reference.venues import venues as all_venues
from sbcard.services.terminals.register import Install, register_terminal
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World

ADMISSION = "admission"
FINE = "fine"
VISIT_COLUMNS = ("venue", "terminal", "card_number", "app_serial", "issuer_node", "day", "at", "result", "code",
                 "reason", "price_fen", "full_price_fen", "rule", "student", "age", "entry_no", "counter",
                 "terminal_serial", "recovered")


# ----------------------------------------------------------------------------- gates


def add_gate(world: World, venue: Venue, *, now: dt.datetime, install: Install) -> dict[str, Any]:
    """Register a gate of ``venue`` in its region; ``install`` makes its directory (inside the transaction)."""
    more = {"station_code": None, "gate": "both", "line": None, "area": None, "full_fare_fen": None}
    row = register_terminal(world, node=venue.node, operator=venue.code, station=venue.name, more=more, now=now,
                            install=install)
    return {**{k: v for k, v in row.items() if k not in more}, "venue": venue.code, "venue_name": venue.name}


def gates(world: World, venue: Venue | None = None) -> list[dict[str, Any]]:
    """The gates of ``venue`` (or of every venue), by id."""
    codes = [venue.code] if venue else list(all_venues())
    rows: list[dict[str, Any]] = []
    for node in REGION_NODES:
        if venue is not None and node != venue.node:
            continue
        db = world.region(node)
        marks = ", ".join("?" * len(codes))
        rows += db.query(f"SELECT * FROM terminals WHERE operator IN ({marks}) ORDER BY id", codes)
    return sorted(rows, key=lambda r: r["id"])


def gate_for(world: World, venue: Venue, terminal_id: str | None, *, now: dt.datetime,
             install: Install) -> dict[str, Any]:
    """The gate to use at ``venue``: ``terminal_id`` (one of its gates), else its first, else a new one."""
    found = gates(world, venue)
    if terminal_id is not None:
        for row in found:
            if row["id"] == terminal_id:
                return row
        raise NotFound("venue.gate_unknown", f"{terminal_id!r} is not a gate of {venue.code} {venue.name} "
                       f"(its gates: {', '.join(r['id'] for r in found) or 'none yet'})", "--terminal")
    if found:
        return found[0]
    return add_gate(world, venue, now=now, install=install)


# ----------------------------------------------------------------------------- visits


def holder_statuses(card: Any, shown: frozenset[str], concession: CardConcession | None = None,
                    day: dt.date | None = None, region: str | None = None) -> frozenset[str]:
    """The statuses a venue's price rules see for the holder of ``card``: the one place they are decided.

    What the staff saw and said (``shown``): ``student`` (a student card, ``venue enter
    --student``) and ``elderly_card`` (Beijing's 北京通—养老助残卡, ``--elderly-card``); and what
    the card says: its EF 0017 ``concession``, when it is Beijing's elderly concession
    (``bj_elderly_free_bus``, granted with the 养老助残卡's rules) enabled and in force on
    ``day`` in the venue's ``region``, is ``elderly_card`` too.
    """
    seen = set(statuses_of(shown))
    if (concession is not None and concession.kind == BJ_ELDERLY_FREE_BUS and day is not None
            and region is not None and concession.applies(region, day)):
        seen.add(ELDERLY_CARD)
    return frozenset(s for s in (STUDENT, ELDERLY_CARD) if s in seen)


class GateHost:
    """The gate's host port at one venue (``terminals.apps.venue.VenueHost``), over the venue's region."""

    def __init__(self, world: World, venue: Venue) -> None:
        self.world = world
        self.venue = venue
        self.db: sqlite_utils.Database = world.region(venue.node)

    def statuses(self, card: Any, shown: frozenset[str], concession: CardConcession | None,
                 day: dt.date) -> frozenset[str]:
        """The holder's statuses for the price rules (``holder_statuses``)."""
        return holder_statuses(card, shown, concession, day, self.venue.region)

    def entries_today(self, app_serial: str, day: dt.date) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM venue_visits WHERE venue = ? AND app_serial = ? AND day = ? AND result = 'ok'",
            [self.venue.code, app_serial, day.isoformat()]).fetchone()
        return int(row[0])

    def record_visit(self, visit: Mapping[str, Any]) -> dict[str, Any]:
        """One visit, admitted or refused; an admission gets its ``entry_no`` of the day. Returns the row.

        The number is counted inside the insert, in the visit's transaction: two gates of one
        venue admitting the same card at once still number its entries 1, 2.
        """
        row = {k: visit.get(k) for k in VISIT_COLUMNS}
        row["venue"] = self.venue.code
        row["student"] = int(bool(row["student"]))
        admitted = row["result"] == "ok"
        columns = [k for k in VISIT_COLUMNS if k != "entry_no"]
        with UnitOfWork(self.db) as uow:
            cur = uow.db.execute(
                f"INSERT INTO venue_visits ({', '.join(columns)}, entry_no) SELECT {', '.join('?' * len(columns))}, "
                "CASE WHEN ? THEN (SELECT count(*) + 1 FROM venue_visits WHERE venue = ? AND app_serial = ? "
                "AND day = ? AND result = 'ok') END RETURNING id, entry_no",
                [*(row[k] for k in columns), admitted, row["venue"], row["app_serial"], row["day"]])
            row["id"], row["entry_no"] = cur.fetchone()
            uow.commit()
        return row

    def completed(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """A purchase a tear left in flight, completed from the card: settle what it paid for.

        An admission becomes its visit (returned); fines are marked paid by it.
        """
        purpose = record.get("purpose")
        if purpose == ADMISSION:
            at = dt.datetime.fromisoformat(record["at"])
            return self.record_visit({
                "terminal": record["terminal"], "card_number": record.get("card_number"),
                "app_serial": record["app_serial"], "issuer_node": record.get("issuer_node"),
                "day": at.date().isoformat(), "at": record["at"], "result": "ok", "price_fen": record["amount_fen"],
                "full_price_fen": record.get("full_fare_fen") or record["amount_fen"], "rule": record.get("rule"),
                "student": record.get("student"), "age": record.get("age"), "counter": record["counter"],
                "terminal_serial": record["terminal_serial"], "recovered": record.get("recovered"),
            })
        if purpose == FINE:
            fines_paid(self.world, self.venue, record.get("fine_ids") or (), terminal=record["terminal"],
                       counter=record["counter"], terminal_serial=record["terminal_serial"], at=record["at"])
        return None

    def replay(self, record: Mapping[str, Any]) -> bool:
        """A purchase of the gate's log given again at its start: recorded if missing (True), once.

        An admission is known by its gate and PSAM serial (one visit each: a unique index);
        fines already paid stay as they are.
        """
        purpose = record.get("purpose")
        if purpose == ADMISSION:
            known = self.db.execute("SELECT 1 FROM venue_visits WHERE terminal = ? AND terminal_serial = ? AND "
                                    "result = 'ok'", [record["terminal"], record["terminal_serial"]]).fetchone()
            if known is not None:
                return False
            self.completed(record)
            return True
        if purpose == FINE:
            return bool(fines_paid(self.world, self.venue, record.get("fine_ids") or (), terminal=record["terminal"],
                                   counter=record["counter"], terminal_serial=record["terminal_serial"],
                                   at=record["at"]))
        return False


def visits(world: World, *, venue: Venue | None = None, card_number: str | None = None,
           limit: int | None = None) -> list[dict[str, Any]]:
    """Visits of one venue (its region) or of all, optionally one card's, newest last."""
    names = {code: v.name for code, v in all_venues().items()}
    where, args = [], []
    if venue is not None:
        where.append("venue = ?")
        args.append(venue.code)
    if card_number is not None:
        where.append("card_number = ?")
        args.append(card_number.strip().upper())
    sql = "SELECT * FROM venue_visits" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY at, id"
    out: list[dict[str, Any]] = []
    for node in REGION_NODES:
        if venue is not None and node != venue.node:
            continue
        for row in world.region(node).query(sql, args):
            row["venue_name"] = names.get(row["venue"])
            row["student"] = bool(row["student"])
            row["node"] = node
            out.append(row)
    out.sort(key=lambda r: (r["at"], r["node"], r["id"]))
    return out[-limit:] if limit else out


# ----------------------------------------------------------------------------- libraries


def _reader_row(db: sqlite_utils.Database, library: Venue, citizen_id: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM library_readers WHERE library = ? AND citizen_id = ?",
                         [library.code, citizen_id]))
    return rows[0] if rows else None


def _owed(db: sqlite_utils.Database, library: Venue, citizen_id: str) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM library_fines WHERE library = ? AND citizen_id = ? AND status = 'owed' "
                         "ORDER BY id", [library.code, citizen_id]))


def _holder(citizen_id: str | None, card_number: str | None) -> tuple[str, str]:
    if not citizen_id or len(citizen_id) != 18:
        raise RuleRefused("library.no_citizen_id", "the card holds no citizen ID: it cannot be a reader's card",
                          "--reader")
    if not card_number:
        raise RuleRefused("library.no_card_number", "the card holds no card number: not a social security card",
                          "--reader")
    return citizen_id, card_number


def borrow(world: World, library: Venue, *, citizen_id: str | None, card_number: str | None, item: str,
           now: dt.datetime) -> dict[str, Any]:
    """Lend ``item`` to the holder of the card (registered here at their first loan)."""
    rules = library_rules.LoanRules.of(library)
    citizen_id, card_number = _holder(citizen_id, card_number)
    item = library_rules.item_code(item)
    db = world.region(library.node)
    today = now.date()
    with UnitOfWork(db) as uow:
        reader = _reader_row(uow.db, library, citizen_id)
        open_loans = list(uow.db.query("SELECT due_date FROM library_loans WHERE library = ? AND citizen_id = ? "
                                       "AND returned_at IS NULL", [library.code, citizen_id]))
        overdue = sum(1 for loan in open_loans if dt.date.fromisoformat(loan["due_date"]) < today)
        owed = sum(f["amount_fen"] for f in _owed(uow.db, library, citizen_id))
        out = uow.db.execute("SELECT 1 FROM library_loans WHERE library = ? AND item = ? AND returned_at IS NULL",
                             [library.code, item]).fetchone()
        library_rules.check_borrow(rules, open_loans=len(open_loans), overdue_loans=overdue, owed_fen=owed,
                       item_on_loan=out is not None, library_name=library.name)
        registered = reader is None
        if registered:
            uow.db["library_readers"].insert({"library": library.code, "citizen_id": citizen_id,
                                              "card_number": card_number, "registered_at": timestamp(now),
                                              "last_seen_at": timestamp(now)})
        else:
            uow.db.execute("UPDATE library_readers SET card_number = ?, last_seen_at = ? WHERE library = ? AND "
                           "citizen_id = ?", [card_number, timestamp(now), library.code, citizen_id])
        due = library_rules.due_date(today, rules)
        cur = uow.db.execute("INSERT INTO library_loans (library, citizen_id, card_number, item, borrowed_at, due_date) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             [library.code, citizen_id, card_number, item, timestamp(now), due.isoformat()])
        loan_id = cur.lastrowid
        uow.commit()
    return {"loan_id": loan_id, "library": library.code, "library_name": library.name, "card_number": card_number,
            "item": item, "borrowed_at": timestamp(now), "due_date": due.isoformat(), "registered": registered,
            "loans_open": len(open_loans) + 1, "loan_limit": rules.limit, "loan_days": rules.days}


def return_item(world: World, library: Venue, *, citizen_id: str | None, card_number: str | None, item: str,
                now: dt.datetime) -> dict[str, Any]:
    """Take ``item`` back; a late one's fine is fixed now and owed (the gate then takes it from the purse).

    Any reader's card may bring an item back, but the fine is the borrower's: the item's
    open loan must be this holder's (else ``RuleRefused``), so one card never pays another's.
    """
    rules = library_rules.LoanRules.of(library)
    citizen_id, card_number = _holder(citizen_id, card_number)
    item = library_rules.item_code(item)
    db = world.region(library.node)
    with UnitOfWork(db) as uow:
        rows = list(uow.db.query("SELECT * FROM library_loans WHERE library = ? AND item = ? AND returned_at IS NULL",
                                 [library.code, item]))
        if not rows:
            raise NotFound("library.not_on_loan", f"item {item} is not on loan at {library.name}", "--item")
        loan = rows[0]
        if loan["citizen_id"] != citizen_id:
            raise RuleRefused("library.not_the_borrower", f"item {item} was borrowed with another reader's card",
                              "--reader")
        due = dt.date.fromisoformat(loan["due_date"])
        late = library_rules.overdue_days(due, now.date())
        fine = library_rules.fine_fen(due, now.date(), rules)
        uow.db.execute("UPDATE library_loans SET returned_at = ?, returned_with = ?, overdue_days = ?, fine_fen = ? "
                       "WHERE id = ?", [timestamp(now), card_number, late, fine, loan["id"]])
        uow.db.execute("UPDATE library_readers SET card_number = ?, last_seen_at = ? WHERE library = ? AND "
                       "citizen_id = ?", [card_number, timestamp(now), library.code, citizen_id])
        fine_id = None
        if fine > 0:
            cur = uow.db.execute("INSERT INTO library_fines (library, citizen_id, loan_id, amount_fen, status, "
                                 "created_at) VALUES (?, ?, ?, ?, 'owed', ?)",
                                 [library.code, citizen_id, loan["id"], fine, timestamp(now)])
            fine_id = cur.lastrowid
        owed = _owed(uow.db, library, citizen_id)
        uow.commit()
    return {"loan_id": loan["id"], "library": library.code, "library_name": library.name, "card_number": card_number,
            "item": item, "borrowed_at": loan["borrowed_at"], "due_date": loan["due_date"],
            "returned_at": timestamp(now), "overdue_days": late, "fine_fen": fine, "fine_id": fine_id,
            "owed_fine_ids": [f["id"] for f in owed], "owed_fen": sum(f["amount_fen"] for f in owed)}


def fines_owed(world: World, library: Venue, citizen_id: str | None) -> list[dict[str, Any]]:
    """The holder's unpaid fines at ``library``, oldest first."""
    if not citizen_id:
        return []
    return _owed(world.region(library.node), library, citizen_id)


def fines_paid(world: World, library: Venue, fine_ids: Iterable[int], *, terminal: str, counter: int,
               terminal_serial: int, at: str) -> list[int]:
    """Mark ``fine_ids`` paid by the gate's purchase (``counter``/``terminal_serial``); those already paid stay as they are."""
    ids = sorted({int(i) for i in fine_ids})
    if not ids:
        return []
    db = world.region(library.node)
    with UnitOfWork(db) as uow:
        marks = ", ".join("?" * len(ids))
        owed = [r[0] for r in uow.db.execute(f"SELECT id FROM library_fines WHERE library = ? AND status = 'owed' "
                                             f"AND id IN ({marks})", [library.code, *ids])]
        if owed:
            marks = ", ".join("?" * len(owed))
            uow.db.execute(f"UPDATE library_fines SET status = 'paid', paid_at = ?, terminal = ?, counter = ?, "
                           f"terminal_serial = ? WHERE id IN ({marks})", [at, terminal, counter, terminal_serial,
                                                                          *owed])
        uow.commit()
    return owed


def loans(world: World, *, library: Venue | None = None, card_number: str | None = None,
          open_only: bool = False) -> list[dict[str, Any]]:
    """Loans of one library (or all), of the reader whose card is ``card_number``, with their fines."""
    names = {code: v.name for code, v in all_venues().items()}
    where, args = [], []
    if library is not None:
        where.append("l.library = ?")
        args.append(library.code)
    if card_number is not None:
        number = card_number.strip().upper()
        where.append("(l.card_number = ? OR l.citizen_id IN (SELECT citizen_id FROM library_readers r "
                     "WHERE r.library = l.library AND r.card_number = ?))")
        args += [number, number]
    if open_only:
        where.append("l.returned_at IS NULL")
    sql = ("SELECT l.*, f.id AS fine_id, f.status AS fine_status, f.paid_at AS fine_paid_at FROM library_loans l "
           "LEFT JOIN library_fines f ON f.loan_id = l.id" + (f" WHERE {' AND '.join(where)}" if where else "")
           + " ORDER BY l.borrowed_at, l.id")
    out: list[dict[str, Any]] = []
    for node in REGION_NODES:
        if library is not None and node != library.node:
            continue
        for row in world.region(node).query(sql, args):
            row["library_name"] = names.get(row["library"])
            out.append(row)
    out.sort(key=lambda r: (r["borrowed_at"], r["library"], r["id"]))
    return out

