"""Subsidy batch payouts (惠民惠农“一卡通”): the catalogue, periods, control totals and row checks.

Pure rules, no I/O. A department's file (or a generated list, 免申即享) is a batch of
rows, each paying one person one item for one period. The file as a whole must be
well formed and match its declared control totals (count and total, to the fen), or it
is rejected before anything is stored (``FileRejected``, naming the line and column).
Each well-formed row is then checked against what the region's registry, cards and
ledger say about its person (``Facts``): ``check_row`` returns its ``Verdict`` — valid
(to be paid, with a note when the operator should know something, e.g. the payment
goes to the card that replaced the one in the file) or invalid with one reason code
from ``Reason`` and words saying exactly what is wrong.

The first reason found wins, in this order: the row's own data (ID, item, period), its
place in the batch and in history (duplicate, already paid), its amount, the person
(region, name), then the card and its account.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date
from enum import StrEnum

import attrs

from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput
from sbcard.domain.money import format_fen
from sbcard.domain.regions import is_within
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance

# The columns of a batch file, in the documented order. `card_number` and `remark` may
# be left out of the header or left empty; `reason_code` and `reason` (what `subsidy
# failures` writes) are accepted and ignored, so a corrected failures file is a batch file.
COLUMNS: tuple[str, ...] = ("seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark")
REQUIRED: tuple[str, ...] = ("seq", "citizen_id", "name", "item", "period", "amount")
IGNORED: tuple[str, ...] = ("reason_code", "reason")
TRAILER_TAG = "#TOTAL"
TRAILER_FIELDS: tuple[str, ...] = ("#TOTAL", "count", "total", "region")
MAX_SEQ = 10**12  # a row number, not an amount: 12 digits is more than any file holds
EARLIEST_PERIOD_YEAR = 2000


class PeriodType(StrEnum):
    MONTHLY = "monthly"
    YEARLY = "yearly"
    ONE_OFF = "one_off"  # paid once for an event; its period is the month granted (YYYYMM)


class Reason(StrEnum):
    """Why a row is not paid. Stable codes: files, JSON and scripts use them."""

    INVALID_ID = "invalid_id"
    UNKNOWN_ITEM = "unknown_item"
    BAD_PERIOD = "bad_period"
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    ALREADY_PAID = "already_paid"
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    AMOUNT_OVER_CAP = "amount_over_cap"
    NOT_REGISTERED = "not_registered"
    OTHER_REGION = "other_region"
    NAME_MISMATCH = "name_mismatch"
    CARD_MISMATCH = "card_mismatch"
    NO_CARD = "no_card"
    CARD_NOT_ACTIVATED = "card_not_activated"
    CARD_LOST = "card_lost"
    CARD_CANCELLED = "card_cancelled"
    CARD_REPLACED = "card_replaced"
    ACCOUNT_FROZEN = "account_frozen"
    ACCOUNT_MAX_BALANCE = "account_max_balance"


# What each code means, in a few words (summaries, help, the README).
REASON_WORDS: dict[Reason, str] = {
    Reason.INVALID_ID: "citizen ID not valid",
    Reason.UNKNOWN_ITEM: "no such subsidy item in the catalogue",
    Reason.BAD_PERIOD: "period not YYYYMM / YYYY as the item needs, or not begun",
    Reason.DUPLICATE_IN_BATCH: "same person, item and period earlier in the batch",
    Reason.ALREADY_PAID: "same person, item and period already paid in an earlier batch",
    Reason.AMOUNT_NOT_POSITIVE: "amount zero or negative",
    Reason.AMOUNT_OVER_CAP: "amount over the item's cap per person and period",
    Reason.NOT_REGISTERED: "person in no registry of Beijing, Tianjin or Hebei",
    Reason.OTHER_REGION: "person of another region",
    Reason.NAME_MISMATCH: "name does not match the registry",
    Reason.CARD_MISMATCH: "card number not valid, or not this person's",
    Reason.NO_CARD: "person holds no social security card",
    Reason.CARD_NOT_ACTIVATED: "card not activated: no financial account to pay into",
    Reason.CARD_LOST: "card reported lost: its account is frozen",
    Reason.CARD_CANCELLED: "card cancelled, and no other card of the person can be paid",
    Reason.CARD_REPLACED: "card replaced, and the current card cannot be paid",
    Reason.ACCOUNT_FROZEN: "financial account frozen",
    Reason.ACCOUNT_MAX_BALANCE: "the payment would take the financial account past its maximum",
}

VALID, INVALID = "valid", "invalid"


# ----------------------------------------------------------------------------- errors


class FileRejected(InvalidInput):
    """The whole file is refused (exit 2); nothing of it is stored. Names the line and column."""

    def __init__(self, code: str, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None) -> None:
        where = " ".join(part for part in (file, f"line {line}" if line is not None else None) if part)
        if column:
            where = f"{where}, column {column}" if where else f"column {column}"
        super().__init__(f"subsidy_file.{code}", message, where or None)
        self.line = line
        self.column = column


# ----------------------------------------------------------------------------- the catalogue


def _positive(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput("subsidy.cap", f"{attribute.name} must be a positive int of fen, got {value!r}", "cap")


def _non_empty(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("subsidy.item", f"an item needs a {attribute.name}", attribute.name)


@attrs.frozen
class Item:
    """One subsidy of the catalogue: what it is called, who pays it, how often, and at most how much.

    ``cap_source`` says where the cap comes from (the fixture's ``source`` and ``confidence``);
    an item read back from a region's database knows only ``illustrative`` and has none.
    """

    code: str = attrs.field(validator=_non_empty)
    name: str = attrs.field(validator=_non_empty)
    department: str = attrs.field(validator=_non_empty)
    period_type: PeriodType = attrs.field(converter=PeriodType)
    cap_fen: int = attrs.field(validator=_positive)
    fund_account: str = attrs.field(validator=_non_empty)
    illustrative: bool = False
    cap_source: Provenance | None = None

    def __attrs_post_init__(self) -> None:
        if self.cap_source is not None and self.cap_source.illustrative != self.illustrative:
            raise InvalidInput("subsidy.item", f"item {self.code}: illustrative must follow the cap's confidence "
                               f"({self.cap_source.confidence})", "illustrative")

    @property
    def cap_provenance(self) -> Provenance:
        """The cap's provenance; an item without one is illustrative (nothing says where its cap comes from)."""
        return self.cap_source if self.cap_source is not None else ILLUSTRATIVE_ONLY

    @classmethod
    def from_row(cls, row: dict) -> Item:
        """From a ``subsidy_items`` row."""
        return cls(row["code"], row["name"], row["department"], row["period_type"], row["cap_fen"],
                   row["fund_account"], bool(row["illustrative"]))


class Catalogue:
    """The items, found by code or by their exact name (a department may write either)."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._by_code: dict[str, Item] = {}
        self._by_name: dict[str, Item] = {}
        for item in items:
            if item.code in self._by_code or item.name in self._by_name:
                raise InvalidInput("subsidy.item", f"item {item.code} {item.name} is listed twice", "code")
            self._by_code[item.code] = item
            self._by_name[item.name] = item

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self):
        return iter(self._by_code.values())

    def find(self, code_or_name: str) -> Item | None:
        text = (code_or_name or "").strip()
        return self._by_code.get(text) or self._by_code.get(text.upper()) or self._by_name.get(text)


# ----------------------------------------------------------------------------- periods


_MONTH = re.compile(r"([0-9]{4})([0-9]{2})")
_YEAR = re.compile(r"[0-9]{4}")


def period_form(period_type: PeriodType) -> str:
    return "YYYY" if PeriodType(period_type) is PeriodType.YEARLY else "YYYYMM"


def parse_period(text: str, period_type: PeriodType, today: date) -> str:
    """The period a row pays, checked: ``YYYYMM`` for monthly and one-off items, ``YYYY`` for yearly ones.

    A period that has not begun on ``today`` is refused (subsidies are paid for a month
    or year under way or past), as is one before 2000 (a typo, not back pay).
    """
    return _parse_period((text or "").strip(), PeriodType(period_type), today)


@functools.lru_cache(maxsize=4096)  # a batch repeats a handful of periods a million times
def _parse_period(text: str, kind: PeriodType, today: date) -> str:
    form = period_form(kind)
    if kind is PeriodType.YEARLY:
        if not _YEAR.fullmatch(text):
            raise _bad_period(f"{text!r} is not a year YYYY (a {kind.value} item)")
        year, month = int(text), 1
    else:
        match = _MONTH.fullmatch(text)
        if match is None:
            hint = " (a yearly period? this item is paid by month)" if _YEAR.fullmatch(text) else ""
            raise _bad_period(f"{text!r} is not a month YYYYMM{hint}")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise _bad_period(f"{text!r}: month {month:02d} does not exist")
    if year < EARLIEST_PERIOD_YEAR:
        raise _bad_period(f"{text!r} is before {EARLIEST_PERIOD_YEAR}")
    begun = year <= today.year if kind is PeriodType.YEARLY else (year, month) <= (today.year, today.month)
    if not begun:
        raise _bad_period(f"{text!r} has not begun on {today.isoformat()}")
    return text


def period_of(day: date, period_type: PeriodType) -> str:
    """The period ``day`` falls in: ``YYYYMM``, or ``YYYY`` for a yearly item."""
    if PeriodType(period_type) is PeriodType.YEARLY:
        return f"{day.year:04d}"
    return f"{day.year:04d}{day.month:02d}"


def _bad_period(message: str) -> InvalidInput:
    return InvalidInput("subsidy.bad_period", message, "period")


# ----------------------------------------------------------------------------- control totals


@attrs.frozen
class ControlTotals:
    """What a batch declares about itself (or what its rows add up to): rows and total in fen."""

    count: int
    total_fen: int


def totals_differences(declared: ControlTotals, actual: ControlTotals) -> list[tuple[str, str]]:
    """(``count`` | ``total``, words) for each declared figure the rows do not match; empty when both match."""
    found: list[tuple[str, str]] = []
    if declared.count != actual.count:
        found.append(("count", f"declares {declared.count:,} rows, the file has {actual.count:,}"))
    if declared.total_fen != actual.total_fen:
        gap = actual.total_fen - declared.total_fen
        more = "more" if gap > 0 else "less"
        found.append(("total", f"declares {format_fen(declared.total_fen)}, the rows add up to "
                               f"{format_fen(actual.total_fen)} ({format_fen(abs(gap))} {more})"))
    return found


def parse_seq(text: str) -> int:
    """A row's sequence number: 1, 2, 3… (digits only)."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("subsidy_file.seq", "no sequence number", "seq")
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput("subsidy_file.seq", f"{text!r} is not a sequence number (digits, like 1)", "seq")
    value = int(text)
    if not 1 <= value < MAX_SEQ:
        raise InvalidInput("subsidy_file.seq", f"sequence number {text} is outside 1 to {MAX_SEQ - 1}", "seq")
    return value


# ----------------------------------------------------------------------------- generation (免申即享)


@attrs.frozen
class AgeBand:
    """Persons aged ``min_age`` to ``max_age`` (inclusive; None: no upper bound) receive ``amount_fen``.

    ``provenance`` says where the amount comes from; a band that names none is illustrative.
    """

    item: str
    province: str | None  # 110000, 120000, 130000; None for every province
    min_age: int
    max_age: int | None
    amount_fen: int = attrs.field(validator=_positive)
    provenance: Provenance = ILLUSTRATIVE_ONLY

    @property
    def illustrative(self) -> bool:
        return self.provenance.illustrative

    def covers(self, age: int) -> bool:
        return age >= self.min_age and (self.max_age is None or age <= self.max_age)

    def to_json(self) -> dict:
        """The band for ``--json``: ages, amount, and where the amount comes from."""
        return {"min_age": self.min_age, "max_age": self.max_age, "amount_fen": self.amount_fen,
                **self.provenance.to_json()}


def check_bands(bands: Sequence[AgeBand]) -> None:
    """Bands of one item and province must not overlap (each person gets one amount)."""
    by_key: dict[tuple[str, str | None], list[AgeBand]] = {}
    for band in bands:
        if band.max_age is not None and band.max_age < band.min_age:
            raise InvalidInput("subsidy.rules", f"{band.item}: band {band.min_age}-{band.max_age} is empty", "max_age")
        by_key.setdefault((band.item, band.province), []).append(band)
    for (item, province), group in by_key.items():
        group = sorted(group, key=lambda b: b.min_age)
        for before, after in zip(group, group[1:]):
            if before.max_age is None or before.max_age >= after.min_age:
                raise InvalidInput("subsidy.rules", f"{item} in {province or 'every province'}: age bands "
                                   f"from {before.min_age} and from {after.min_age} overlap", "min_age")


def bands_for(bands: Iterable[AgeBand], item: str, province: str) -> list[AgeBand]:
    """The item's bands in ``province``: its own ones if it has any, else those for every province."""
    mine = [b for b in bands if b.item == item]
    own = [b for b in mine if b.province == province]
    return sorted(own or [b for b in mine if b.province is None], key=lambda b: b.min_age)


def amount_for_age(bands: Sequence[AgeBand], age: int) -> int | None:
    """The amount a person of ``age`` receives, or None when no band covers the age."""
    band = band_for_age(bands, age)
    return band.amount_fen if band is not None else None


def band_for_age(bands: Sequence[AgeBand], age: int) -> AgeBand | None:
    """The band that covers ``age`` (bands never overlap), or None."""
    for band in bands:
        if band.covers(age):
            return band
    return None


# ----------------------------------------------------------------------------- rows and their checks


@attrs.frozen
class SubsidyRow:
    """One well-formed row of a batch, as written (text stripped). Its sequence and amount already parse."""

    line: int
    seq: int
    citizen_id: str
    name: str
    card_number: str
    item: str
    period: str
    amount_fen: int
    remark: str = ""
    number_cells: frozenset[str] = frozenset()  # columns a spreadsheet held as numbers or dates

    @property
    def person_key(self) -> str:
        """The ID as looked up: spaces out, upper case (the check comes in ``check_row``)."""
        return normalise_citizen_id(self.citizen_id)


def normalise_citizen_id(text: str) -> str:
    return "".join((text or "").split()).upper()


_DOTS = str.maketrans({"•": "·", "・": "·", "．": "·", ".": "·", "‧": "·", "∙": "·"})


def normalise_name(text: str) -> str:
    """Names compare after NFKC (full-width letters), without spaces, with one kind of middle dot."""
    return "".join(unicodedata.normalize("NFKC", text or "").split()).translate(_DOTS)


@attrs.frozen
class CardFact:
    """A card as the region's records show it now: effective status and its open account's status."""

    card_number: str
    holder: str  # citizen ID
    status: str  # issued | active | lost | replaced | cancelled (a lapsed temporary loss is active)
    account: str | None = None  # status of the open account reached through the card: active | frozen | None
    lost_lapsed: bool = False  # a temporary loss that lapsed although the records still say lost


@attrs.frozen
class Facts:
    """What the region knows about a row's person and card, gathered by the service."""

    today: date
    batch_region: str
    item: Item | None = None
    registered: bool = False  # in this region's registry, found by the row's ID (so the ID is a valid one)
    person_region: str | None = None  # the district the person lives in
    registered_in: str | None = None  # another region's name, when registered there instead (ID valid too)
    registry_name: str | None = None
    named_card: CardFact | None = None  # the card the row names, when it exists in this region
    current_card: CardFact | None = None  # the person's valid card, else their latest one
    first_line: int | None = None  # the earlier line of the batch with the same person, item and period
    paid_in: str | None = None  # the batch that already paid the same person, item and period


@attrs.frozen
class Verdict:
    status: str  # valid | invalid
    reason_code: Reason | None = None
    reason: str | None = None
    note: str | None = None  # said even of a valid row
    citizen_id: str | None = None  # normalised when valid
    item: str | None = None  # the item's code when known, else as written
    period: str | None = None
    pay_card: str | None = None  # the card whose account is paid

    @property
    def valid(self) -> bool:
        return self.status == VALID


def _refuse(code: Reason, reason: str, **known: str | None) -> Verdict:
    return Verdict(INVALID, code, reason, **known)


def check_row(row: SubsidyRow, facts: Facts) -> Verdict:
    """The row's verdict: valid with the card to pay, or the first reason it cannot be paid."""
    item_code = facts.item.code if facts.item else (row.item or None)
    if facts.registered or facts.registered_in:
        citizen_id = row.person_key  # a registry holds it: it passed every check when it was registered
    else:
        try:
            cid = CitizenId.parse(row.citizen_id)
            cid.check_not_future(facts.today)
        except InvalidInput as e:
            hint = ""
            if "citizen_id" in row.number_cells:
                hint = " (the spreadsheet holds it as a number, which loses digits: format the column as text)"
            return _refuse(Reason.INVALID_ID, f"{e.message}{hint}", item=item_code)
        citizen_id = cid.value
    known: dict[str, str | None] = {"citizen_id": citizen_id, "item": item_code}
    if facts.item is None:
        words = f"{row.item!r} is not a subsidy item (see `sbcard subsidy items`)" if row.item else "no item given"
        return _refuse(Reason.UNKNOWN_ITEM, words, **known)
    item = facts.item
    try:
        period = parse_period(row.period, item.period_type, facts.today)
    except InvalidInput as e:
        hint = " (the spreadsheet holds a number or date: format the column as text)" \
            if "period" in row.number_cells and not row.period.isdigit() else ""
        return _refuse(Reason.BAD_PERIOD, f"{item.name} {e.message}{hint}", **known)
    known["period"] = period
    if facts.first_line is not None:
        return _refuse(Reason.DUPLICATE_IN_BATCH,
                       f"{item.name} {period} for this person is already on line {facts.first_line}", **known)
    if facts.paid_in is not None:
        return _refuse(Reason.ALREADY_PAID, f"{item.name} {period} was already paid to this person "
                                            f"in batch {facts.paid_in}", **known)
    if row.amount_fen <= 0:
        return _refuse(Reason.AMOUNT_NOT_POSITIVE, f"amount {format_fen(row.amount_fen)} is not positive", **known)
    if row.amount_fen > item.cap_fen:
        return _refuse(Reason.AMOUNT_OVER_CAP, f"amount {format_fen(row.amount_fen)} is over {item.name}'s cap of "
                                               f"{format_fen(item.cap_fen)} per person and period", **known)
    if not facts.registered:
        if facts.registered_in:
            return _refuse(Reason.OTHER_REGION, f"the person is registered in {facts.registered_in}'s card service, "
                                                f"not in this region's", **known)
        return _refuse(Reason.NOT_REGISTERED, "the person is in no registry of Beijing, Tianjin or Hebei", **known)
    if facts.person_region is None or not is_within(facts.person_region, facts.batch_region):
        return _refuse(Reason.OTHER_REGION, f"the person lives in region {facts.person_region}, "
                                            f"not in {facts.batch_region}", **known)
    if facts.registry_name is None or (row.name != facts.registry_name
                                       and normalise_name(row.name) != normalise_name(facts.registry_name)):
        return _refuse(Reason.NAME_MISMATCH, "the name differs from the registry's" if row.name
                       else "no name given", **known)
    return _card_verdict(row, facts, known)


def _card_verdict(row: SubsidyRow, facts: Facts, known: dict[str, str | None]) -> Verdict:
    """The card the row names (or the person's current one) and whether its account can take the payment.

    A card named in the file that was replaced or cancelled since the department made its
    list is not a reason to send the money back: the person's current card is paid when it
    can be, and the row says so. When it cannot, the row is refused with the named card's
    code and the current card's trouble in its words.
    """
    current = facts.current_card
    if not row.card_number.strip():
        if current is None:
            return _refuse(Reason.NO_CARD, "the person holds no social security card of this region", **known)
        return _pay_verdict(current, known)
    named = facts.named_card
    written = "".join(row.card_number.split()).upper()
    if named is None:
        return _refuse(Reason.CARD_MISMATCH, f"card {written} is not a card of this region", **known)
    if named.holder != known["citizen_id"]:
        return _refuse(Reason.CARD_MISMATCH, f"card {named.card_number} is not this person's", **known)
    if named.status not in ("replaced", "cancelled"):
        return _pay_verdict(named, known)
    code = Reason.CARD_REPLACED if named.status == "replaced" else Reason.CARD_CANCELLED
    was = f"card {named.card_number} was {named.status}"
    if current is None or current.card_number == named.card_number:
        return _refuse(code, f"{was}, and the person holds no other card now", **known)
    paid = _pay_verdict(current, known)
    if not paid.valid:
        return _refuse(code, f"{was}; the current card cannot be paid either: {paid.reason}", **known)
    return attrs.evolve(paid, note=f"{was}: paid to the current card {current.card_number}")


def card_verdict(card: CardFact, citizen_id: str) -> tuple[Reason | None, str | None]:
    """Whether a payment into ``card``'s account can be made now: (None, None), or the reason and words.

    For pay time as well as import time: a card lost or an account frozen since.
    """
    verdict = _pay_verdict(card, {"citizen_id": citizen_id})
    return verdict.reason_code, verdict.reason


def _pay_verdict(card: CardFact, known: dict[str, str | None]) -> Verdict:
    number = card.card_number
    if card.status == "cancelled":
        return _refuse(Reason.CARD_CANCELLED, f"card {number} is cancelled", **known)
    if card.status == "replaced":
        return _refuse(Reason.CARD_REPLACED, f"card {number} was replaced", **known)
    if card.status == "lost":
        return _refuse(Reason.CARD_LOST, f"card {number} is reported lost: its account is frozen until the card "
                                         "is unblocked or replaced", **known)
    if card.status == "issued":
        return _refuse(Reason.CARD_NOT_ACTIVATED, f"card {number} is not activated yet: its financial account "
                                                  "opens when the holder activates it", **known)
    if card.account is None:
        return _refuse(Reason.CARD_NOT_ACTIVATED, f"card {number} has no open financial account", **known)
    if card.account != "active":
        hint = " (its temporary loss has lapsed: run `sbcard card lapse-losses`)" if card.lost_lapsed else ""
        return _refuse(Reason.ACCOUNT_FROZEN, f"the financial account of card {number} is {card.account}{hint}",
                       **known)
    return Verdict(VALID, pay_card=number, **known)


def describe(reason_code: str) -> str:
    """The few words for a reason code (codes written by other versions are shown as they are)."""
    try:
        return REASON_WORDS[Reason(reason_code)]
    except ValueError:
        return reason_code
