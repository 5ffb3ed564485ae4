"""Transit concessions on the card: who may have one, and how EF 0017 carries it.

The rules are data (``fixtures/transit/concessions.csv``, issue 16), read by
``sbcard.reference.transit.load_concession_policy`` into a ``ConcessionPolicy`` of frozen
``ConcessionRule`` values; this module holds the pure rules over them. Two elderly rules
and the student ticket:

- **Beijing elderly free bus** (北京通—养老助残卡, card kind ``bj_elderly_free_bus``, EF 0017
  type 03): aged 60 or more, with Beijing 户籍 or a Beijing 居住证 (the registry's
  ``residence`` of a person living in Beijing), free on Beijing's ground buses within
  Beijing (市域内). The project puts it on a Beijing-issued social security card's EF
  0017, granted at a Beijing outlet (no source says Beijing has moved the elderly card's
  functions onto the third-generation card: a modelling choice, documented in
  ``fixtures/transit/README.md``). It may be enabled from the 60th birthday, not ahead of
  it (``enable_ahead`` ``none``: no source for an earlier window). A holder of another
  region's card pays the card fare on a Beijing bus unless the policy's same-treatment
  switch (同城待遇) is on, which it is not by default.
- **Tianjin elderly free ride** (天津 65岁以上老年人免费乘坐公共汽车, from 2023-11-01, card kind
  ``elderly_free_ride``, type 02): a holder may have it enabled from one month before their
  65th birthday (以身份证日期为准: the birth date of the citizen ID); the free ride itself
  starts on the birthday (the fare rules check the age on the day of travel) and not
  before the rule's start date. The project's decision on who may have it on a social
  security card: **Tianjin-issued cards only** — holders of other cards who live in
  Tianjin use a 敬老卡, which this simulator does not issue.
- **Student ticket**: granted by the card's issuing region with an end date (at most one
  year ahead, renewed each school year as student status is checked), applies on the
  operators of the card's province; the fare rules say what a student pays.

One elderly card per person: enabling an elderly concession on a new card locks it on the
old one. A rule has a start date and may have an end date; the card's concession keeps its
own start and end on EF 0017, and a ride is free only when both are in force.

EF 0017 (64 bytes, docs/card-profile.md "The T-Union application"): version (1) = 01,
concession type (1: 00 none, 01 student, 02 Tianjin elderly free ride, 03 Beijing elderly
free bus), concession region (3 BCD), start (4 BCD YYYYMMDD), end (4 BCD; 00000000 = no
end), status (1: 01 enabled, 02 locked), 50 reserved zero bytes. A card without a
concession has 64 zero bytes (the state personalisation leaves it in). A locked record
keeps its type and dates: it tells a terminal the concession was moved to another card.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import attrs

from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance

EF0017_LEN = 64
EF0017_VERSION = 0x01
OFF_VERSION, OFF_TYPE, OFF_REGION, OFF_START, OFF_END, OFF_STATUS, LAYOUT_END = 0, 1, 2, 5, 9, 13, 14

NONE, STUDENT, ELDERLY_FREE_RIDE, BJ_ELDERLY_FREE_BUS = "none", "student", "elderly_free_ride", "bj_elderly_free_bus"
ELDERLY = "elderly"  # --kind elderly: the elderly concession of the card's region (which one: the policy says)
KINDS: tuple[str, ...] = (ELDERLY_FREE_RIDE, STUDENT, BJ_ELDERLY_FREE_BUS)
ELDERLY_KINDS: tuple[str, ...] = (ELDERLY_FREE_RIDE, BJ_ELDERLY_FREE_BUS)
TYPE_CODES = {NONE: 0x00, STUDENT: 0x01, ELDERLY_FREE_RIDE: 0x02, BJ_ELDERLY_FREE_BUS: 0x03}
ENABLED, LOCKED = "enabled", "locked"
STATUS_CODES = {ENABLED: 0x01, LOCKED: 0x02}
CLI_KINDS = {"elderly": ELDERLY, "student": STUDENT}  # --kind → what is asked (elderly: resolved by the policy)
FARE_CONCESSION = {ELDERLY_FREE_RIDE: "elderly", BJ_ELDERLY_FREE_BUS: "elderly", STUDENT: "student"}

TIANJIN, BEIJING = "120000", "110000"
KIND_REGIONS = {ELDERLY_FREE_RIDE: TIANJIN, BJ_ELDERLY_FREE_BUS: BEIJING}  # an elderly kind → where it applies
ELDERLY_AGE = 65  # Tianjin's (kept for elderly_free_ride_from); the policy's rows hold each rule's age

# Residence status in the registry (persons.residence, region migration 13), relative to the
# province the person lives in (``household_region``): 户籍 there, a 居住证 there, neither, or
# not recorded (records made before migration 13).
HUKOU, PERMIT, NO_RESIDENCE, UNKNOWN = "hukou", "permit", "none", "unknown"
RESIDENCES: tuple[str, ...] = (HUKOU, PERMIT, NO_RESIDENCE, UNKNOWN)
ANY_RESIDENCE = "any"
AHEAD_NONE, AHEAD_ONE_MONTH = "none", "one_month"
STUDENT_MAX_DAYS = 366
FIELD = "--kind"


# --------------------------------------------------------------------------- the policy (data)


def _codes(value: tuple[str, ...]) -> None:
    for code in value:
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise ValueError(f"a region is 6 digits, got {code!r}")


@attrs.frozen
class ConcessionRule:
    """One row of ``concessions.csv``: an elderly transit concession of one region, as published."""

    id: str
    region: str  # the region whose rule it is (GB/T 2260)
    kind: str  # the fares' concession ("elderly")
    card_kind: str = attrs.field(validator=attrs.validators.in_(ELDERLY_KINDS))  # what EF 0017 carries
    operators: tuple[str, ...]
    min_age: int
    start: date
    end: date | None = None
    areas: tuple[str, ...] = ()  # bj-bus areas covered (empty: all)
    line_kinds: tuple[str, ...] = ()  # flat-fare line kinds covered (empty: all)
    max_full_fare_fen: int | None = None  # lines dearer than this are not covered
    residence: tuple[str, ...] = (ANY_RESIDENCE,)  # hukou / permit in the rule's province, or any
    card_regions: tuple[str, ...] = ()  # which cards may carry it (issuing provinces)
    enable_ahead: str = attrs.field(default=AHEAD_NONE, validator=attrs.validators.in_((AHEAD_NONE, AHEAD_ONE_MONTH)))
    same_treatment: bool = False  # 同城待遇: cards of same_treatment_regions ride free too (by age alone)
    same_treatment_regions: tuple[str, ...] = ()
    provenance: Provenance = ILLUSTRATIVE_ONLY
    note: str = ""

    def __attrs_post_init__(self) -> None:
        _codes((self.region, *self.card_regions, *self.same_treatment_regions))
        if not 0 < self.min_age < 150:
            raise ValueError(f"{self.id}: min_age {self.min_age} is not an age")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"{self.id}: ends {self.end} before it starts {self.start}")
        if self.max_full_fare_fen is not None and self.max_full_fare_fen <= 0:
            raise ValueError(f"{self.id}: max_full_fare_fen must be positive")
        if not self.operators:
            raise ValueError(f"{self.id}: names no operator")
        bad = [r for r in self.residence if r not in (ANY_RESIDENCE, HUKOU, PERMIT)]
        if bad or not self.residence:
            raise ValueError(f"{self.id}: residence {bad or '(empty)'} is not any, hukou or permit")

    def in_force(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def carried_by(self, card_region: str) -> bool:
        """Whether a card issued by ``card_region`` may carry this concession."""
        return any(card_region[:2] == r[:2] for r in self.card_regions)

    def same_treatment_for(self, card_region: str | None) -> bool:
        """Whether the same-treatment switch lets a card of ``card_region`` ride free by age alone."""
        return (self.same_treatment and card_region is not None
                and any(card_region[:2] == r[:2] for r in self.same_treatment_regions))

    def first_day(self, birth: date) -> date:
        """The first day the concession may be enabled for someone born on ``birth``."""
        birthday = birthday_at(birth, self.min_age)
        return one_month_before(birthday) if self.enable_ahead == AHEAD_ONE_MONTH else birthday

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "region": self.region, "card_kind": self.card_kind, "operators": list(self.operators),
                "min_age": self.min_age, "start": self.start.isoformat(),
                "end": self.end.isoformat() if self.end else None, "same_treatment": self.same_treatment,
                **self.provenance.to_json()}


@attrs.frozen
class ConcessionPolicy:
    """Every concession rule of the three regions (``concessions.csv``)."""

    rules: tuple[ConcessionRule, ...] = ()

    def __attrs_post_init__(self) -> None:
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a rule id is listed twice: {sorted(i for i in ids if ids.count(i) > 1)}")

    def for_operator(self, operator: str, day: date, kind: str = ELDERLY) -> ConcessionRule | None:
        """The rule of ``kind`` for rides on ``operator`` in force on ``day`` (None: the fare is charged)."""
        for rule in self.rules:
            if rule.kind == kind and operator in rule.operators and rule.in_force(day):
                return rule
        return None

    def for_card(self, card_region: str, day: date) -> ConcessionRule:
        """The elderly rule a card issued by ``card_region`` may carry on ``day``, or ``RuleRefused``."""
        carried = [r for r in self.rules if r.kind == ELDERLY and r.carried_by(card_region)]
        for rule in carried:
            if rule.in_force(day):
                return rule
        later = sorted((r for r in carried if r.start > day), key=lambda r: r.start)
        if later:
            raise RuleRefused("concession.not_in_force", f"the elderly concession of cards of region "
                              f"{card_region} takes effect on {later[0].start.isoformat()}", FIELD)
        regions = sorted({c for r in self.rules if r.kind == ELDERLY for c in r.card_regions})
        if not carried:
            raise RuleRefused(
                "concession.no_elderly_rule", f"no elderly transit concession goes on cards issued by region "
                f"{card_region} (cards of {', '.join(regions) or 'no region'} carry one; the elderly of other "
                "regions use their city's own elderly card, 敬老卡)", "CARD")
        raise RuleRefused("concession.not_in_force", f"the elderly concession of cards of region {card_region} "
                          f"is not in force on {day.isoformat()}", FIELD)

    def of_card_kind(self, card_kind: str, day: date) -> ConcessionRule | None:
        for rule in self.rules:
            if rule.card_kind == card_kind and rule.in_force(day):
                return rule
        return None


# --------------------------------------------------------------------------- EF 0017


@attrs.frozen
class CardConcession:
    """What EF 0017 says: one concession, its region, dates and status."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    region: str  # 6-digit GB/T 2260 code where it applies (by province)
    start: date
    end: date | None = None
    status: str = attrs.field(default=ENABLED, validator=attrs.validators.in_(tuple(STATUS_CODES)))

    def __attrs_post_init__(self) -> None:
        if not (len(self.region) == 6 and self.region.isascii() and self.region.isdigit()):
            raise ValueError(f"a concession region is 6 digits, got {self.region!r}")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"a concession ending {self.end} cannot start {self.start}")

    def applies(self, operator_region: str, day: date) -> bool:
        """Enabled, in force on ``day`` and for an operator of the same province."""
        return (self.status == ENABLED and self.region[:2] == operator_region[:2] and self.start <= day
                and (self.end is None or day <= self.end))

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "region": self.region, "start": self.start.isoformat(),
                "end": self.end.isoformat() if self.end else None, "status": self.status}


