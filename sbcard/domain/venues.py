"""Venues (一卡通游 · 览): museums, scenic spots and libraries, and who enters at what price.

A venue's rules are data: ``fixtures/venues/venues.csv`` (the venue: hours, full price,
season, limits) and ``fixtures/venues/prices.csv`` (its published price rules, one
``PriceRule`` each), read by ``sbcard.reference.venues``. ``decide`` is the gate's one
rule: is the venue open now, has the card used up the day's entries, and what does this
holder pay — the full price of the season, or the cheapest of the venue's rules that
applies to them. Pure: the gate gives the time, the holder's birth date from the card,
the statuses staff saw (``student``, ``elderly_card``) and how often the card entered today.

Ages are counted on the day, in full years (周岁): a holder is 60 from their 60th
birthday on (a 29 February birthday counts from 1 March in other years), so a senior
band starts on the birthday itself and not the day before. A rule's band
``age_from``–``age_to`` includes both ends, in full years: "6周岁(含)以下" is ``age_to`` 6
(free up to the day before the 7th birthday), "6周岁(不含)至18周岁(含)" is 7–18.

Every figure carries its ``Provenance`` (``sbcard.domain.sources``): the venue's price
and season, its other rules (hours, limits, loans) and each price rule; an ``Entry``
carries the provenance of the price it charged (the venue's price and the rule applied).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import attrs

from sbcard.domain.errors import InvalidInput
from sbcard.domain.money import format_fen
from sbcard.domain.regions import Node, node_of
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance, combine

KINDS = ("museum", "scenic", "library")
RESULTS = ("ok", "refused")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Refusal codes (``Entry.code``), stable: scripts and the visits table use them.
CLOSED_DAY = "closed_day"
CLOSED_HOUR = "closed_hour"
DAILY_LIMIT = "daily_limit"

# What the holder shows the staff (or, later, what the card says): the statuses a rule may need.
STUDENT = "student"  # a student card seen by staff (`venue enter --student`)
ELDERLY_CARD = "elderly_card"  # Beijing's 北京通—养老助残卡 (60+, 户籍 or 居住证): `--elderly-card`
STATUSES = (STUDENT, ELDERLY_CARD)
# A price rule's category (what kind of concession it is; the status or the age band decides who gets it).
CATEGORIES = ("child", "minor", "youth", "student", "senior", "elderly_card", "cardholder")
FULL = "full"
FREE_ADMISSION = "free-admission"
_RULE_ID = re.compile(r"^[a-z][a-z0-9-]*$")


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


def _optional_age_or_zero(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or not 0 <= value < 130):
        raise ValueError(f"{attribute.name} {value!r} is not an age")


def _non_negative(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} {value!r} is negative")


def _positive(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} {value!r} must be positive")


def _optional_date(_instance: object, attribute: attrs.Attribute, value: dt.date | None) -> None:
    if value is not None and not isinstance(value, dt.date):
        raise ValueError(f"{attribute.name} {value!r} is not a date")


@attrs.frozen
class PriceRule:
    """One of a venue's published price rules (a row of prices.csv): who pays what instead of the full price.

    It applies to a holder whose age in full years on the day is within ``age_from``–``age_to``
    (both included; a blank end is open), who has ``status`` (staff saw it), on a day within
    ``starts``–``ends`` (both included; blank: always). The price is ``price_fen`` (a flat
    amount, e.g. a ¥20 student ticket; 0 = free) or ``percent`` of the day's full price (50 = half).
    """

    rule: str  # its id within the venue: the entry's rule is "<venue>.<rule>"
    category: str = attrs.field(validator=attrs.validators.in_(CATEGORIES))
    age_from: int | None = attrs.field(default=None, validator=_optional_age_or_zero)
    age_to: int | None = attrs.field(default=None, validator=_optional_age_or_zero)
    status: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.in_(STATUSES)))
    price_fen: int | None = attrs.field(default=None, validator=_non_negative)
    percent: int | None = None
    starts: dt.date | None = attrs.field(default=None, validator=_optional_date)
    ends: dt.date | None = attrs.field(default=None, validator=_optional_date)
    provenance: Provenance = ILLUSTRATIVE_ONLY
    note: str = ""  # the venue's own wording of the band, the 含 edges

    def __attrs_post_init__(self) -> None:
        if not _RULE_ID.match(self.rule or "") or self.rule in (FULL, FREE_ADMISSION):
            raise ValueError(f"rule {self.rule!r}: lower-case letters, digits and '-' (not 'full', 'free-admission')")
        if (self.price_fen is None) == (self.percent is None):
            raise ValueError(f"rule {self.rule}: give a flat price_fen or a percent of the full price, one of them")
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise ValueError(f"rule {self.rule}: percent {self.percent!r} is not 0…100")
        if self.age_from is not None and self.age_to is not None and self.age_from > self.age_to:
            raise ValueError(f"rule {self.rule}: ages {self.age_from}–{self.age_to} run backwards")
        if self.starts is not None and self.ends is not None and self.starts > self.ends:
            raise ValueError(f"rule {self.rule}: it ends ({self.ends}) before it starts ({self.starts})")
        if self.category == "cardholder" and (self.status or self.age_from is not None or self.age_to is not None):
            raise ValueError(f"rule {self.rule}: a cardholder rule is for every cardholder (no age, no status)")

    @property
    def by_age(self) -> bool:
        return self.age_from is not None or self.age_to is not None

    def in_force(self, day: dt.date) -> bool:
        return (self.starts is None or self.starts <= day) and (self.ends is None or day <= self.ends)

    def applies(self, *, age: int | None, statuses: frozenset[str], day: dt.date) -> bool:
        """Whether a holder of ``age`` (None: no birth date on the card) with ``statuses`` gets it on ``day``."""
        if not self.in_force(day):
            return False
        if self.status is not None and self.status not in statuses:
            return False
        if self.by_age:
            if age is None:
                return False
            if self.age_from is not None and age < self.age_from:
                return False
            if self.age_to is not None and age > self.age_to:
                return False
        return True

    def price(self, full_fen: int) -> int:
        """What the rule charges when the full price is ``full_fen``."""
        return self.price_fen if self.price_fen is not None else percent_of(full_fen, self.percent or 0)

    def who(self) -> str:
        """``"aged 60–64"``, ``"student"``, ``"Beijing elderly card, aged 60 or more"``, ``"cardholders"``."""
        parts = []
        if self.status == STUDENT:
            parts.append("student")
        elif self.status == ELDERLY_CARD:
            parts.append("Beijing elderly card (北京通—养老助残卡)")
        if self.age_from is not None and self.age_to is not None:
            parts.append(f"aged {self.age_from}–{self.age_to}")
        elif self.age_from is not None:
            parts.append(f"aged {self.age_from} or more")
        elif self.age_to is not None:
            parts.append(f"aged {self.age_to} or under")
        if not parts:
            parts.append("cardholders")
        return ", ".join(parts)

    def what(self) -> str:
        """``"free"``, ``"¥20.00"``, ``"half price"``, ``"20% off"`` (a percent paid of 80)."""
        if self.price_fen is not None:
            return "free" if self.price_fen == 0 else format_fen(self.price_fen)
        if self.percent == 0:
            return "free"
        return "half price" if self.percent == 50 else f"{100 - (self.percent or 0)}% off"

    def describe(self) -> str:
        dates = ""
        if self.starts is not None and self.ends is not None:
            dates = f" ({self.starts.isoformat()} to {self.ends.isoformat()})"
        elif self.starts is not None:
            dates = f" (from {self.starts.isoformat()})"
        elif self.ends is not None:
            dates = f" (until {self.ends.isoformat()})"
        return f"{self.who()}: {self.what()}{dates}"


def _rules(value: Iterable[PriceRule]) -> tuple[PriceRule, ...]:
    return tuple(value)


@attrs.frozen
class Venue:
    """One museum, scenic spot or library and its entry rules (a row of venues.csv, its rows of prices.csv)."""

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
    rules: tuple[PriceRule, ...] = attrs.field(default=(), converter=_rules)  # in the order that wins a tie
    daily_limit: int | None = attrs.field(default=None, validator=_positive)  # entries per card per day
    loan_limit: int | None = attrs.field(default=None, validator=_positive)  # libraries: loans at once
    loan_days: int | None = attrs.field(default=None, validator=_positive)
    fine_fen_per_day: int | None = attrs.field(default=None, validator=_non_negative)  # per item
    fine_cap_fen: int | None = attrs.field(default=None, validator=_non_negative)  # per item
    price_provenance: Provenance = ILLUSTRATIVE_ONLY  # the full price and the season
    rules_provenance: Provenance = ILLUSTRATIVE_ONLY  # days and hours, the daily limit, loans and fines

    def __attrs_post_init__(self) -> None:
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
        ids = [r.rule for r in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"{self.code}: price rule {', '.join(twice)} is listed twice")

    @property
    def node(self) -> Node:
        return node_of(self.region)

    @property
    def is_library(self) -> bool:
        return self.kind == "library"

    @property
    def provenance(self) -> Provenance:
        """Every figure of the venue together: its sources, its weakest confidence."""
        return combine([self.price_provenance, self.rules_provenance, *(r.provenance for r in self.rules)])

    @property
    def illustrative(self) -> bool:
        """Whether any of its figures is the project's own."""
        return self.provenance.illustrative

    def rule(self, rule_id: str) -> PriceRule | None:
        """The price rule ``rule_id`` (or ``"<venue>.<rule_id>"``), None if the venue has none such."""
        key = rule_id.rsplit(".", 1)[-1] if rule_id else ""
        return next((r for r in self.rules if r.rule == key), None)

    def price_on(self, day: dt.date) -> int:
        """The full price on ``day``: the season's (peak or off-peak)."""
        if self.peak_months and day.month not in self.peak_months:
            return self.off_peak_price_fen if self.off_peak_price_fen is not None else self.price_fen
        return self.price_fen

    def hours_text(self) -> str:
        return f"{days_text(self.open_days)} {self.open_from:%H:%M}–{self.open_to:%H:%M}"


