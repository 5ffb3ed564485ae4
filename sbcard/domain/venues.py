"""Venues (一卡通游 · 览): museums, scenic spots and libraries, and who enters at what price.

A venue's rules are data (``fixtures/venues/venues.csv``, read by
``sbcard.venue_reference``); ``decide`` is the gate's one rule: is the venue open now,
has the card used up the day's entries, and what does this holder pay — the full price,
or the cheapest discount they qualify for. Pure: the gate gives the time, the holder's
birth date from the card and how often the card entered today.

Ages are counted on the day, in full years: a holder is 60 from their 60th birthday on
(a 29 February birthday counts from 1 March in other years), so a senior discount starts
on the birthday itself and not the day before.
"""

from __future__ import annotations

import datetime as dt

import attrs

from sbcard.domain.errors import InvalidInput
from sbcard.domain.regions import Node, node_of

KINDS = ("museum", "scenic", "library")
RESULTS = ("ok", "refused")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Refusal codes (``Entry.code``), stable: scripts and the visits table use them.
CLOSED_DAY = "closed_day"
CLOSED_HOUR = "closed_hour"
DAILY_LIMIT = "daily_limit"


def parse_days(text: str, field: str = "open_days") -> frozenset[int]:
    """ISO weekdays from ``"2-7"`` (Tuesday to Sunday), ``"1-7"``, ``"1,3-7"``, ``"6,7"``."""
    days: set[int] = set()
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise InvalidInput("venue.open_days", f"{text!r}: weekdays are 1 (Monday) … 7 (Sunday), e.g. 2-7",
                               field) from None
        if not 1 <= first <= last <= 7:
            raise InvalidInput("venue.open_days", f"{text!r}: weekdays are 1 (Monday) … 7 (Sunday), e.g. 2-7", field)
        days.update(range(first, last + 1))
    if not days:
        raise InvalidInput("venue.open_days", "a venue opens on at least one weekday", field)
    return frozenset(days)


def parse_months(text: str, field: str = "peak_months") -> frozenset[int]:
    """Months from ``"4-10"`` (April to October); empty text: no season (one price all year)."""
    months: set[int] = set()
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise InvalidInput("venue.peak_months", f"{text!r}: months are 1 … 12, e.g. 4-10", field) from None
        if not 1 <= first <= last <= 12:
            raise InvalidInput("venue.peak_months", f"{text!r}: months are 1 … 12, e.g. 4-10", field)
        months.update(range(first, last + 1))
    return frozenset(months)


def days_text(days: frozenset[int]) -> str:
    """``{2,…,7}`` → ``"Tue–Sun"``; non-contiguous days are listed."""
    ordered = sorted(days)
    if len(ordered) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{WEEKDAYS[ordered[0] - 1]}–{WEEKDAYS[ordered[-1] - 1]}"
    return ", ".join(WEEKDAYS[d - 1] for d in ordered)