def _bcd(digits: str) -> bytes:
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, len(digits), 2))


def _unbcd(data: bytes, what: str) -> str:
    out = []
    for byte in data:
        hi, lo = byte >> 4, byte & 0x0F
        if hi > 9 or lo > 9:
            raise _bad(f"{what} is not BCD: {data.hex().upper()}")
        out += [str(hi), str(lo)]
    return "".join(out)


def _bad(why: str) -> InvalidInput:
    return InvalidInput("concession.layout", f"EF 0017: {why}", "0017")


def _date_bytes(day: date | None) -> bytes:
    return bytes(4) if day is None else _bcd(f"{day.year:04d}{day.month:02d}{day.day:02d}")


def _parse_date(data: bytes, what: str, optional: bool) -> date | None:
    text = _unbcd(data, what)
    if optional and text == "00000000":
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise _bad(f"{what} {text} is not a date") from None


def encode_0017(concession: CardConcession | None) -> bytes:
    """The 64 bytes of EF 0017 for ``concession`` (``None``: no concession, all zeros)."""
    if concession is None:
        return bytes(EF0017_LEN)
    head = (bytes((EF0017_VERSION, TYPE_CODES[concession.kind])) + _bcd(concession.region)
            + _date_bytes(concession.start) + _date_bytes(concession.end) + bytes((STATUS_CODES[concession.status],)))
    assert len(head) == LAYOUT_END
    return head + bytes(EF0017_LEN - LAYOUT_END)


