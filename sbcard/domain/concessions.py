"""Transit concessions on the card: who may have one, and how EF 0017 carries it.

Two kinds (issue 4):

- **Tianjin elderly free ride** (天津 65岁以上老年人免费乘坐公共汽车, from 2023-11-01): a
  holder may have it enabled from one month before their 65th birthday (以身份证日期为准:
  the birth date of the citizen ID); the free ride itself starts on the birthday (the
  fare rules check the age on the day of travel). One enabled card per person: enabling
  it on a new card locks it on the old one. The project's decision on who may have it
  on a social security card: **Tianjin-issued cards only** — the official channel is a
  Tianjin third-generation card with the function enabled at a Tianjin outlet; holders
  of other cards who live in Tianjin use a 敬老卡, which this simulator does not issue.
  It applies on Tianjin's operators (region 120000). No end date.
- **Student ticket**: granted by the card's issuing region with an end date (at most one
  year ahead, renewed each school year as student status is checked), applies on the
  operators of the card's province; the fare rules say what a student pays.

EF 0017 (64 bytes, docs/card-profile.md "The T-Union application"): version (1) = 01,
concession type (1: 00 none, 01 student, 02 elderly free ride), concession region (3 BCD),
start (4 BCD YYYYMMDD), end (4 BCD; 00000000 = no end), status (1: 01 enabled, 02
locked), 50 reserved zero bytes. A card without a concession has 64 zero bytes (the
state personalisation leaves it in). A locked record keeps its type and dates: it tells
a terminal the concession was moved to another card.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import attrs

from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused

EF0017_LEN = 64
EF0017_VERSION = 0x01
OFF_VERSION, OFF_TYPE, OFF_REGION, OFF_START, OFF_END, OFF_STATUS, LAYOUT_END = 0, 1, 2, 5, 9, 13, 14

NONE, STUDENT, ELDERLY_FREE_RIDE = "none", "student", "elderly_free_ride"
KINDS: tuple[str, ...] = (ELDERLY_FREE_RIDE, STUDENT)
TYPE_CODES = {NONE: 0x00, STUDENT: 0x01, ELDERLY_FREE_RIDE: 0x02}
ENABLED, LOCKED = "enabled", "locked"
STATUS_CODES = {ENABLED: 0x01, LOCKED: 0x02}
CLI_KINDS = {"elderly": ELDERLY_FREE_RIDE, "student": STUDENT}  # --kind → stored kind
FARE_CONCESSION = {ELDERLY_FREE_RIDE: "elderly", STUDENT: "student"}  # stored kind → fares' concession

TIANJIN = "120000"
ELDERLY_AGE = 65
STUDENT_MAX_DAYS = 366
FIELD = "--kind"


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
    """The first day the free-ride function may be enabled: one month before the 65th birthday."""
    return one_month_before(birthday_at(citizen_id.birth_date, ELDERLY_AGE))


def card_kind(text: str) -> str:
    """``--kind elderly|student`` (or the stored names) → the stored kind."""
    kind = CLI_KINDS.get((text or "").strip(), (text or "").strip())
    if kind not in KINDS:
        raise InvalidInput("concession.kind", f"{text!r} is not a concession (elderly, student)", FIELD)
    return kind


def grant(kind: str, *, citizen_id: CitizenId, card_region: str, today: date,
          until: date | None = None) -> CardConcession:
    """The concession a card gets today, or ``RuleRefused`` saying why the holder may not have it.

    ``card_region`` is the card's issuing region (its 卡识别码's first 6 digits).
    """
    kind = card_kind(kind)
    if kind == ELDERLY_FREE_RIDE:
        if until is not None:
            raise InvalidInput("concession.until", "the elderly free ride has no end date", "--until")
        if card_region[:2] != TIANJIN[:2]:
            raise RuleRefused(
                "concession.not_tianjin", f"the elderly free ride is a function of Tianjin-issued cards; this card "
                f"was issued by region {card_region} (a holder living in Tianjin uses a 敬老卡)", "CARD")
        first = elderly_free_ride_from(citizen_id)
        if today < first:
            raise RuleRefused(
                "concession.too_young", f"the free ride can be enabled from {first.isoformat()}, one month before "
                f"the holder's 65th birthday ({birthday_at(citizen_id.birth_date, ELDERLY_AGE).isoformat()})", FIELD)
        return CardConcession(ELDERLY_FREE_RIDE, TIANJIN, today, None, ENABLED)
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