def _optional_age(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and not 0 < value < 130:
        raise ValueError(f"{attribute.name} {value!r} is not an age")


def _non_negative(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} {value!r} is negative")


def _positive(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} {value!r} must be positive")


@attrs.frozen
class Venue:
    """One museum, scenic spot or library and its entry rules (a row of venues.csv)."""

    code: str  # e.g. BJ-MU-001: node, kind (MU museum, SC scenic, LB library), number
    name: str
    region: str  # the county-level (or prefecture) GB/T 2260 code where it is
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    open_days: frozenset[int] = frozenset(range(1, 8))  # ISO weekdays
    open_from: dt.time = dt.time(9, 0)
    open_to: dt.time = dt.time(17, 0)  # the last admission: the gate admits before this time
    price_fen: int = attrs.field(default=0, validator=_non_negative)  # the full price (in the peak season)
    peak_months: frozenset[int] = frozenset()  # months of ``price_fen``; the others pay ``off_peak_price_fen``
    off_peak_price_fen: int | None = attrs.field(default=None, validator=_non_negative)
    free_from_age: int | None = attrs.field(default=None, validator=_optional_age)
    half_from_age: int | None = attrs.field(default=None, validator=_optional_age)
    student_half: bool = False
    card_discount_pct: int = attrs.field(default=0)  # off the price for any cardholder (文惠卡-equal)
    daily_limit: int | None = attrs.field(default=None, validator=_positive)  # entries per card per day
    loan_limit: int | None = attrs.field(default=None, validator=_positive)  # libraries: loans at once
    loan_days: int | None = attrs.field(default=None, validator=_positive)
    fine_fen_per_day: int | None = attrs.field(default=None, validator=_non_negative)  # per item
    fine_cap_fen: int | None = attrs.field(default=None, validator=_non_negative)  # per item
    illustrative: bool = False
    source: str = ""

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.card_discount_pct <= 100:
            raise ValueError(f"card_discount_pct {self.card_discount_pct!r} is not 0…100")
        if self.open_from >= self.open_to:
            raise ValueError(f"{self.code}: opens at {self.open_from:%H:%M}, not before the last admission "
                             f"{self.open_to:%H:%M}")
        if self.peak_months and self.off_peak_price_fen is None:
            raise ValueError(f"{self.code}: a season (peak_months) needs an off-peak price")
        if self.kind != "library" and any(v is not None for v in (self.loan_limit, self.loan_days,
                                                                    self.fine_fen_per_day, self.fine_cap_fen)):
            raise ValueError(f"{self.code}: loan rules are for libraries")
        node = node_of(self.region)
        if not self.code.upper().startswith(node.upper() + "-"):
            raise ValueError(f"{self.code}: the code of a venue in region {self.region} starts with {node.upper()}-")

    @property
    def node(self) -> Node:
        return node_of(self.region)

    @property
    def is_library(self) -> bool:
        return self.kind == "library"

    def price_on(self, day: dt.date) -> int:
        """The full price on ``day``: the season's (peak or off-peak)."""
        if self.peak_months and day.month not in self.peak_months:
            return self.off_peak_price_fen if self.off_peak_price_fen is not None else self.price_fen
        return self.price_fen

    def hours_text(self) -> str:
        return f"{days_text(self.open_days)} {self.open_from:%H:%M}–{self.open_to:%H:%M}"


@attrs.frozen
class Entry:
    """The gate's decision: ``ok`` at ``price_fen`` under ``rule``, or ``refused`` with ``code`` and ``reason``."""

    result: str = attrs.field(validator=attrs.validators.in_(RESULTS))
    price_fen: int
    full_price_fen: int
    rule: str  # a stable identifier: <venue>.full | .free-admission | .senior-free | .senior-half | .student-half | .card-discount | .closed | .daily-limit
    description: str = ""
    reason: str | None = None  # a refusal's reason
    code: str | None = None  # a refusal's code: closed_day | closed_hour | daily_limit
    age: int | None = None

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def age_on(birth: dt.date, day: dt.date) -> int | None:
    """Full years on ``day`` (a 29 February birthday counts from 1 March); None if born after ``day``."""
    if day < birth:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def percent_of(full_fen: int, percent: int) -> int:
    """``percent`` of ``full_fen``, rounded half up to the fen (the fares' rounding: 50% of 250 → 125)."""
    return (full_fen * percent + 50) // 100


def decide(
    venue: Venue,
    *,
    birth_date: dt.date | None,
    at: dt.datetime,
    student: bool = False,
    entries_today: int = 0,
) -> Entry:
    """May the holder enter ``venue`` at ``at`` (local time), and at what price?

    Refused on a closed day, outside the hours (from ``open_from`` up to the last admission
    ``open_to``), or when the card has entered ``daily_limit`` times today already.
    Otherwise the cheapest of what applies: free from ``free_from_age``; half price from
    ``half_from_age`` or for a student (``student``: the staff saw the student card) where
    the venue gives it; the cardholders' discount; else the full price of the season.
    Equal prices go to the first of free, senior half, student half, card discount.
    """
    day = at.date()
    age = age_on(birth_date, day) if birth_date is not None else None
    full = venue.price_on(day)

    def refused(code: str, reason: str) -> Entry:
        return Entry("refused", 0, full, f"{venue.code}.{code.replace('_', '-')}", reason=reason, code=code, age=age)

    if at.isoweekday() not in venue.open_days:
        return refused(CLOSED_DAY, f"{venue.name} is closed on {WEEKDAYS[at.isoweekday() - 1]}days "
                                   f"(open {venue.hours_text()})")
    now = at.time().replace(tzinfo=None)
    if now < venue.open_from:
        return refused(CLOSED_HOUR, f"{venue.name} opens at {venue.open_from:%H:%M}")
    if now >= venue.open_to:
        return refused(CLOSED_HOUR, f"{venue.name} admits until {venue.open_to:%H:%M} (last admission)")
    if venue.daily_limit is not None and entries_today >= venue.daily_limit:
        times = "once" if venue.daily_limit == 1 else f"{venue.daily_limit} times"
        return refused(DAILY_LIMIT, f"this card has entered {venue.name} {times} today already "
                                    f"(limit: {times} per card per day)")
    if full == 0:
        return Entry("ok", 0, 0, f"{venue.code}.free-admission", "free admission", age=age)

    # (price, rule, description), in the order that wins a tie
    options: list[tuple[int, str, str]] = [(full, "full", "full price")]
    if venue.free_from_age is not None and age is not None and age >= venue.free_from_age:
        options.append((0, "senior-free", f"aged {venue.free_from_age} or more: free"))
    if venue.half_from_age is not None and age is not None and age >= venue.half_from_age:
        options.append((percent_of(full, 50), "senior-half", f"aged {venue.half_from_age} or more: half price"))
    if venue.student_half and student:
        options.append((percent_of(full, 50), "student-half", "student: half price"))
    if venue.card_discount_pct:
        options.append((percent_of(full, 100 - venue.card_discount_pct), "card-discount",
                        f"cardholders: {venue.card_discount_pct}% off"))
    order = {"senior-free": 0, "senior-half": 1, "student-half": 2, "card-discount": 3, "full": 4}
    price, rule, description = min(options, key=lambda o: (o[0], order[o[1]]))
    return Entry("ok", price, full, f"{venue.code}.{rule}", description, age=age)