def decode_0017(data: bytes) -> CardConcession | None:
    """EF 0017 read from a card; ``None`` when it carries no concession.

    A layout this project did not write raises ``InvalidInput`` (code
    ``concession.layout``): a terminal treats such a card as having no concession.
    """
    if len(data) != EF0017_LEN:
        raise _bad(f"expected {EF0017_LEN} bytes, got {len(data)}")
    if data == bytes(EF0017_LEN):
        return None
    if data[OFF_VERSION] != EF0017_VERSION:
        raise _bad(f"unknown version {data[OFF_VERSION]:02X}")
    kinds = {code: kind for kind, code in TYPE_CODES.items()}
    kind = kinds.get(data[OFF_TYPE])
    if kind is None:
        raise _bad(f"unknown concession type {data[OFF_TYPE]:02X}")
    if kind == NONE:
        return None
    statuses = {code: status for status, code in STATUS_CODES.items()}
    status = statuses.get(data[OFF_STATUS])
    if status is None:
        raise _bad(f"unknown status {data[OFF_STATUS]:02X}")
    if any(data[LAYOUT_END:]):
        raise _bad("reserved bytes are not zero")
    start = _parse_date(data[OFF_START:OFF_END], "start", optional=False)
    end = _parse_date(data[OFF_END:OFF_STATUS], "end", optional=True)
    try:
        return CardConcession(kind, _unbcd(data[OFF_REGION:OFF_START], "region"), start, end, status)  # type: ignore[arg-type]
    except ValueError as e:
        raise _bad(str(e)) from None


