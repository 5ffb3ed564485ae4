"""Fare rules of the Jing-Jin-Ji transit operators (一卡通乘), as pure functions.

Every amount is an ``int`` of fen; distances are ``Decimal`` kilometres (a float is read
through its shortest decimal text, so ``6.0001`` is 6.0001 km, never 6.000099…). Ages are
full years on the day of travel from the holder's birth date (the citizen ID's), so a
65th birthday changes the fare from that very day. The sources, and which figures are
illustrative, are listed in ``fixtures/transit/README.md``.

Rules (operator codes as in issue 4):

- ``bj-subway`` (since 2014-12-28, every line but the airport lines): 6 km (含) 3 yuan;
  over 6 up to 12 km (含) 4; over 12 up to 22 (含) 5; over 22 up to 32 (含) 6; beyond 32
  km one more yuan for every further 20 km or part of it (over 32 up to 52 → 7, over 52
  up to 72 → 8 …). The Capital Airport Express: 25 yuan flat. Students: 50% off
  (illustrative). No free ride for the elderly on the subway.
- ``bj-bus``: 10 km (含) 2 yuan, then one more yuan for every further 5 km or part of it.
  Paid with the card: 50% off in the city area (市域内), 20% off outside it (市域外:
  segments beyond Beijing's territory, ``area="suburb"``); a student concession: 75% off
  in the city area (20% outside it, as every card). The elderly free bus (from 60, within
  Beijing) is a row of ``fixtures/transit/concessions.csv`` (a ``ConcessionRule``): free when
  the card carries Beijing's elderly concession (EF 0017 type 03) and the holder has reached
  the rule's age on the day, or, when the rule's same-treatment switch is on, for a card of
  the switch's regions by age alone; otherwise the card fare.
- ``tj-bus`` (flat fare per line): from the rule's start (2023-11-01) holders aged 65 or
  more ride free on regular lines whose full fare is at most 2 yuan, only when the card's
  free-ride function is enabled (concession ``elderly``); otherwise the full fare.
  Commuter lines and custom lines (通勤线路、定制专线) never ride free. Age, start, lines and
  fare limit are the rule's row in ``concessions.csv``; before its start the fare is charged.
- ``tj-metro`` (lines 1, 2, 3: fare by the number of sections (区间) ridden, over the
  path with the fewest sections): 4 sections (5 stations) or fewer 2 yuan; up to 9 (10
  stations) 3; up to 15 (16 stations) 4; more 5 (the full fare). Students: 30% off
  (illustrative).
- ``he-sjz-bus`` (石家庄) and ``he-lf-bus`` (廊坊): flat fare per line, the card pays the
  full fare; students 50% off (illustrative). The elderly ride free there with the
  city's own 敬老卡, not with the social security card.

Percentages are applied as ``full × pay% / 100`` rounded half up to the fen (四舍五入):
50% of 250 fen is 125, 25% of 250 fen (62.5) is 63, 80% of 255 fen (204.0) is 204.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs

from sbcard.domain.errors import InvalidInput
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance

if TYPE_CHECKING:  # the rules' rows (sbcard.domain.concessions imports nothing of this module)
    from sbcard.domain.concessions import ConcessionPolicy, ConcessionRule

# --------------------------------------------------------------------------- vocabulary

BJ_SUBWAY, BJ_BUS, TJ_BUS, TJ_METRO, HE_SJZ_BUS, HE_LF_BUS = (
    "bj-subway", "bj-bus", "tj-bus", "tj-metro", "he-sjz-bus", "he-lf-bus")
OPERATORS: tuple[str, ...] = (BJ_SUBWAY, BJ_BUS, TJ_BUS, TJ_METRO, HE_SJZ_BUS, HE_LF_BUS)
HE_BUSES: tuple[str, ...] = (HE_SJZ_BUS, HE_LF_BUS)
FLAT_FARE_OPERATORS: tuple[str, ...] = (TJ_BUS, *HE_BUSES)

# The region each operator runs in (GB/T 2260): a concession applies where its region does.
OPERATOR_REGIONS: dict[str, str] = {
    BJ_SUBWAY: "110000", BJ_BUS: "110000", TJ_BUS: "120000", TJ_METRO: "120000",
    HE_SJZ_BUS: "130100", HE_LF_BUS: "131000",
}

STUDENT, ELDERLY = "student", "elderly"
CONCESSIONS: tuple[str, ...] = (STUDENT, ELDERLY)
CITY, SUBURB = "city", "suburb"
AREAS: tuple[str, ...] = (CITY, SUBURB)
REGULAR, COMMUTER, CUSTOM = "regular", "commuter", "custom"
LINE_KINDS: tuple[str, ...] = (REGULAR, COMMUTER, CUSTOM)

MAX_KM = Decimal(500)  # longer than any line of the three regions: a typo, not a trip
MAX_SECTIONS = 500

# Beijing subway (2014-12-28).
BJ_SUBWAY_BANDS: tuple[tuple[Decimal, int], ...] = (  # (up to km inclusive, fen)
    (Decimal(6), 300), (Decimal(12), 400), (Decimal(22), 500), (Decimal(32), 600))
BJ_SUBWAY_BEYOND_KM = Decimal(20)  # beyond 32 km: +1 yuan per 20 km or part of it
BJ_AIRPORT_EXPRESS_FEN = 2500
BJ_AIRPORT_EXPRESS_LINE = "首都机场线"
BJ_SUBWAY_STUDENT_PAY = 50  # illustrative

# Beijing bus (2014-12-28).
BJ_BUS_BASE_KM, BJ_BUS_BASE_FEN = Decimal(10), 200
BJ_BUS_STEP_KM, BJ_BUS_STEP_FEN = Decimal(5), 100
BJ_BUS_PAY = {  # (area, student?) → percent of the full fare paid with the card
    (CITY, False): 50, (CITY, True): 25, (SUBURB, False): 80, (SUBURB, True): 80,
}

# Tianjin bus (from 2023-11-01).
TJ_BUS_FREE_RIDE_MAX_FEN = 200
TJ_BUS_BASE_FEN = 200  # the usual regular line's full fare, when none is given (illustrative)

# Tianjin metro, lines 1-3: (up to sections inclusive, fen); more → the full fare.
TJ_METRO_BANDS: tuple[tuple[int, int], ...] = ((4, 200), (9, 300), (15, 400))
TJ_METRO_FULL_FEN = 500
TJ_METRO_STUDENT_PAY = 70  # illustrative

# Hebei city buses (illustrative): the usual line's fare when none is given.
HE_BUS_BASE_FEN = {HE_SJZ_BUS: 100, HE_LF_BUS: 100}
HE_BUS_STUDENT_PAY = 50

KM_FIELD = "--km"


@attrs.frozen
class FareQuote:
    """What a ride costs: the fare debited, the full fare it comes from and the rule applied.

    ``rule`` is a stable identifier (``bj-bus.card-city``); ``description`` says it in words.
    """

    fare_fen: int = attrs.field(validator=attrs.validators.instance_of(int))
    full_fare_fen: int = attrs.field(validator=attrs.validators.instance_of(int))
    rule: str
    description: str = ""
    # Where the figures come from (the fare rule's, the line's, the concession's rows);
    # ``Tariff.quote`` fills it in from the fixtures. Not part of the quote's equality.
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.fare_fen <= self.full_fare_fen:
            raise ValueError(f"a fare of {self.fare_fen} fen is not within 0…{self.full_fare_fen}")

    @property
    def illustrative(self) -> bool:
        return self.provenance.illustrative

    def to_json(self) -> dict[str, Any]:
        return {"fare_fen": self.fare_fen, "full_fare_fen": self.full_fare_fen, "rule": self.rule,
                "description": self.description, **self.provenance.to_json()}


# --------------------------------------------------------------------------- helpers


def to_km(value: Any, field: str = KM_FIELD) -> Decimal:
    """A distance as exact ``Decimal`` km: 0 ≤ km ≤ 500. Text, int, float or Decimal."""
    if isinstance(value, bool):
        raise InvalidInput("fare.km", f"expected a distance in km, got {value!r}", field)
    try:
        km = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput("fare.km", f"{value!r} is not a distance in km (write e.g. 12.5)", field) from None
    if not km.is_finite():
        raise InvalidInput("fare.km", f"{value!r} is not a distance in km", field)
    if km < 0:
        raise InvalidInput("fare.km", f"a distance cannot be negative, got {value}", field)
    if km > MAX_KM:
        raise InvalidInput("fare.km", f"{value} km is longer than any line (at most {MAX_KM})", field)
    return km


def _steps(over: Decimal, step: Decimal) -> int:
    """How many steps of ``step`` km (a part counts as a whole one) cover ``over`` km."""
    return math.ceil(over / step) if over > 0 else 0


def age_on(birth: date, day: date) -> int:
    """Full years on ``day`` (as ``CitizenId.age_on``: a 29 February birthday counts from 1 March)."""
    if day < birth:
        raise InvalidInput("fare.date", f"the holder is born {birth.isoformat()}, after the day of travel "
                           f"{day.isoformat()}", "--date")
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def pay_percent(full_fen: int, percent: int) -> int:
    """``percent`` of ``full_fen``, rounded half up to the fen: 50% of 250 → 125, 25% of 250 → 63."""
    if not 0 <= percent <= 100:
        raise ValueError(f"a percentage paid is 0…100, got {percent}")
    return (full_fen * percent + 50) // 100


def _concession(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in CONCESSIONS:
        raise InvalidInput("fare.concession", f"{value!r} is not a concession ({', '.join(CONCESSIONS)})",
                           "--concession")
    return value


def _full_fare(value: int, field: str = "--full-fare") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput("fare.full_fare", f"a line's full fare is a positive amount, got {value!r}", field)
    return value


def _yuan(fen: int) -> str:
    yuan, cents = divmod(fen, 100)
    return f"¥{yuan}.{cents:02d}"


# --------------------------------------------------------------------------- Beijing subway


def bj_subway_full_fare(km: Any) -> int:
    """The distance fare of the Beijing subway (all lines but the airport lines)."""
    km = to_km(km)
    for upto, fen in BJ_SUBWAY_BANDS:
        if km <= upto:
            return fen
    last_km, last_fen = BJ_SUBWAY_BANDS[-1]
    return last_fen + 100 * _steps(km - last_km, BJ_SUBWAY_BEYOND_KM)


def _bj_subway_band(km: Decimal) -> str:
    lower = Decimal(0)
    for upto, _ in BJ_SUBWAY_BANDS:
        if km <= upto:
            return f"{lower}–{upto} km" if lower else f"up to {upto} km"
        lower = upto
    steps = _steps(km - lower, BJ_SUBWAY_BEYOND_KM)
    return f"{lower + (steps - 1) * BJ_SUBWAY_BEYOND_KM}–{lower + steps * BJ_SUBWAY_BEYOND_KM} km"


def bj_subway_fare(km: Any, concession: str | None = None) -> FareQuote:
    """A Beijing subway ride of ``km`` (entry to exit over the shortest path)."""
    km = to_km(km)
    full = bj_subway_full_fare(km)
    band = f"{km} km ({_bj_subway_band(km)}: {_yuan(full)})"
    if _concession(concession) == STUDENT:
        return FareQuote(pay_percent(full, BJ_SUBWAY_STUDENT_PAY), full, "bj-subway.student",
                         f"{band}, student 50% off")
    return FareQuote(full, full, "bj-subway.distance", band)


def bj_airport_express_fare() -> FareQuote:
    """The Capital Airport Express (首都机场线): one flat fare, no concession."""
    return FareQuote(BJ_AIRPORT_EXPRESS_FEN, BJ_AIRPORT_EXPRESS_FEN, "bj-subway.airport-express",
                     f"Capital Airport Express, flat {_yuan(BJ_AIRPORT_EXPRESS_FEN)}")


# --------------------------------------------------------------------------- Beijing bus


def bj_bus_full_fare(km: Any) -> int:
    """2 yuan up to 10 km (含), then 1 yuan more for every further 5 km or part of it."""
    km = to_km(km)
    return BJ_BUS_BASE_FEN + BJ_BUS_STEP_FEN * _steps(km - BJ_BUS_BASE_KM, BJ_BUS_STEP_KM)


def _area(value: str | None) -> str:
    if value is None:
        return CITY
    if value not in AREAS:
        raise InvalidInput("fare.area", f"{value!r} is not an area ({', '.join(AREAS)})", "--area")
    return value


def bj_bus_fare(km: Any, area: str | None = CITY, age: int | None = None,
                concession: str | None = None, rule: ConcessionRule | None = None,
                card_region: str | None = None) -> FareQuote:
    """A Beijing bus ride of ``km`` paid with the card; ``age`` on the day of travel, if known.

    ``rule`` is the elderly free bus in force on the day (None: none is); ``concession``
    ``elderly`` says the card carries Beijing's elderly concession; ``card_region`` is the
    card's issuing region (the same-treatment switch looks at it).
    """
    km, area, concession = to_km(km), _area(area), _concession(concession)
    full = bj_bus_full_fare(km)
    trip = f"{km} km, full fare {_yuan(full)}"
    why_not = ""
    if rule is not None and age is not None and age >= rule.min_age:
        if rule.areas and area not in rule.areas:
            why_not = f"; aged {age}, but the elderly free bus covers the city area only"
        elif concession == ELDERLY and card_region is not None and not rule.carried_by(card_region):
            # another region's elderly concession (Tianjin's free ride) is not Beijing's
            why_not = (f"; aged {age}, but a card of region {card_region} carries its own region's elderly "
                       "concession, not Beijing's")
            if rule.same_treatment_for(card_region):
                return FareQuote(0, full, "bj-bus.elderly-free",
                                 f"{trip}; holder aged {age}, card of region {card_region}: same treatment (同城待遇)")
        elif concession == ELDERLY:
            return FareQuote(0, full, "bj-bus.elderly-free",
                             f"{trip}; holder aged {age} with Beijing's elderly concession: "
                             f"{rule.min_age}+ ride buses free")
        elif rule.same_treatment_for(card_region):
            return FareQuote(0, full, "bj-bus.elderly-free",
                             f"{trip}; holder aged {age}, card of region {card_region}: same treatment (同城待遇)")
        else:
            why_not = f"; aged {age}, but the card carries no Beijing elderly concession"
            if card_region is not None and any(card_region[:2] == r[:2] for r in rule.same_treatment_regions):
                why_not += f" (a card of region {card_region}: same treatment, 同城待遇, is off)"
    student = concession == STUDENT
    pay = BJ_BUS_PAY[(area, student)]
    who = "student" if student else "card"
    where = "city area" if area == CITY else "outside the city area"
    return FareQuote(pay_percent(full, pay), full, f"bj-bus.{who}-{area}",
                     f"{trip}; {who} {100 - pay}% off {where}{why_not}")


# --------------------------------------------------------------------------- Tianjin bus


def _line_kind(value: str | None) -> str:
    if value is None:
        return REGULAR
    if value not in LINE_KINDS:
        raise InvalidInput("fare.line_kind", f"{value!r} is not a kind of line ({', '.join(LINE_KINDS)})", "--line")
    return value


def tj_bus_fare(full_fare_fen: int, age: int | None = None, free_ride_enabled: bool = False,
                line_kind: str | None = REGULAR, rule: ConcessionRule | None = None) -> FareQuote:
    """A Tianjin bus line's flat fare; free by ``rule`` (65+, the free-ride function, lines ≤ 2 yuan).

    ``rule`` is the elderly free ride in force on the day of travel (None: it is not, so
    the fare is charged: before 2023-11-01).
    """
    full, kind = _full_fare(full_fare_fen), _line_kind(line_kind)
    line = f"line fare {_yuan(full)}"
    if rule is None:
        why = "" if not free_ride_enabled else "; the elderly free ride is not in force on the day of travel"
        return FareQuote(full, full, "tj-bus.full", line + why)
    if age is None or age < rule.min_age:
        why = "" if age is None or not free_ride_enabled else \
            f"; the free ride starts at {rule.min_age} (holder aged {age})"
        return FareQuote(full, full, "tj-bus.full", line + why)
    if not free_ride_enabled:
        return FareQuote(full, full, "tj-bus.full", f"{line}; holder aged {age}, but the card's free-ride "
                         "function is not enabled")
    if rule.line_kinds and kind not in rule.line_kinds:
        return FareQuote(full, full, "tj-bus.full", f"{line}; {kind} lines are not in the free ride")
    if rule.max_full_fare_fen is not None and full > rule.max_full_fare_fen:
        return FareQuote(full, full, "tj-bus.full", f"{line}; the free ride covers lines up to "
                         f"{_yuan(rule.max_full_fare_fen)}")
    return FareQuote(0, full, "tj-bus.elderly-free-ride", f"{line}; holder aged {age} with the free-ride function")


# --------------------------------------------------------------------------- Tianjin metro


def _sections(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECTIONS:
        raise InvalidInput("fare.sections", f"the number of sections ridden is 0…{MAX_SECTIONS}, got {value!r}",
                           "--sections")
    return value


def tj_metro_full_fare(sections: int) -> int:
    """Tianjin metro lines 1-3 by sections (区间) ridden: ≤4 ¥2, ≤9 ¥3, ≤15 ¥4, more ¥5."""
    sections = _sections(sections)
    for upto, fen in TJ_METRO_BANDS:
        if sections <= upto:
            return fen
    return TJ_METRO_FULL_FEN


def tj_metro_fare(sections: int, concession: str | None = None) -> FareQuote:
    """A Tianjin metro ride of ``sections`` sections over the path with the fewest."""
    full = tj_metro_full_fare(sections)
    trip = f"{sections} sections ({sections + 1} stations): {_yuan(full)}"
    if _concession(concession) == STUDENT:
        return FareQuote(pay_percent(full, TJ_METRO_STUDENT_PAY), full, "tj-metro.student",
                         f"{trip}, student 30% off")
    return FareQuote(full, full, "tj-metro.sections", trip)


# --------------------------------------------------------------------------- Hebei buses


def he_bus_fare(operator: str, full_fare_fen: int | None = None, concession: str | None = None) -> FareQuote:
    """A Hebei city bus line's flat fare (illustrative): the full fare, students 50% off."""
    if operator not in HE_BUSES:
        raise InvalidInput("fare.operator", f"{operator!r} is not a Hebei bus operator ({', '.join(HE_BUSES)})",
                           "--operator")
    full = HE_BUS_BASE_FEN[operator] if full_fare_fen is None else _full_fare(full_fare_fen)
    line = f"line fare {_yuan(full)}"
    if _concession(concession) == STUDENT:
        return FareQuote(pay_percent(full, HE_BUS_STUDENT_PAY), full, f"{operator}.student", f"{line}, student 50% off")
    return FareQuote(full, full, f"{operator}.full", line)


