"""The transit validator (闸机 / 车载机): one tap of a card, debited offline on the chip.

A tap (``Validator.tap``), as a gate or a bus validator runs it:

1. read the card: SSSE card number (and birth date, where an age changes the fare; a card
   without the social security application is read as a plain T-Union card); SELECT
   T-Union, whose FCI carries EF 0015 (issuer id, application serial, start and expiry);
2. a purchase of this card left in flight by a tear (``pending``)? recover it first,
   exactly as CARD-PROFILE's "Tearing" says (below);
3. the terminal's blacklist copy: a listed card is blocked on the chip (APPLICATION
   BLOCK with the PSAM's MAC) and refused; then the T-Union dates;
4. EF 0017 (concessions, unless the hub revoked it on this card) and, at a metro gate,
   the capp record (where the journey began);
5. the fare from the fare port (``FarePort``; ``transit_fares.TariffFares`` over
   ``sbcard.domain``, wired by the CLI);
6. INITIALIZE FOR (CAPP) PURCHASE → INIT SAM FOR PURCHASE (the PSAM's serial and MAC1) →
   the purchase in flight saved (``TerminalState.begin_purchase``) → [UPDATE CAPP DATA
   CACHE] → DEBIT FOR PURCHASE → VERIFY MAC2 in the PSAM → the record committed to the
   offline log (one transaction) before the result says ``ok``. No APDU follows the
   commit, so a tap torn after it has nothing left to lose.

The card read, the recovery of a torn purchase, the blacklist block and the PSAM purchase
are ``PurseTerminal``'s, which ``Validator`` extends with the fares: a venue's gate
(``terminals/apps/venue.py``) builds its entries and a library's fines on the same
methods, so their records are the validator's and ``transit upload`` carries them.

Metro gates (``FarePort.gated``) use the capp record: an entry is a 0-fen compound
purchase writing "inside, station, gate, time"; the exit reads it, charges the distance
fare between the two stations and writes "exited". An exit with no entry on this
network, or more than ``MAX_JOURNEY`` (4 h) after it, pays the maximum fare; so does an
entry on a card still inside (its journey never closed), except a second tap at the same
station within ``REENTRY_WINDOW`` (refused: already entered). A gate is an entry gate,
an exit gate, or ``both`` (the card's record decides). Other operators charge one fare
per ride (bus); a free ride (fare 0: the elderly, with their concession) is a 0-fen
compound purchase, so it too leaves a TAC-proven record.

Tearing (the card leaves the field mid-purchase, or the terminal dies). The purchase in
flight (counter, balance, amount, terminal serial, date and time, the card's random) is
on disk before DEBIT is sent. At the next tap of the same card the validator reads the
card's own log (SFI 18): a purchase with that counter, type, amount, terminal number and
date-time means the card committed it — GET TRANSACTION PROVE gives its MAC2 and TAC
(the PSAM verifies the MAC2 in the same session, ``INIT SAM … again``) and the record is
written, with no new debit; when the purchase is still the card's newest and at most
``RETRY_WINDOW`` old the tap is the rider's retry and answers ``ok`` (``recovered``),
otherwise it goes on as a purchase of its own. A card that has made another purchase
since has no prove for it any more: the record is written from its log with no TAC
(``recovered: log``), for the host to set aside. No such purchase in the log: the card
never committed it (it keeps balance, counter and log together), the purchase in flight
is dropped and the tap restarts the purchase. The offline counter decides, not the
balance: a 0-fen entry leaves the balance as it was.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.apdu import Response
from sbcard.chip.codec import bcd_datetime, from_bcd, parse_bcd_date
from sbcard.chip.commands import (
    ApduCommand,
    ApplicationBlock,
    DebitForPurchase,
    GetBalance,
    GetChallenge,
    GetTransactionProve,
    InitializeForPurchase,
    MalformedResponse,
    PurchaseInit,
    ReadBinary,
    ReadRecord,
    SelectByName,
    TransactionLogRecord,
    TUnionIssuerData,
    UpdateCappDataCache,
    read_transaction_log,
    select_tunion,
)
from sbcard.chip.psam import ApplicationBlockMac, InitSamForPurchase, VerifyMac2, card_serial
from sbcard.chip.purse import CAPP_PURCHASE, EP_PURCHASE
from sbcard.chip.purse_record import PurseRecord
from sbcard.chip.reader import Reader
from sbcard.chip.sw import CardStatus
from sbcard.chip.transit import CappRecord
from sbcard.clock import Clock
from sbcard.domain.errors import SbcardError
from sbcard.domain.money import format_fen
from sbcard.domain.regions import node_of
from terminals.apps.terminal_state import TerminalState

MAX_JOURNEY = dt.timedelta(hours=4)
REENTRY_WINDOW = dt.timedelta(minutes=20)
RETRY_WINDOW = dt.timedelta(minutes=5)  # a torn tap completed this soon, by its last purchase: the same rider retrying
KEY_INDEX = profile.CARD_KEY_INDEX
PURCHASE_TYPES = (EP_PURCHASE, CAPP_PURCHASE)
_STORED_KINDS = {"elderly": "elderly_free_ride", "student": "student"}  # the fares' name → the hub's
T = TypeVar("T")


class _Fixed(Generic[T]):
    """A command value that never changes, its APDU encoded once: a tap sends these to every card.

    ``send`` is the value's own ``send`` without building the ``Command`` again; an answer
    that asks for more (61xx, 6Cxx) takes the ordinary road (``sbcard.chip.reader.transmit``).
    """

    def __init__(self, value: ApduCommand[T]) -> None:
        self.value = value
        self.raw = value.command().to_bytes()

    def send(self, reader: Reader) -> T:
        response = Response.from_bytes(reader.transmit_raw(self.raw))
        if response.sw >> 8 in (0x61, 0x6C):
            return self.value.send(reader)
        return self.value.parse(response.check())


_SELECT_SSSE = _Fixed(SelectByName(profile.SSSE_NAME))
_READ_CARD_NUMBER = _Fixed(ReadRecord(profile.SFI_EF05, profile.Tag.CARD_NUMBER))
_READ_BIRTH_DATE = _Fixed(ReadRecord(profile.SFI_EF06, profile.Tag.BIRTH_DATE))
_READ_CITIZEN_ID = _Fixed(ReadRecord(profile.SFI_EF06, profile.Tag.CITIZEN_ID))
_SELECT_TUNION = _Fixed(select_tunion())
READ_CONCESSION = _Fixed(ReadBinary(profile.SFI_TU_MANAGEMENT, 0, profile.TU_MANAGEMENT_LEN))
_READ_CAPP = _Fixed(ReadRecord(profile.SFI_TU_CAPP, profile.CAPP_METRO_RECORD, by_tag=False))
_GET_BALANCE = _Fixed(GetBalance())


# ----------------------------------------------------------------------------- ports


class FareQuote(Protocol):
    fare_fen: int
    full_fare_fen: int
    rule: str  # a stable identifier, e.g. bj-subway.distance
    description: str


@attrs.frozen
class Quote:
    """A fare as the validator uses it (``sbcard.domain.fares.FareQuote`` has the same fields)."""

    fare_fen: int
    full_fare_fen: int
    rule: str
    description: str = ""


@attrs.frozen
class Station:
    code: str  # 8 digits, written into capp records as 4 BCD bytes
    name: str


class FarePort(Protocol):
    """What the validator asks of the fare rules (the CLI wires ``sbcard.domain``)."""

    def gated(self, operator: str) -> bool:
        """Entry and exit taps (metro), rather than one tap per ride (bus)."""
        ...

    def uses_age(self, operator: str) -> bool:
        """Whether the holder's age can change this operator's fare (the card's birth date is read then)."""
        ...

    def station(self, operator: str, name: str) -> Station:
        """A station of the operator's network by name or code (``LookupError`` if none)."""
        ...

    def station_by_code(self, operator: str, code: str) -> Station | None: ...

    def concession(self, operator: str, ef0017: bytes, day: dt.date) -> str | None:
        """What the card's EF 0017 grants on this operator on ``day``: "student", "elderly" or None."""
        ...

    def ride(
        self,
        operator: str,
        *,
        km: Any,
        line: str | None,
        area: str | None,
        holder_birth_date: dt.date | None,
        day: dt.date,
        concession: str | None,
        full_fare_fen: int | None,
        card_region: str | None = None,
    ) -> FareQuote:
        """One ride's fare (bus: distance, line, area, age, concession, the line's full fare, and the
        card's issuing region for a same-treatment rule)."""
        ...

    def journey(
        self,
        operator: str,
        entry: Station,
        exit: Station,
        *,
        holder_birth_date: dt.date | None,
        day: dt.date,
        concession: str | None,
        card_region: str | None = None,
    ) -> FareQuote:
        """A metro journey's fare between two stations."""
        ...

    def max_fare(self, operator: str, station: Station | None = None) -> int:
        """What a missing entry or an overlong journey pays (from ``station``'s fare system)."""
        ...

    def min_fare(self, operator: str) -> int:
        """The least a journey costs: what a card needs to enter a metro gate."""
        ...


# ----------------------------------------------------------------------------- results


@attrs.frozen
class TapResult:
    """What the display shows and the CLI prints (``to_json``: stable keys, README)."""

    result: str  # "ok" | "refused"
    reason: str | None = None
    code: str | None = None  # refusal: insufficient_balance, expired, not_yet_valid, blacklisted, blocked, …
    fare_fen: int | None = None
    balance_fen: int | None = None
    kind: str | None = None  # ride | entry | exit
    rule: str | None = None
    description: str | None = None
    full_fare_fen: int | None = None
    card_number: str | None = None
    app_serial: str | None = None
    issuer_node: str | None = None
    station: str | None = None
    entry_station: str | None = None
    counter: int | None = None
    txn_type: int | None = None
    terminal_serial: int | None = None
    recovered: str | None = None  # prove | log: this tap completed a torn purchase
    at: str | None = None
    record_seq: int | None = None
    # where the fare's figures come from: {"source", "confidence", "illustrative"} (Provenance.to_json)
    provenance: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def display(self) -> str:
        """The line on the validator's display."""
        if not self.ok:
            return f"refused: {self.reason}"
        paid = format_fen(self.fare_fen or 0)
        balance = "" if self.balance_fen is None else f", balance {format_fen(self.balance_fen)}"
        if self.recovered:
            return f"ok (earlier tap completed: {paid} paid){balance}"
        if self.kind == "entry" and not self.fare_fen:
            return f"welcome, entered at {self.station}{balance}"
        return f"{paid} paid{balance}"

    def to_json(self, terminal: str) -> dict[str, Any]:
        return {
            "result": self.result,
            "fare_fen": self.fare_fen,
            "balance_fen": self.balance_fen,
            "reason": self.reason,
            "code": self.code,
            "display": self.display,
            "kind": self.kind,
            "rule": self.rule,
            "description": self.description,
            "full_fare_fen": self.full_fare_fen,
            "card_number": self.card_number,
            "app_serial": self.app_serial,
            "issuer_node": self.issuer_node,
            "terminal": terminal,
            "station": self.station,
            "entry_station": self.entry_station,
            "counter": self.counter,
            "txn_type": None if self.txn_type is None else f"{self.txn_type:02X}",
            "terminal_serial": self.terminal_serial,
            "recovered": self.recovered,
            "at": self.at,
            **(self.provenance or {"source": None, "confidence": None, "illustrative": None}),
        }


class Refused(Exception):
    def __init__(self, code: str, reason: str, *, balance: int | None = None, fare: int | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.balance, self.fare = code, reason, balance, fare


@attrs.frozen
class CardFacts:
    """What the validator read of the card before deciding anything."""

    card_number: str | None
    birth_date: dt.date | None
    tunion: TUnionIssuerData
    citizen_id: str | None = None  # read only when a terminal asks for it (``read_card(citizen_id=True)``)

    @property
    def app_serial(self) -> str:
        return self.tunion.app_serial

    @property
    def issuer_id(self) -> str:
        return self.tunion.issuer_id

    @property
    def issuer_region(self) -> str | None:
        code = self.issuer_id[:6]
        return code if code.isdigit() else None

    @property
    def issuer_node(self) -> str | None:
        return _node_of_issuer(self.issuer_id[:2])


@attrs.frozen
class Plan:
    """The purchase the validator is about to make."""

    amount: int
    txn_type: int
    kind: str
    quote: FareQuote
    station: Station | None = None
    entry: CappRecord | None = None
    entry_station: Station | None = None
    capp_record: CappRecord | None = None
    min_balance: int = 0
    concession: str | None = None
    km: Any = None
    details: Mapping[str, Any] | None = None  # more for the record (a venue's code, what was paid for)


# ----------------------------------------------------------------------------- the validator


def _fen(amount: int) -> str:
    return format_fen(amount)


def _local(now: dt.datetime) -> dt.datetime:
    """Service time (Beijing) without its zone, as the card stores it."""
    return now.replace(tzinfo=None, microsecond=0)


class PurseTerminal:
    """What any terminal that sells from the card's purse does: a validator, a venue's gate.

    Its state (log, blacklist, PSAM serial), PSAM and clock; ``read_card``, ``screen`` (tear
    recovery, blacklist block, dates) and ``purchase`` (a ``Plan`` through the PSAM, with
    the record in the offline log) are what a terminal application builds a tap from.
    """

    def __init__(self, state: TerminalState, psam: Reader, clock: Clock) -> None:
        self.state = state
        self.config = state.config
        self.psam = psam
        self.clock = clock
        self._terminal_no = self.config.terminal_no_bytes
        state.resume()  # a purchase left in flight by a terminal that died: completed at its card's next tap

    # --- reading --------------------------------------------------------------------------

    def read_card(self, reader: Reader, *, birth_date: bool = False, citizen_id: bool = False) -> CardFacts:
        """SSSE card number (and the birth date, the citizen ID when asked), then the T-Union data.

        ``Refused`` for a card not issued or without a T-Union purse.
        """
        number = birth = citizen = None
        try:
            _SELECT_SSSE.send(reader)
        except sw.FileNotFound:
            pass  # a plain T-Union card: no social security application
        else:
            try:
                number = _text(_READ_CARD_NUMBER.send(reader))
                if birth_date:  # only where an age changes the fare: one APDU less elsewhere
                    birth = _date(_READ_BIRTH_DATE.send(reader))
                if citizen_id:
                    citizen = _text(_READ_CITIZEN_ID.send(reader))
            except sw.ConditionsNotSatisfied:
                raise Refused("not_issued", "card not issued (not personalised)") from None
            except (sw.RecordNotFound, MalformedResponse):
                pass  # read what is there; the T-Union data decides
        try:
            fci = _SELECT_TUNION.send(reader)
        except sw.FileNotFound:
            raise Refused("wrong_application", "not a transit card: no T-Union application") from None
        except MalformedResponse:
            raise Refused("wrong_application", "the T-Union application's data cannot be read") from None
        if fci.tunion is None:
            raise Refused("wrong_application", "not a transit card: the T-Union application is not issued")
        if fci.tunion.app_type != profile.TU_APP_TYPE_PURSE:
            raise Refused("wrong_application", f"T-Union application type {fci.tunion.app_type:02X} is not a purse")
        return CardFacts(number, birth, fci.tunion, citizen)

    def screen(self, reader: Reader, card: CardFacts, now: dt.datetime) -> TapResult | None:
        """What every tap does before it sells anything; ``Refused`` when the card may not pass.

        A purchase of this card left in flight by a tear is recovered first (``completed``
        hears of it); a card on the blacklist copy is blocked on the chip and refused; then
        the T-Union dates. Returns the recovered purchase when this tap is its retry (the
        caller answers it ``ok`` and sells nothing), else None.
        """
        recovered: TapResult | None = None
        pending = self.state.pending_for(card.app_serial)
        if pending is not None:
            recovered = self._recover(reader, card, pending, now)
        if self.state.blacklisted(card.card_number):
            self._block(reader, card, now)
            raise Refused("blacklisted", f"card {card.card_number} is on the blacklist: blocked, see a service outlet")
        if recovered is not None:
            return recovered
        day = now.date()
        if day < card.tunion.start_date:
            raise Refused("not_yet_valid", f"card not valid before {card.tunion.start_date.isoformat()}")
        if day > card.tunion.expiry_date:
            raise Refused("expired", f"card expired on {card.tunion.expiry_date.isoformat()}")
        return None

    def completed(self, record: PurseRecord, retry: bool) -> None:
        """A torn purchase was completed from the card (its record now in the log): a hook.

        ``retry``: this tap is its retry (``screen`` returns it). The validator needs nothing
        more; a venue gate settles what the purchase paid for (an entry, a library fine).
        """

    # --- the purchase ---------------------------------------------------------------------

    def purchase(self, reader: Reader, card: CardFacts, plan: Plan, now: dt.datetime) -> TapResult:
        """INITIALIZE → PSAM MAC1 → in flight → [capp] DEBIT → MAC2 → the record: ``ok``; else ``Refused``.

        ``CardIOError`` (or any other exception) from the card after the purchase is in flight
        leaves it pending: the card's next tap at this terminal recovers it (``screen``).
        """
        capp = plan.txn_type == CAPP_PURCHASE
        try:
            init = InitializeForPurchase(KEY_INDEX, plan.amount, self._terminal_no, capp=capp).send(reader)
        except sw.InsufficientBalance:
            balance = _GET_BALANCE.send(reader)
            raise Refused("insufficient_balance", f"insufficient balance: {_fen(plan.amount)} needed, "
                          f"{_fen(balance)} on the card", balance=balance, fare=plan.amount) from None
        except sw.ApplicationLocked:
            raise Refused("blocked", "card blocked: the transit application is locked, see a service outlet") from None
        except CardStatus as e:
            raise Refused("card_error", f"the card refused the purchase ({e})") from None
        if init.balance < plan.min_balance:
            raise Refused("insufficient_balance", f"insufficient balance: {_fen(plan.min_balance)} needed to enter, "
                          f"{_fen(init.balance)} on the card", balance=init.balance, fare=plan.amount)

        date_time = bcd_datetime(now)
        pending = self._pending_body(card, plan, init, date_time, now)
        try:
            sam = InitSamForPurchase(
                random=init.random,
                counter=init.offline_counter,
                amount=plan.amount,
                txn_type=plan.txn_type,
                date_time=date_time,
                key_version=init.key_version,
                algorithm_id=init.algorithm.id_byte,
                card_serial=card_serial(card.app_serial),
                issuer_id=bytes.fromhex(card.issuer_id),
            ).send(self.psam)
        except sw.CardStatus as e:
            if e.sw == sw.KEY_NOT_FOUND:
                raise Refused("unknown_issuer", f"no keys for cards of issuer {card.issuer_id} in this PSAM") from None
            raise Refused("psam_error", f"the PSAM refused the purchase ({e})") from None
        pending["terminal_serial"] = sam.serial
        self.state.begin_purchase(pending)  # on disk before the card can commit anything

        try:
            if plan.capp_record is not None:
                UpdateCappDataCache(profile.CAPP_METRO_RECORD, profile.SFI_TU_CAPP, plan.capp_record.to_bytes()).send(reader)
            result = DebitForPurchase(sam.terminal_serial, date_time, sam.mac1).send(reader)
        except CardStatus as e:  # the card answered: nothing was committed
            self.state.end_purchase()
            with self.state.transaction():
                self.state.add_event(now.isoformat(), "purchase_refused", card.card_number,
                                     {"sw": f"{e.sw:04X}", "counter": init.offline_counter})
            if isinstance(e, sw.MacError):
                raise Refused("mac1_rejected", "the card did not accept the terminal's MAC1") from None
            raise Refused("card_error", f"the card refused the purchase ({e})") from None
        except BaseException:  # torn, or the reader gone: the card may have committed it
            with self.state.transaction():
                self.state.put_pending(pending)
            raise

        mac2_ok = self._verify_mac2(result.mac2)
        record = self._record(pending, tac=result.tac, mac2=result.mac2, mac2_ok=mac2_ok, recovered=None)
        seq = self.state.commit_record(record)  # the one commit of a tap: the record
        self.state.end_purchase()
        balance = init.balance - plan.amount
        if not mac2_ok:
            raise Refused("mac2_failed", "the card's answer is not authentic (MAC2): see a service outlet",
                          balance=balance, fare=plan.amount)
        return self._ok(card, pending, balance, seq, None)

    def _verify_mac2(self, mac2: bytes) -> bool:
        try:
            VerifyMac2(mac2).send(self.psam)
        except sw.MacError:
            return False
        return True

    def _pending_body(
        self, card: CardFacts, plan: Plan, init: PurchaseInit, date_time: bytes, now: dt.datetime
    ) -> dict[str, Any]:
        cfg = self.config
        body: dict[str, Any] = {
            "app_serial": card.app_serial,
            "txn_type": plan.txn_type,
            "counter": init.offline_counter,
            "card_number": card.card_number,
            "issuer_id": card.issuer_id,
            "issuer_region": card.issuer_region,
            "issuer_node": card.issuer_node,
            "amount_fen": plan.amount,
            "balance_before_fen": init.balance,
            "terminal": cfg.terminal_id,
            "operator": cfg.operator,
            "terminal_no": cfg.terminal_no.upper(),
            "date_time": from_bcd(date_time),
            "at": now.isoformat(),
            "kind": plan.kind,
            "blacklist_version": self.state.blacklist_version,
            # the PSAM's session, to verify a MAC2 given again after a tear
            "random": init.random.hex().upper(),
            "key_version": init.key_version,
            "algorithm_id": init.algorithm.id_byte,
            # what the operator's host and clearing want beside the cryptograms
            "rule": plan.quote.rule,
            "description": getattr(plan.quote, "description", ""),
            "provenance": _provenance(plan.quote),
            "full_fare_fen": plan.quote.full_fare_fen,
            "concession": plan.concession,
            "km": None if plan.km is None else str(plan.km),
            "station": plan.station.name if plan.station else None,
            "station_code": plan.station.code if plan.station and plan.station.code else None,
            "line": cfg.line,
        }
        if plan.details:  # never over what the purchase itself is (its counter, amount, session…)
            body.update({k: v for k, v in plan.details.items() if k not in body})
        if plan.kind == "exit" or (plan.kind == "entry" and plan.entry is not None):
            entry = plan.entry
            body.update(
                entry_station=plan.entry_station.name if plan.entry_station else None,
                entry_station_code=entry.station_code if entry else None,
                entry_at=entry.at.isoformat() if entry and entry.at else None,
                entry_terminal_no=entry.terminal_no.hex().upper() if entry else None,
            )
        return body

    @staticmethod
    def _record(pending: dict[str, Any], *, tac: bytes | None, mac2: bytes | None, mac2_ok: bool,
                recovered: str | None) -> PurseRecord:
        """The log's record of the purchase in flight (its JSON form, read by the record's codec)."""
        logged = {k: v for k, v in pending.items() if k not in ("random", "key_version", "algorithm_id")}
        logged.update(
            tac=tac.hex().upper() if tac else None,
            mac2=mac2.hex().upper() if mac2 else None,
            status="ok" if mac2_ok else "mac2_failed",
            recovered=recovered,
            balance_after_fen=pending["balance_before_fen"] - pending["amount_fen"],
        )
        return PurseRecord.from_log(logged)

    def _ok(self, card: CardFacts, p: dict[str, Any], balance: int | None, seq: int, recovered: str | None) -> TapResult:
        return TapResult(
            "ok",
            fare_fen=p["amount_fen"],
            balance_fen=balance,
            kind=p["kind"],
            rule=p.get("rule"),
            description=p.get("description"),
            full_fare_fen=p.get("full_fare_fen"),
            card_number=card.card_number,
            app_serial=card.app_serial,
            issuer_node=card.issuer_node,
            station=p.get("station"),
            entry_station=p.get("entry_station"),
            counter=p["counter"],
            txn_type=p["txn_type"],
            terminal_serial=p["terminal_serial"],
            recovered=recovered,
            at=p["at"],
            record_seq=seq,
            provenance=self._cited(p.get("provenance")),
        )

    def _cited(self, kept: dict[str, Any] | None) -> dict[str, Any] | None:
        """The record keeps the fare's source ids; the answer names the documents (the fare port's)."""
        if kept is None:
            return None
        documents = getattr(getattr(self, "fares", None), "sources", None)  # a venue gate has no fare port
        ids = list(kept.get("source") or [])
        return {**kept, "source": documents(ids) if documents else [{"id": i} for i in ids]}

    # --- tear recovery ----------------------------------------------------------------------

    def _recover(self, reader: Reader, card: CardFacts, p: dict[str, Any], now: dt.datetime) -> TapResult | None:
        """Complete or drop the purchase a tear left in flight.

        A ``TapResult`` (ok, no new debit) when the card had committed it and this tap is its
        retry: the purchase is still the card's newest and at most ``RETRY_WINDOW`` old. Else
        None: the tap goes on as a purchase of its own (a dropped purchase is made again).
        """
        log = read_transaction_log(reader)
        verdict = _committed(log, p)
        if verdict is not True:
            kind = "purchase_abandoned" if verdict is False else "purchase_unresolved"
            with self.state.transaction():
                self.state.drop_pending(card.app_serial)
                self.state.add_event(now.isoformat(), kind, card.card_number,
                                     {k: p[k] for k in ("counter", "txn_type", "amount_fen", "terminal_serial")})
            return None
        tac = mac2 = None
        recovered, mac2_ok = "log", True
        try:
            prove = GetTransactionProve(p["txn_type"], p["counter"]).send(reader)
        except (sw.MacNotAvailable, sw.ApplicationLocked):
            prove = None
        if prove is not None:
            tac, mac2, recovered = prove.tac, prove.mac2, "prove"
            InitSamForPurchase(
                random=bytes.fromhex(p["random"]),
                counter=p["counter"],
                amount=p["amount_fen"],
                txn_type=p["txn_type"],
                date_time=bytes.fromhex(p["date_time"]),
                key_version=p["key_version"],
                algorithm_id=p["algorithm_id"],
                card_serial=card_serial(card.app_serial),
                issuer_id=bytes.fromhex(card.issuer_id),
                again=p["terminal_serial"].to_bytes(4, "big"),
            ).send(self.psam)
            mac2_ok = self._verify_mac2(mac2)
        newest = next((r for r in log if r.txn_type in PURCHASE_TYPES), None)
        retry = newest is not None and newest.counter == p["counter"] and (
            dt.timedelta(0) <= now - dt.datetime.fromisoformat(p["at"]) <= RETRY_WINDOW)
        balance: int | None = None
        if retry:  # read before the record is written: after it, this tap sends the card nothing more
            try:
                balance = _GET_BALANCE.send(reader)
            except CardStatus:
                balance = None
            expected = p["balance_before_fen"] - p["amount_fen"]
            newest_is_it = bool(log) and (log[0].txn_type, log[0].counter) == (p["txn_type"], p["counter"])
            if balance is not None and newest_is_it and balance != expected:
                # CARD-PROFILE's test, the balance dropped by the amount, disagrees with the card's own log
                self.state.add_event(now.isoformat(), "balance_mismatch", card.card_number,
                                     {"counter": p["counter"], "expected_fen": expected, "balance_fen": balance})
        record = self._record(p, tac=tac, mac2=mac2, mac2_ok=mac2_ok, recovered=recovered)
        with self.state.transaction():
            if self.state.has_record(card.app_serial, p["txn_type"], p["counter"]):
                seq = 0  # already in the log (another process wrote it): nothing to add
            else:
                seq = self.state.append_record(record)
            self.state.drop_pending(card.app_serial)
        self.completed(record, retry)
        if not retry:
            return None  # a later visit: the record is complete, this tap pays its own way
        return self._ok(card, p, balance, seq, recovered)

    # --- blocking -------------------------------------------------------------------------

    def _block(self, reader: Reader, card: CardFacts, now: dt.datetime) -> None:
        """APPLICATION BLOCK with the PSAM's MAC: every purse command then answers 9303."""
        try:
            challenge = GetChallenge().send(reader)
            mac = ApplicationBlockMac(card_serial(card.app_serial), bytes.fromhex(card.issuer_id), challenge).send(self.psam)
            ApplicationBlock(mac).send(reader)
            outcome = "blocked"
        except CardStatus as e:
            outcome = f"block failed: {e}"
        self.state.add_event(now.isoformat(), "card_blocked", card.card_number,
                             {"app_serial": card.app_serial, "outcome": outcome,
                              "blacklist_version": self.state.blacklist_version})


class Validator(PurseTerminal):
    """One terminal's validator: its state (log, blacklist, PSAM serial), PSAM, fare rules and clock."""

    def __init__(
        self,
        state: TerminalState,
        psam: Reader,
        fares: FarePort,
        clock: Clock,
    ) -> None:
        super().__init__(state, psam, clock)
        self.fares = fares
        self._gated = fares.gated(self.config.operator)
        self._uses_age = fares.uses_age(self.config.operator)
        self._stations: dict[str, Station] = {}

    # --- the tap --------------------------------------------------------------------------

    def tap(self, reader: Reader, *, km: Any = None, station: str | None = None) -> TapResult:
        """Validate the card in ``reader``; ``CardIOError`` if it leaves the field mid-way.

        ``station`` stands for the terminal's station (a bus validator moving along);
        ``km`` is a bus ride's distance.
        """
        now = self.clock.now()
        card: CardFacts | None = None
        try:
            card = self.read_card(reader, birth_date=self._uses_age)
            recovered = self.screen(reader, card, now)
            if recovered is not None:
                return recovered
            concession = self._concession(reader, card, now.date())
            plan = self._plan(reader, card, now, concession=concession, km=km, station=station)
            return self.purchase(reader, card, plan, now)
        except Refused as r:
            return TapResult(
                "refused",
                reason=r.reason,
                code=r.code,
                fare_fen=r.fare,
                balance_fen=r.balance,
                card_number=card.card_number if card else None,
                app_serial=card.app_serial if card else None,
                issuer_node=card.issuer_node if card else None,
                station=station or self.config.station,
                at=now.isoformat(),
            )

    def _concession(self, reader: Reader, card: CardFacts, day: dt.date) -> str | None:
        try:
            data = READ_CONCESSION.send(reader)
        except CardStatus:
            return None
        kind = self.fares.concession(self.config.operator, data, day)
        if kind is not None and self.state.concession_revoked(card.card_number, _STORED_KINDS[kind]):
            return None  # enabled on another card since: this one pays full fare
        return kind

    # --- what to charge -------------------------------------------------------------------

    def _station(self, name: str) -> Station:
        found = self._stations.get(name)
        if found is None:
            try:
                found = self._stations[name] = self.fares.station(self.config.operator, name)
            except LookupError as e:
                raise Refused("unknown_station", f"station {name!r} is not on the {self.config.operator} network: {e}")
        return found

    def _plan(
        self, reader: Reader, card: CardFacts, now: dt.datetime, *, concession: str | None, km: Any,
        station: str | None,
    ) -> Plan:
        op = self.config.operator
        day = now.date()
        if not self._gated:
            quote = self.fares.ride(
                op,
                km=km,
                line=self.config.line,
                area=self.config.area,
                holder_birth_date=card.birth_date,
                day=day,
                concession=concession,
                full_fare_fen=self.config.full_fare_fen,
                card_region=card.issuer_region,
            )
            name = station or self.config.station
            here = Station("", name) if name else None
            txn_type = EP_PURCHASE if quote.fare_fen > 0 else CAPP_PURCHASE
            return Plan(quote.fare_fen, txn_type, "ride", quote, station=here, concession=concession, km=km)

        name = station or self.config.station_code or self.config.station
        if not name:
            raise Refused("unknown_station", f"terminal {self.config.terminal_id} has no station")
        here = self._station(name)
        raw = _READ_CAPP.send(reader)
        last = CappRecord.parse(raw)  # type: ignore[arg-type]
        inside = last is not None and last.inside and last.operator == op
        gate = self.config.gate
        direction = gate if gate != "both" else ("exit" if inside else "entry")
        local = _local(now)
        if direction == "entry":
            record = CappRecord.make(op, here.code, self._terminal_no, local, inside=True)
            min_fare = self.fares.min_fare(op)
            if not inside:
                return Plan(0, CAPP_PURCHASE, "entry", Quote(0, 0, f"{op}.entry", f"entered at {here.name}"), here,
                            capp_record=record, min_balance=min_fare, concession=concession)
            assert last is not None and last.at is not None
            if last.station_code == here.code and dt.timedelta(0) <= local - last.at < REENTRY_WINDOW:
                raise Refused("already_entered", f"already entered at {here.name} at {last.at:%H:%M}")
            began = self.fares.station_by_code(op, last.station_code)
            quote = self._max_fare(op, began, f"the journey from {began.name if began else last.station_code} "
                                              f"entered {last.at:%Y-%m-%d %H:%M} was never closed")
            return Plan(quote.fare_fen, CAPP_PURCHASE, "entry", quote, here, last, began, record,
                        min_balance=quote.fare_fen + min_fare, concession=concession)

        record = CappRecord.make(op, here.code, self._terminal_no, local, inside=False)
        if not inside:
            quote = self._max_fare(op, here, "no entry recorded on this network")
            return Plan(quote.fare_fen, CAPP_PURCHASE, "exit", quote, here, capp_record=record, concession=concession)
        assert last is not None and last.at is not None
        began = self.fares.station_by_code(op, last.station_code)
        if local - last.at > MAX_JOURNEY:
            quote = self._max_fare(op, began, f"exit more than {_hours(MAX_JOURNEY)} after the entry at "
                                              f"{last.at:%Y-%m-%d %H:%M}")
        elif began is None:
            quote = self._max_fare(op, here, f"the entry station {last.station_code} is not on this network")
        else:
            quote = self.fares.journey(op, began, here, holder_birth_date=card.birth_date, day=day,
                                       concession=concession, card_region=card.issuer_region)
        return Plan(quote.fare_fen, CAPP_PURCHASE, "exit", quote, here, last, began, record, concession=concession)

    def _max_fare(self, operator: str, station: Station | None, why: str) -> Quote:
        fen = self.fares.max_fare(operator, station)
        return Quote(fen, fen, f"{operator}.max-fare", f"maximum fare: {why}")


def _provenance(quote: Any) -> dict[str, Any]:
    """What the record keeps of where the quote's figures come from: source ids and confidence (the
    tap's answer names the documents). A quote without them (the terminal's own maximum fare, or the
    entry's zero) is illustrative: it rests on the networks' estimated distances."""
    cited = getattr(quote, "provenance", None)
    if cited is not None:
        return {"source": [s.id for s in cited.sources], "confidence": cited.confidence,
                "illustrative": cited.illustrative}
    return {"source": [], "confidence": "illustrative", "illustrative": True}


def _committed(log: list[TransactionLogRecord], p: dict[str, Any]) -> bool | None:
    """Did the card commit the pending purchase? True, False, or None (its log no longer tells)."""
    terminal_no = bytes.fromhex(p["terminal_no"])
    purchases = [r for r in log if r.txn_type in PURCHASE_TYPES]
    for r in purchases:
        if r.counter == p["counter"] and r.txn_type == p["txn_type"]:
            return (
                r.amount == p["amount_fen"]
                and r.terminal_no == terminal_no
                and r.at.strftime("%Y%m%d%H%M%S") == p["date_time"]
            )
    if len(log) >= profile.TU_LOG_RECORDS and (not purchases or min(r.counter for r in purchases) > p["counter"]):
        return None  # the card's log has turned over since: cannot tell
    return False


@functools.lru_cache(maxsize=128)
def _node_of_issuer(province: str) -> str | None:
    """bj / tj / he from the issuer id's province digits; None for an issuer outside Jing-Jin-Ji."""
    try:
        return node_of(province + "0000")
    except SbcardError:
        return None


def _text(record: Any) -> str:
    return bytes(record.value).decode("ascii", errors="replace").strip()


def _date(record: Any) -> dt.date | None:
    try:
        return parse_bcd_date(bytes(record.value))
    except ValueError:
        return None


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g} h"