def hub_kind(kind: str) -> str:
    """The kind a revocation is published under at the hub: either elderly concession is
    ``elderly_free_ride`` there (a card carries one concession; the hub's list predates type 03)."""
    return ELDERLY_FREE_RIDE if kind in ELDERLY_KINDS else kind


def fare_concession(card: CardConcession | None, operator_region: str, day: date) -> str | None:
    """What ``sbcard.domain.fares.quote`` takes as ``concession`` for a card read at a terminal."""
    if card is None or not card.applies(operator_region, day):
        return None
    return FARE_CONCESSION[card.kind]


# --------------------------------------------------------------------------- eligibility


def birthday_at(birth: date, years: int) -> date:
    """The day one turns ``years`` (a 29 February birthday falls on 1 March in common years)."""
    year = birth.year + years
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return birth.replace(year=year)


def one_month_before(day: date) -> date:
    """The same day of the previous month, or that month's last day (31 March → 28/29 February)."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def elderly_free_ride_from(citizen_id: CitizenId) -> date:
    """Tianjin's first day: one month before the 65th birthday (``ConcessionRule.first_day`` in general)."""
    return one_month_before(birthday_at(citizen_id.birth_date, ELDERLY_AGE))


def card_kind(text: str) -> str:
    """``--kind elderly|student`` (or the stored names) → ``elderly`` (resolved by the policy) or a stored kind."""
    kind = CLI_KINDS.get((text or "").strip(), (text or "").strip())
    if kind not in (ELDERLY, *KINDS):
        raise InvalidInput("concession.kind", f"{text!r} is not a concession (elderly, student)", FIELD)
    return kind


