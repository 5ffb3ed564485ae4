"""A venue's gate (检票闸机) and a library's desk: the social security card as ticket and reader's card.

A gate is a purse terminal like a transit validator (``terminals.apps.transit.PurseTerminal``):
its own state under ``<home>/terminals/<ID>/`` (PSAM with every issuer's consumer keys,
blacklist copy, offline log), the same card read, tear recovery, blacklist block and EP
purchase, so its records are a validator's and ``sbcard transit upload`` sends them.

An entry (``VenueGate.enter``):

1. read the card: SSSE card number and birth date, the T-Union data;
2. ``screen``: a purchase of this card left in flight by a tear at this gate is recovered
   exactly as a transit tap does (the card's log, GET TRANSACTION PROVE, the PSAM checks
   the MAC2); a blacklisted card is blocked on the chip and refused; the T-Union dates;
3. a recovered admission to this venue on the same day is the holder's ticket: the gate
   opens without a new debit (``recovered``: prove | log) — whether the holder retried at
   once or came back later, since a ticket is good for its day (a transit tap later than
   5 minutes pays again; a venue does not sell the day twice);
4. the rule (``sbcard.domain.venues.decide``): open day and hour, the card's entries
   today (``VenueHost.entries_today``) against the daily limit, the price by the venue's
   price rules: the holder's age on the day and their statuses — what staff saw
   (``shown``: a student card, a Beijing elderly card), as the host turns it into the
   statuses the rules know (``VenueHost.statuses``: later also what the card says);
5. a price above 0 is debited from the purse through the PSAM (INITIALIZE → MAC1 →
   DEBIT → MAC2 → the record, ``kind`` entry, ``purpose`` admission); a free entry writes
   nothing on the card;
6. the visit is recorded by the host (free ones too, refusals of a card read too). The
   debit is committed in the gate's log first: a gate that dies before the host's visit
   is written loses nothing — at its next start (``replay``) the host rebuilds the visit
   from the log (docs/protections/never-half-written.md).

A library's desk is the library's gate: ``identify`` reads the card (citizen ID too: the
holder is the reader) and screens it; ``charge`` takes a fine from the purse (a one-off
sale: ``kind`` ride in the log, whose kinds its schema fixes; ``purpose`` fine, with the
fines' ids). A fine purchase torn and completed at a later tap is reported to the host
(``VenueHost.completed``), which marks the fines paid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from sbcard.chip.purse import EP_PURCHASE
from sbcard.chip.purse_record import PurseRecord
from sbcard.chip.reader import Reader
from sbcard.chip.sw import CardStatus
from sbcard.clock import Clock
from sbcard.domain.concessions import CardConcession, decode_0017
from sbcard.domain.errors import InvalidInput
from sbcard.domain.money import format_fen
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance, combine
from sbcard.domain.venues import STUDENT, Entry, Venue, decide
from terminals.apps.terminal_state import TerminalState
from terminals.apps.transit import READ_CONCESSION, CardFacts, Plan, PurseTerminal, Quote, Refused, Station, TapResult

ADMISSION = "admission"
FINE = "fine"
REPLAYED = "visits"  # the host's place in the gate's log (``TerminalState.replayed_seq``)


class VenueHost(Protocol):
    """What the gate asks of the venue's host (``sbcard.services.venues.gates.GateHost``)."""

    def entries_today(self, app_serial: str, day: dt.date) -> int:
        """The card's admissions at this venue on ``day``."""
        ...

    def statuses(self, card: CardFacts, shown: frozenset[str], concession: CardConcession | None,
                 day: dt.date) -> frozenset[str]:
        """The holder's statuses for the price rules: what staff saw (``shown``) and what the card
        says (``concession``: its EF 0017, ``None`` when it carries none or cannot be read)."""
        ...

    def record_visit(self, visit: Mapping[str, Any]) -> Mapping[str, Any]:
        """Record an admission or a refusal; returns the row (``id``, ``entry_no``)."""
        ...

    def completed(self, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """A torn purchase completed from the card: its admission's visit (returned), or fines paid."""
        ...

    def replay(self, record: Mapping[str, Any]) -> bool:
        """A purchase of the gate's log given again at the gate's start: what it paid for (the admission's
        visit, the fines) recorded if it is not yet; True when it was missing. Once each, however often given."""
        ...


@attrs.frozen
class EntryResult:
    """What the gate's display shows and ``sbcard venue enter`` prints (``to_json``: stable keys, README)."""

    result: str  # ok | refused
    venue: str
    venue_name: str
    terminal: str
    price_fen: int = 0
    full_price_fen: int | None = None
    reason: str | None = None
    code: str | None = None
    rule: str | None = None
    description: str | None = None
    card_number: str | None = None
    app_serial: str | None = None
    issuer_node: str | None = None
    age: int | None = None
    student: bool = False
    entry_no: int | None = None
    balance_fen: int | None = None
    counter: int | None = None
    txn_type: int | None = None
    terminal_serial: int | None = None
    recovered: str | None = None
    at: str | None = None
    visit_id: int | None = None
    statuses: tuple[str, ...] = ()  # the holder's statuses the rules saw (student, elderly_card)
    category: str | None = None  # the applied price rule's category (child, minor, student, senior, …)
    provenance: Provenance | None = None  # of the answer: the venue's price with the rule, or its hours (None: the
    # card was refused before the venue's rules were asked — blacklisted, expired … — so no figure was used)
    venue_provenance: Provenance = ILLUSTRATIVE_ONLY  # the venue's full price and season
    rule_provenance: Provenance | None = None  # the price rule applied (None: the full price, or a refusal)

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def display(self) -> str:
        if not self.ok:
            return f"refused: {self.reason}"
        if self.recovered:
            return f"welcome to {self.venue_name} (ticket paid at the earlier tap: {format_fen(self.price_fen)})"
        paid = "free" if not self.price_fen else f"{format_fen(self.price_fen)} paid"
        balance = "" if self.balance_fen is None else f", balance {format_fen(self.balance_fen)}"
        return f"welcome to {self.venue_name}: {paid}{balance}"

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "price_fen": self.price_fen,
            "reason": self.reason,
            "code": self.code,
            "display": self.display,
            "full_price_fen": self.full_price_fen,
            "rule": self.rule,
            "description": self.description,
            "venue": self.venue,
            "venue_name": self.venue_name,
            "terminal": self.terminal,
            "card_number": self.card_number,
            "app_serial": self.app_serial,
            "issuer_node": self.issuer_node,
            "age": self.age,
            "student": self.student,
            "entry_no": self.entry_no,
            "balance_fen": self.balance_fen,
            "counter": self.counter,
            "txn_type": None if self.txn_type is None else f"{self.txn_type:02X}",
            "terminal_serial": self.terminal_serial,
            "recovered": self.recovered,
            "at": self.at,
            "visit_id": self.visit_id,
            "statuses": list(self.statuses),
            "category": self.category,
            **(self.provenance.to_json() if self.provenance is not None
               else {"source": [], "confidence": None, "illustrative": False}),
            "provenance": {"venue": self.venue_provenance.to_json(),
                           "rule": self.rule_provenance.to_json() if self.rule_provenance is not None else None},
        }