# --------------------------------------------------------------------------- one entry point


def quote(
    operator_code: str,
    *,
    km: Any = None,
    sections: int | None = None,
    area: str | None = None,
    holder_birth_date: date | None = None,
    day: date | None = None,
    concession: str | None = None,
    full_fare_fen: int | None = None,
    line_kind: str | None = None,
    airport_express: bool = False,
    policy: ConcessionPolicy | None = None,
    card_region: str | None = None,
) -> FareQuote:
    """The fare of one ride by ``operator_code``'s rules.

    What each operator needs: ``bj-subway`` ``km`` (or ``airport_express``); ``bj-bus``
    ``km`` and ``area``; ``tj-metro`` ``sections``; ``tj-bus`` and the Hebei buses the
    line's ``full_fare_fen`` (default: the usual line's fare). ``holder_birth_date`` and
    ``day`` give the holder's age on the day of travel; ``concession`` is what the card
    carries for this operator's region (``student``, or ``elderly``: that region's elderly
    concession). ``policy`` holds the elderly rules (``concessions.csv``): without it, or
    on a day no rule is in force, the elderly pay. ``card_region`` is the card's issuing
    region (for a same-treatment switch). Other arguments are ignored (a flat-fare bus
    takes no distance).
    """
    concession = _concession(concession)
    age = None
    if holder_birth_date is not None:
        if day is None:
            raise InvalidInput("fare.date", "the holder's age needs the day of travel", "--date")
        age = age_on(holder_birth_date, day)
    rule = policy.for_operator(operator_code, day) if policy is not None and day is not None else None
    if operator_code == BJ_SUBWAY:
        if airport_express:
            return bj_airport_express_fare()
        return bj_subway_fare(_need_km(km, operator_code), concession)
    if operator_code == BJ_BUS:
        return bj_bus_fare(_need_km(km, operator_code), area, age, concession, rule, card_region)
    if operator_code == TJ_METRO:
        if sections is None:
            raise InvalidInput("fare.sections", "Tianjin metro fares count the sections (区间) ridden, not km: "
                               "give the stations (--from/--to) or --sections", "--sections")
        return tj_metro_fare(sections, concession)
    if operator_code == TJ_BUS:
        if concession == ELDERLY and age is None:
            raise InvalidInput("fare.holder", "the elderly free ride depends on the holder's age: give the "
                               "holder's citizen ID", "--holder-id")
        full = TJ_BUS_BASE_FEN if full_fare_fen is None else full_fare_fen
        if concession == ELDERLY and rule is not None and card_region is not None and not rule.carried_by(card_region):
            # a Beijing or Hebei card's elderly concession is its own region's, not Tianjin's free ride
            quote = tj_bus_fare(full, age, False, line_kind, rule)
            return attrs.evolve(quote, description=f"{quote.description.split(';')[0]}; a card of region "
                                f"{card_region} carries its own region's elderly concession, not Tianjin's free ride")
        return tj_bus_fare(full, age, concession == ELDERLY, line_kind, rule)
    if operator_code in HE_BUSES:
        return he_bus_fare(operator_code, full_fare_fen, concession)
    raise InvalidInput("fare.operator", f"unknown operator {operator_code!r} (known: {', '.join(OPERATORS)})",
                       "--operator")


def _need_km(km: Any, operator: str) -> Decimal:
    if km is None:
        raise InvalidInput("fare.km", f"a {operator} fare depends on the distance: give --km (or --from/--to)",
                           KM_FIELD)
    return to_km(km)