@attrs.frozen
class Entry:
    """The gate's decision: ``ok`` at ``price_fen`` under ``rule``, or ``refused`` with ``code`` and ``reason``.

    ``provenance`` is where the answer comes from: the venue's price with the rule applied
    (an admission), or the venue's hours and limits (a refusal); ``rule_provenance`` the
    applied price rule's alone (None at the full price or for a refusal).
    """

    result: str = attrs.field(validator=attrs.validators.in_(RESULTS))
    price_fen: int
    full_price_fen: int
    rule: str  # a stable identifier: <venue>.full | .free-admission | .<a price rule's id> | .closed-day | ...
    description: str = ""
    reason: str | None = None  # a refusal's reason
    code: str | None = None  # a refusal's code: closed_day | closed_hour | daily_limit
    age: int | None = None
    category: str | None = None  # the applied price rule's category
    statuses: frozenset[str] = frozenset()
    provenance: Provenance = ILLUSTRATIVE_ONLY
    rule_provenance: Provenance | None = None

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


def statuses_of(values: Iterable[str]) -> frozenset[str]:
    """The holder's statuses, checked: each one of ``STATUSES``."""
    found = frozenset(values)
    unknown = sorted(found - set(STATUSES))
    if unknown:
        raise InvalidInput("venue.status", f"{', '.join(unknown)}: not a status a venue knows "
                                           f"({', '.join(STATUSES)})", "statuses")
    return found


