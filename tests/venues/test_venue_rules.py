"""``sbcard.domain.venues.decide``: who enters, when, and at what price (pure, table-driven)."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.clock import BEIJING
from sbcard.domain.errors import InvalidInput
from sbcard.domain.venues import PriceRule, Venue, age_on, decide, parse_days, parse_months


def senior_half(age_from: int = 60, age_to: int | None = None) -> PriceRule:
    return PriceRule("senior-half", "senior", age_from=age_from, age_to=age_to, percent=50)


SENIOR_FREE = PriceRule("senior-free", "senior", age_from=65, price_fen=0)
STUDENT_HALF = PriceRule("student-half", "student", status="student", percent=50)


def card_discount(off: int) -> PriceRule:
    return PriceRule("card-discount", "cardholder", percent=100 - off)


PARK = Venue(code="BJ-SC-901", name="公园", region="110108", kind="scenic", open_days=frozenset(range(1, 8)),
             open_from=dt.time(6, 30), open_to=dt.time(18, 0), price_fen=3000, peak_months=frozenset(range(4, 11)),
             off_peak_price_fen=2000, rules=(SENIOR_FREE, senior_half(), STUDENT_HALF))
MUSEUM = Venue(code="BJ-MU-901", name="博物馆", region="110101", kind="museum", open_days=frozenset(range(2, 8)),
               open_from=dt.time(9, 0), open_to=dt.time(16, 0), price_fen=0, daily_limit=1)
RIDE = Venue(code="TJ-SC-901", name="摩天轮", region="120106", kind="scenic", open_from=dt.time(9, 30),
             open_to=dt.time(21, 30), price_fen=7000, rules=(STUDENT_HALF, card_discount(20)))
DEEP = Venue(code="HE-SC-901", name="景区", region="130802", kind="scenic", price_fen=5000,
             rules=(senior_half(), card_discount(60)))


def at(day: str, time: str = "10:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=BEIJING)


BORN_60_ON_5_MARCH = dt.date(1965, 3, 5)
BORN_65_ON_5_MARCH = dt.date(1960, 3, 5)


@pytest.mark.parametrize(("birth", "day", "price", "rule", "age"), [
    (BORN_60_ON_5_MARCH, "2025-03-04", 2000, "full", 59),        # the day before the 60th birthday
    (BORN_60_ON_5_MARCH, "2025-03-05", 1000, "senior-half", 60),  # on the birthday
    (BORN_65_ON_5_MARCH, "2025-03-04", 1000, "senior-half", 64),
    (BORN_65_ON_5_MARCH, "2025-03-05", 0, "senior-free", 65),
    (dt.date(1964, 2, 29), "2024-02-28", 2000, "full", 59),      # born 29 February: 60 from 29 February 2024
    (dt.date(1964, 2, 29), "2024-02-29", 1000, "senior-half", 60),
    (dt.date(1965, 2, 28), "2025-02-28", 1000, "senior-half", 60),
    (dt.date(1960, 3, 1), "2025-03-01", 0, "senior-free", 65),
    (None, "2025-03-05", 2000, "full", None),                     # no birth date on the card: no age discount
])
def test_a_senior_discount_starts_on_the_birthday(birth, day, price, rule, age):
    entry = decide(PARK, birth_date=birth, at=at(day))
    assert (entry.result, entry.price_fen, entry.rule, entry.age) == ("ok", price, f"BJ-SC-901.{rule}", age)


def test_born_29_february_is_older_from_1_march_in_other_years():
    assert [age_on(dt.date(1964, 2, 29), dt.date(2025, 2, d)) for d in (27, 28)] == [60, 60]
    assert age_on(dt.date(1965, 2, 28), dt.date(2025, 2, 27)) == 59
    assert age_on(dt.date(1964, 2, 29), dt.date(2023, 2, 28)) == 58
    assert age_on(dt.date(1964, 2, 29), dt.date(2023, 3, 1)) == 59
    assert age_on(dt.date(2030, 1, 1), dt.date(2025, 1, 1)) is None


@pytest.mark.parametrize(("venue", "day", "student", "birth", "price", "rule"), [
    (PARK, "2025-07-01", False, dt.date(1990, 1, 1), 3000, "full"),          # peak season
    (PARK, "2025-03-31", False, dt.date(1990, 1, 1), 2000, "full"),          # off-peak, last day
    (PARK, "2025-04-01", False, dt.date(1990, 1, 1), 3000, "full"),          # peak, first day
    (PARK, "2025-07-01", True, dt.date(2005, 1, 1), 1500, "student-half"),
    (PARK, "2025-07-01", True, dt.date(1960, 1, 1), 0, "senior-free"),       # free beats a student's half
    (PARK, "2025-07-01", True, dt.date(1963, 1, 1), 1500, "senior-half"),    # a tie goes to the senior rule
    (RIDE, "2025-07-01", False, dt.date(1990, 1, 1), 5600, "card-discount"),  # 20% off for every cardholder
    (RIDE, "2025-07-01", True, dt.date(2005, 1, 1), 3500, "student-half"),   # half is cheaper than 20% off
    (DEEP, "2025-07-01", False, dt.date(1950, 1, 1), 2000, "card-discount"),  # 60% off beats the senior half
    (MUSEUM, "2025-07-01", False, dt.date(1990, 1, 1), 0, "free-admission"),
])
def test_the_cheapest_applicable_price_wins(venue, day, student, birth, price, rule):
    entry = decide(venue, birth_date=birth, at=at(day), statuses={"student"} if student else ())
    assert entry.ok and (entry.price_fen, entry.rule) == (price, f"{venue.code}.{rule}")


def test_a_student_half_price_applies_only_where_the_venue_gives_it():
    no_students = Venue(code="BJ-SC-902", name="园", region="110108", kind="scenic", price_fen=1000)
    assert decide(no_students, birth_date=None, at=at("2025-07-01"), statuses={"student"}).price_fen == 1000


def test_half_of_an_odd_price_rounds_half_up():
    odd = Venue(code="BJ-SC-903", name="园", region="110108", kind="scenic", price_fen=1525, rules=(STUDENT_HALF,))
    assert decide(odd, birth_date=None, at=at("2025-07-01"), statuses={"student"}).price_fen == 763


@pytest.mark.parametrize(("venue", "when", "code"), [
    (MUSEUM, ("2025-03-03", "10:00"), "closed_day"),    # a Monday
    (MUSEUM, ("2025-03-04", "08:59"), "closed_hour"),
    (MUSEUM, ("2025-03-04", "16:00"), "closed_hour"),   # the last admission is before 16:00
    (PARK, ("2025-03-04", "06:29"), "closed_hour"),
])
def test_closed_days_and_hours_are_refused(venue, when, code):
    entry = decide(venue, birth_date=None, at=at(*when))
    assert (entry.result, entry.code, entry.price_fen) == ("refused", code, 0)
    assert venue.name in entry.reason


@pytest.mark.parametrize(("when", "ok"), [(("2025-03-04", "09:00"), True), (("2025-03-04", "15:59"), True),
                                          (("2025-03-09", "12:00"), True)])
def test_open_hours_include_their_first_minute(when, ok):
    assert decide(MUSEUM, birth_date=None, at=at(*when)).ok is ok


@pytest.mark.parametrize(("entries_today", "ok"), [(0, True), (1, False), (2, False)])
def test_the_daily_limit_counts_the_cards_entries_today(entries_today, ok):
    entry = decide(MUSEUM, birth_date=None, at=at("2025-03-04"), entries_today=entries_today)
    assert entry.ok is ok
    if not ok:
        assert entry.code == "daily_limit" and "once" in entry.reason


@pytest.mark.parametrize(("text", "days"), [("2-7", {2, 3, 4, 5, 6, 7}), ("1-7", set(range(1, 8))),
                                             ("1,3-5", {1, 3, 4, 5}), ("6,7", {6, 7})])
def test_open_days_are_iso_weekdays(text, days):
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["", "0-5", "3-1", "Mon", "1-8"])
def test_bad_open_days_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_days(text)


def test_a_season_needs_months_and_an_off_peak_price():
    assert parse_months("4-10") == frozenset(range(4, 11)) and parse_months("") == frozenset()
    with pytest.raises(ValueError):
        Venue(code="BJ-SC-904", name="园", region="110108", kind="scenic", price_fen=100,
              peak_months=frozenset({4}))


@pytest.mark.parametrize("changes", [
    {"code": "TJ-SC-905"},                                   # a Beijing region with a Tianjin code
    {"open_from": dt.time(18, 0)},
    {"loan_limit": 3},                                       # loan rules are a library's
    {"price_fen": -1},
    {"rules": (STUDENT_HALF, STUDENT_HALF)},                 # one rule id twice
])
def test_a_venue_that_cannot_be_is_refused(changes):
    fields = {"code": "BJ-SC-905", "name": "园", "region": "110108", "kind": "scenic", "price_fen": 100} | changes
    with pytest.raises(ValueError):
        Venue(**fields)


@pytest.mark.parametrize("changes", [
    {"percent": 101},
    {"percent": 50, "price_fen": 100},                       # a flat price or a percent, not both
    {},                                                      # … nor neither
    {"age_from": 18, "age_to": 7, "price_fen": 0},           # a band running backwards
    {"age_from": -1, "price_fen": 0},
    {"status": "soldier", "price_fen": 0},                   # a status no gate knows
    {"rule": "full", "price_fen": 0},                        # the names of the full price and free admission
    {"rule": "Senior Half", "price_fen": 0},
    {"starts": dt.date(2025, 2, 1), "ends": dt.date(2025, 1, 1), "price_fen": 0},
    {"category": "cardholder", "age_from": 60, "price_fen": 0},
    {"category": "veteran", "price_fen": 0},
])
def test_a_price_rule_that_cannot_be_is_refused(changes):
    fields = {"rule": "r", "category": "senior"} | changes
    with pytest.raises(ValueError):
        PriceRule(**fields)


def test_an_unknown_status_is_refused_by_the_gate_rule():
    with pytest.raises(InvalidInput) as unknown:
        decide(PARK, birth_date=None, at=at("2025-07-01"), statuses={"veteran"})
    assert unknown.value.code == "venue.status"