def check_residence(rule: ConcessionRule, residence: str | None, household_region: str | None) -> None:
    """``RuleRefused`` unless the holder's residence (registry) is one the rule admits in its province."""
    if ANY_RESIDENCE in rule.residence:
        return
    wanted = " or ".join({HUKOU: "户籍 (hukou)", PERMIT: "a 居住证 (residence permit)"}[r] for r in rule.residence)
    if residence in (None, UNKNOWN):
        raise RuleRefused("concession.residence_unknown", f"the {rule.id} concession needs {wanted} in region "
                          f"{rule.region}; the registry has no residence status for the holder (record it with "
                          "`sbcard person residence`)", "residence")
    if residence not in rule.residence or not household_region or household_region[:2] != rule.region[:2]:
        where = f"living in {household_region}" if household_region else "residence unknown"
        raise RuleRefused("concession.not_resident", f"the {rule.id} concession needs {wanted} in region "
                          f"{rule.region}; the holder's residence is {residence!r} ({where})", "residence")


def grant(kind: str, *, citizen_id: CitizenId, card_region: str, today: date,
          until: date | None = None, policy: ConcessionPolicy | None = None, residence: str | None = None,
          household_region: str | None = None) -> CardConcession:
    """The concession a card gets today, or ``RuleRefused`` saying why the holder may not have it.

    ``card_region`` is the card's issuing region (its 卡识别码's first 6 digits); an elderly
    concession is the one the ``policy`` lets that region's cards carry, checked against
    the holder's age today and the registry's ``residence``/``household_region``.
    """
    kind = card_kind(kind)
    if kind in (ELDERLY, *ELDERLY_KINDS):
        if until is not None:
            raise InvalidInput("concession.until", "an elderly concession has no end date", "--until")
        rule = (policy or ConcessionPolicy()).for_card(card_region, today)
        if kind != ELDERLY and kind != rule.card_kind:
            raise RuleRefused("concession.wrong_region", f"cards of region {card_region} carry {rule.card_kind}, "
                              f"not {kind}", FIELD)
        first = rule.first_day(citizen_id.birth_date)
        if today < first:
            ahead = " (one month before the birthday)" if rule.enable_ahead == AHEAD_ONE_MONTH else ""
            raise RuleRefused(
                "concession.too_young", f"the {rule.id} concession can be enabled from {first.isoformat()}{ahead}: "
                f"the holder turns {rule.min_age} on "
                f"{birthday_at(citizen_id.birth_date, rule.min_age).isoformat()}", FIELD)
        check_residence(rule, residence, household_region)
        return CardConcession(rule.card_kind, rule.region, today, rule.end, ENABLED)
    if until is None:
        raise InvalidInput("concession.until", "a student ticket needs its end date (--until YYYY-MM-DD)", "--until")
    if until <= today:
        raise InvalidInput("concession.until", f"the end date {until.isoformat()} is not after today "
                           f"({today.isoformat()})", "--until")
    if until > today + timedelta(days=STUDENT_MAX_DAYS):
        raise InvalidInput("concession.until", f"a student ticket lasts at most one year (until "
                           f"{(today + timedelta(days=STUDENT_MAX_DAYS)).isoformat()}); renew it each school year",
                           "--until")
    return CardConcession(STUDENT, card_region[:2] + "0000", today, until, ENABLED)