def decide(
    venue: Venue,
    *,
    birth_date: dt.date | None,
    at: dt.datetime,
    statuses: Iterable[str] = frozenset(),
    entries_today: int = 0,
) -> Entry:
    """May the holder enter ``venue`` at ``at`` (local time), and at what price?

    Refused on a closed day, outside the hours (from ``open_from`` up to the last admission
    ``open_to``), or when the card has entered ``daily_limit`` times today already.
    Otherwise the cheapest of the full price of the season and the venue's price rules that
    apply to the holder on the day (their age in full years from ``birth_date``, the
    ``statuses`` staff saw: ``student``, ``elderly_card``). Equal prices go to the rule
    listed first (prices.csv's order); the full price only wins when no rule is cheaper.
    """
    day = at.date()
    held = statuses_of(statuses)
    age = age_on(birth_date, day) if birth_date is not None else None
    full = venue.price_on(day)

    def refused(code: str, reason: str) -> Entry:
        return Entry("refused", 0, full, f"{venue.code}.{code.replace('_', '-')}", reason=reason, code=code, age=age,
                     statuses=held, provenance=venue.rules_provenance)

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
        return Entry("ok", 0, 0, f"{venue.code}.{FREE_ADMISSION}", "free admission", age=age, statuses=held,
                     provenance=venue.price_provenance)

    best: PriceRule | None = None
    price = full
    for rule in venue.rules:
        if rule.applies(age=age, statuses=held, day=day) and rule.price(full) < price:
            best, price = rule, rule.price(full)
    if best is None:
        return Entry("ok", full, full, f"{venue.code}.{FULL}", "full price", age=age, statuses=held,
                     provenance=venue.price_provenance)
    return Entry("ok", price, full, f"{venue.code}.{best.rule}", best.describe(), age=age, category=best.category,
                 statuses=held, provenance=combine([venue.price_provenance, best.provenance]),
                 rule_provenance=best.provenance)