class VenueGate(PurseTerminal):
    """One gate of one venue: its terminal state, PSAM, clock, the venue's rules and its host."""

    def __init__(self, state: TerminalState, psam: Reader, clock: Clock, host: VenueHost, venue: Venue) -> None:
        if state.config.operator != venue.code:
            raise ValueError(f"terminal {state.config.terminal_id} is a gate of {state.config.operator}, "
                             f"not of {venue.code}")
        super().__init__(state, psam, clock)
        self.host = host
        self.venue = venue
        self._station = Station("", venue.name)
        self._recovered: list[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = []
        self.rebuilt = self.replay()

    # --- the gate's start: its log against the host -------------------------------------

    def replay(self) -> list[Mapping[str, Any]]:
        """Give the host every purchase of the log it has not taken yet; the records it was missing.

        The debit (the record committed in the log) and the host's visit (or fines paid) are
        two commits in two databases: a gate that dies between them loses nothing, since at
        its next start the host rebuilds what each purchase paid for from the log
        (``VenueHost.replay``, idempotent). The log's place is saved after the host's commits,
        so a death during the replay only replays again.
        """
        after = self.state.replayed_seq(REPLAYED)
        records = self.state.records(after_seq=after)
        if not records:
            return []
        rebuilt = [r for r in records if r.get("status") == "ok" and r.get("purpose") in (ADMISSION, FINE)
                   and r.get("venue") == self.venue.code and self.host.replay(r)]
        for r in rebuilt:
            self.state.add_event(self.clock.now().isoformat(), "rebuilt", r.get("card_number"),
                                 {"seq": r["seq"], "purpose": r["purpose"], "counter": r["counter"],
                                  "terminal_serial": r["terminal_serial"]})
        self.state.mark_replayed(REPLAYED, records[-1]["seq"])
        return rebuilt

    # --- the hook of tear recovery ------------------------------------------------------

    def completed(self, record: PurseRecord, retry: bool) -> None:
        logged = record.to_log()  # the host port takes the log's JSON form, as ``replay`` gives it
        self._recovered.append((logged, self.host.completed(logged)))

    # --- an entry -----------------------------------------------------------------------

    def _concession(self, reader: Reader) -> CardConcession | None:
        """The card's EF 0017, or ``None``: a card without one, or whose record this gate cannot
        read or does not know, is priced on what the staff saw alone."""
        try:
            return decode_0017(READ_CONCESSION.send(reader))
        except (CardStatus, InvalidInput):
            return None

    def enter(self, reader: Reader, *, shown: frozenset[str] = frozenset(), student: bool = False) -> EntryResult:
        """Admit or refuse the card in ``reader``; ``CardIOError`` if it leaves the field mid-way.

        ``shown``: what the staff saw (``student``, ``elderly_card``); ``student=True`` adds ``student``.
        """
        now = self.clock.now()
        card: CardFacts | None = None
        entry: Entry | None = None
        self._recovered = []
        shown = frozenset(shown) | ({STUDENT} if student else frozenset())
        statuses = shown
        try:
            card = self.read_card(reader, birth_date=True)
            statuses = self.host.statuses(card, shown, self._concession(reader), now.date())
            student = STUDENT in statuses
            self.screen(reader, card, now)
            ticket = self._ticket(now)
            if ticket is not None:
                record, visit = ticket
                return self._admitted(card, now, price=record["amount_fen"], full=record.get("full_fare_fen"),
                                      rule=record.get("rule"), description=record.get("description"),
                                      student=bool(record.get("student")), age=record.get("age"), tap=None,
                                      visit=visit, recovered=record.get("recovered"), record=record)
            entry = decide(self.venue, birth_date=card.birth_date, at=now, statuses=statuses,
                           entries_today=self.host.entries_today(card.app_serial, now.date()))
            if not entry.ok:
                raise Refused(entry.code or "refused", entry.reason or "refused")
            tap = None
            if entry.price_fen > 0:
                plan = Plan(entry.price_fen, EP_PURCHASE, "entry",
                            Quote(entry.price_fen, entry.full_price_fen, entry.rule, entry.description),
                            station=self._station,
                            details={"purpose": ADMISSION, "venue": self.venue.code, "student": student,
                                     "statuses": sorted(statuses), "age": entry.age})
                tap = self.purchase(reader, card, plan, now)
            visit = self.host.record_visit(self._visit(card, now, "ok", price=entry.price_fen,
                                                       full=entry.full_price_fen, rule=entry.rule, student=student,
                                                       age=entry.age, tap=tap))
            return self._admitted(card, now, price=entry.price_fen, full=entry.full_price_fen, rule=entry.rule,
                                  description=entry.description, student=student, age=entry.age, tap=tap, visit=visit,
                                  statuses=statuses)
        except Refused as r:
            visit = None
            price = r.fare if r.fare is not None else (entry.price_fen if entry is not None else 0)
            full = entry.full_price_fen if entry is not None else None
            rule = entry.rule if entry is not None else None
            age = entry.age if entry is not None else None
            if card is not None:
                visit = self.host.record_visit(self._visit(card, now, "refused", price=price,
                                                           full=full if full is not None else price, rule=rule,
                                                           student=student, age=age, code=r.code, reason=r.reason))
            return EntryResult(
                "refused", self.venue.code, self.venue.name, self.config.terminal_id, price_fen=price,
                full_price_fen=full, reason=r.reason, code=r.code, rule=rule,
                card_number=card.card_number if card else None, app_serial=card.app_serial if card else None,
                issuer_node=card.issuer_node if card else None, age=age, student=student, balance_fen=r.balance,
                at=now.isoformat(), visit_id=visit["id"] if visit else None, statuses=tuple(sorted(statuses)),
                category=entry.category if entry is not None else None,
                provenance=entry.provenance if entry is not None else None,
                venue_provenance=self.venue.price_provenance,
                rule_provenance=entry.rule_provenance if entry is not None else None,
            )

    def _ticket(self, now: dt.datetime) -> tuple[Mapping[str, Any], Mapping[str, Any] | None] | None:
        """A purchase just recovered that is an admission here today: the holder's ticket."""
        for record, visit in self._recovered:
            if (record.get("purpose") == ADMISSION and record.get("venue") == self.venue.code
                    and dt.datetime.fromisoformat(record["at"]).date() == now.date()):
                return record, visit
        return None

    def _visit(self, card: CardFacts, now: dt.datetime, result: str, *, price: int, full: int, rule: str | None,
               student: bool, age: int | None, tap: TapResult | None = None, code: str | None = None,
               reason: str | None = None) -> dict[str, Any]:
        return {
            "terminal": self.config.terminal_id, "card_number": card.card_number, "app_serial": card.app_serial,
            "issuer_node": card.issuer_node, "day": now.date().isoformat(), "at": now.isoformat(),
            "result": result, "code": code, "reason": reason, "price_fen": price, "full_price_fen": full,
            "rule": rule, "student": student, "age": age,
            "counter": tap.counter if tap else None, "terminal_serial": tap.terminal_serial if tap else None,
            "recovered": None,
        }

    def _admitted(self, card: CardFacts, now: dt.datetime, *, price: int, full: int | None, rule: str | None,
                  description: str | None, student: bool, age: int | None, tap: TapResult | None,
                  visit: Mapping[str, Any] | None, recovered: str | None = None,
                  record: Mapping[str, Any] | None = None, statuses: frozenset[str] | None = None) -> EntryResult:
        applied = self.venue.rule(rule) if rule else None
        rule_provenance = applied.provenance if applied is not None else None
        if statuses is None:  # a recovered ticket: what its record says
            statuses = frozenset((record or {}).get("statuses") or ()) | ({STUDENT} if student else frozenset())
        return EntryResult(
            "ok", self.venue.code, self.venue.name, self.config.terminal_id, price_fen=price, full_price_fen=full,
            rule=rule, description=description, card_number=card.card_number, app_serial=card.app_serial,
            issuer_node=card.issuer_node, age=age, student=student,
            entry_no=visit.get("entry_no") if visit else None,
            balance_fen=tap.balance_fen if tap else None,
            counter=tap.counter if tap else (record["counter"] if record else None),
            txn_type=tap.txn_type if tap else (record["txn_type"] if record else None),
            terminal_serial=tap.terminal_serial if tap else (record["terminal_serial"] if record else None),
            recovered=recovered, at=now.isoformat(), visit_id=visit.get("id") if visit else None,
            statuses=tuple(sorted(statuses)), category=applied.category if applied is not None else None,
            provenance=combine([self.venue.price_provenance, *([rule_provenance] if rule_provenance else [])]),
            venue_provenance=self.venue.price_provenance, rule_provenance=rule_provenance,
        )

    # --- the library's desk --------------------------------------------------------------

    def identify(self, reader: Reader) -> CardFacts:
        """The card as a reader's card (card number, citizen ID), screened; ``Refused`` if it may not be used.

        A torn fine purchase of this card is completed here first (the host marks the fines paid).
        """
        now = self.clock.now()
        self._recovered = []
        card = self.read_card(reader, citizen_id=True)
        self.screen(reader, card, now)
        return card

    def charge(self, reader: Reader, card: CardFacts, amount_fen: int, *, fine_ids: Sequence[int],
               description: str) -> TapResult:
        """Take ``amount_fen`` (the fines ``fine_ids``) from the purse; ``Refused`` (e.g. insufficient balance)."""
        if amount_fen <= 0:
            raise ValueError("a charge is more than 0 fen")
        now = self.clock.now()
        plan = Plan(amount_fen, EP_PURCHASE, "ride",
                    Quote(amount_fen, amount_fen, f"{self.venue.code}.fine", description), station=self._station,
                    details={"purpose": FINE, "venue": self.venue.code, "fine_ids": list(fine_ids)})
        return self.purchase(reader, card, plan, now)

    @property
    def recovered(self) -> list[Mapping[str, Any]]:
        """The purchases the last ``enter`` or ``identify`` completed from the card."""
        return [record for record, _ in self._recovered]
