"""The fare rules, table-driven: band boundaries, card discounts, ages on the day of travel, rounding."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sbcard.domain import fares
from sbcard.domain.errors import InvalidInput
from sbcard.reference.transit import load_concession_policy

POLICY = load_concession_policy()  # fixtures/transit/concessions.csv
BJ_RULE = POLICY.for_operator("bj-bus", date(2025, 1, 1))
TJ_RULE = POLICY.for_operator("tj-bus", date(2025, 1, 1))

# ----------------------------------------------------------------------------- Beijing subway

# "6公里(含)内3元；6公里至12公里(含)4元；12公里至22公里(含)5元；22公里至32公里(含)6元；
#  32公里以上部分，每增加1元可乘坐20公里": every upper bound is inclusive.
BJ_SUBWAY = [
    ("0", 300), ("0.5", 300), ("5.9999", 300), ("6", 300), ("6.0", 300), ("6.0001", 400),
    ("11.999", 400), ("12", 400), ("12.0001", 500), ("22", 500), ("22.0001", 600),
    ("32", 600), ("32.0001", 700), ("40", 700), ("52", 700), ("52.0001", 800), ("72", 800),
    ("72.0001", 900), ("88", 900), ("92", 900), ("92.0001", 1000),
]


@pytest.mark.parametrize(("km", "fen"), BJ_SUBWAY)
def test_beijing_subway_distance_bands(km, fen):
    assert fares.bj_subway_full_fare(km) == fen
    quote = fares.bj_subway_fare(km)
    assert (quote.fare_fen, quote.full_fare_fen, quote.rule) == (fen, fen, "bj-subway.distance")


@pytest.mark.parametrize("km", [6, 6.0, Decimal("6"), "6.000", " 6 "])
def test_a_distance_of_six_km_is_six_km_in_every_spelling(km):
    assert fares.bj_subway_full_fare(km) == 300


def test_a_float_is_read_by_its_decimal_text_not_its_binary_value():
    assert fares.bj_subway_full_fare(6.0001) == 400
    assert fares.bj_subway_full_fare(0.1 + 0.2) == 300  # 0.30000000000000004 km, not a surprise band


def test_the_airport_express_is_flat_and_students_pay_half_elsewhere():
    assert fares.bj_airport_express_fare().fare_fen == 2500
    assert fares.quote("bj-subway", km="80", airport_express=True).fare_fen == 2500
    student = fares.bj_subway_fare("13", concession="student")
    assert (student.fare_fen, student.full_fare_fen, student.rule) == (250, 500, "bj-subway.student")


def test_the_subway_gives_the_elderly_no_free_ride():
    quote = fares.quote("bj-subway", km="10", holder_birth_date=date(1940, 1, 1), day=date(2025, 3, 1))
    assert quote.fare_fen == 400


@pytest.mark.parametrize("bad", ["-1", "abc", "nan", "inf", "500.01", True, ""])
def test_distances_that_are_not_distances_are_refused(bad):
    with pytest.raises(InvalidInput) as e:
        fares.bj_subway_full_fare(bad)
    assert e.value.field == "--km"


# ----------------------------------------------------------------------------- Beijing bus

BJ_BUS_FULL = [("0", 200), ("10", 200), ("10.0001", 300), ("15", 300), ("15.0001", 400), ("20", 400),
               ("27.5", 600), ("63.5", 1300)]


@pytest.mark.parametrize(("km", "fen"), BJ_BUS_FULL)
def test_beijing_bus_two_yuan_up_to_ten_km_then_one_per_five(km, fen):
    assert fares.bj_bus_full_fare(km) == fen


BJ_BUS = [  # km, area, age, concession (elderly: the card carries Beijing's elderly concession) → fare, rule
    ("8", "city", 30, None, 100, "bj-bus.card-city"),
    ("14", "city", 30, None, 150, "bj-bus.card-city"),
    ("14", "suburb", 30, None, 240, "bj-bus.card-suburb"),
    ("8", "city", 16, "student", 50, "bj-bus.student-city"),
    ("14", "city", 16, "student", 75, "bj-bus.student-city"),
    ("14", "suburb", 16, "student", 240, "bj-bus.student-suburb"),
    ("14", "city", 59, "elderly", 150, "bj-bus.card-city"),  # Beijing's elderly free bus starts at 60
    ("14", "city", 60, "elderly", 0, "bj-bus.elderly-free"),
    ("14", "city", 65, "elderly", 0, "bj-bus.elderly-free"),
    ("14", "city", 65, None, 150, "bj-bus.card-city"),  # 65 but no elderly concession on the card: the card fare
    ("14", "city", 80, None, 150, "bj-bus.card-city"),
    ("40", "suburb", 80, "elderly", 640, "bj-bus.card-suburb"),  # free within Beijing only (市域内)
    ("14", "city", None, None, 150, "bj-bus.card-city"),
    ("14", None, 30, None, 150, "bj-bus.card-city"),  # the city area by default
    ("14", "city", None, "elderly", 150, "bj-bus.card-city"),  # the age decides: unknown, the card fare
    ("14", "city", 40, "elderly", 150, "bj-bus.card-city"),
]


@pytest.mark.parametrize(("km", "area", "age", "concession", "fen", "rule"), BJ_BUS)
def test_beijing_bus_with_the_card(km, area, age, concession, fen, rule):
    quote = fares.bj_bus_fare(km, area, age, concession, BJ_RULE)
    assert (quote.fare_fen, quote.rule) == (fen, rule)
    assert quote.full_fare_fen == fares.bj_bus_full_fare(km)


def test_an_unknown_area_or_concession_is_bad_input():
    with pytest.raises(InvalidInput) as e:
        fares.bj_bus_fare("5", "downtown")
    assert e.value.field == "--area"
    with pytest.raises(InvalidInput) as e:
        fares.bj_bus_fare("5", "city", 30, "veteran")
    assert e.value.field == "--concession"


# ----------------------------------------------------------------------------- Tianjin bus

TJ_BUS = [  # full, age, free-ride function, line kind → fare, rule
    (200, 65, True, "regular", 0, "tj-bus.elderly-free-ride"),
    (150, 70, True, "regular", 0, "tj-bus.elderly-free-ride"),
    (100, 90, True, "regular", 0, "tj-bus.elderly-free-ride"),
    (201, 65, True, "regular", 201, "tj-bus.full"),  # the free ride covers lines of at most 2 yuan
    (300, 65, True, "regular", 300, "tj-bus.full"),
    (200, 65, False, "regular", 200, "tj-bus.full"),  # 65+, but the function is not enabled on the card
    (200, 64, True, "regular", 200, "tj-bus.full"),  # enabled a month early: free from the birthday
    (200, None, False, "regular", 200, "tj-bus.full"),
    (200, 30, False, "regular", 200, "tj-bus.full"),
    (200, 70, True, "commuter", 200, "tj-bus.full"),  # 通勤线路 are not in the free ride
    (200, 70, True, "custom", 200, "tj-bus.full"),  # nor 定制专线
]


@pytest.mark.parametrize(("full", "age", "enabled", "kind", "fen", "rule"), TJ_BUS)
def test_tianjin_bus_elderly_free_ride(full, age, enabled, kind, fen, rule):
    quote = fares.tj_bus_fare(full, age, enabled, kind, TJ_RULE)
    assert (quote.fare_fen, quote.full_fare_fen, quote.rule) == (fen, full, rule)


def test_without_a_rule_in_force_the_elderly_pay():
    assert fares.tj_bus_fare(200, 70, True, "regular", None).fare_fen == 200
    assert fares.bj_bus_fare("5", "city", 70, "elderly", None).fare_fen == 100


@pytest.mark.parametrize("bad", [0, -200, "200", None, True])
def test_a_tianjin_line_needs_a_positive_full_fare(bad):
    with pytest.raises(InvalidInput):
        fares.tj_bus_fare(bad)


# ----------------------------------------------------------------------------- Tianjin metro

TJ_METRO = [(0, 200), (1, 200), (4, 200), (5, 300), (9, 300), (10, 400), (15, 400), (16, 500), (40, 500)]


@pytest.mark.parametrize(("sections", "fen"), TJ_METRO)
def test_tianjin_metro_by_sections(sections, fen):
    quote = fares.tj_metro_fare(sections)
    assert (quote.fare_fen, quote.full_fare_fen, quote.rule) == (fen, fen, "tj-metro.sections")


def test_tianjin_metro_students_pay_seventy_percent():
    quote = fares.tj_metro_fare(10, "student")
    assert (quote.fare_fen, quote.full_fare_fen, quote.rule) == (280, 400, "tj-metro.student")


def test_tianjin_metro_takes_no_km():
    with pytest.raises(InvalidInput) as e:
        fares.quote("tj-metro", km="8")
    assert e.value.field == "--sections" and "sections" in e.value.message


@pytest.mark.parametrize("bad", [-1, 501, 2.5, "3", True])
def test_sections_are_a_small_whole_number(bad):
    with pytest.raises(InvalidInput):
        fares.tj_metro_full_fare(bad)


# ----------------------------------------------------------------------------- Hebei buses

HE_BUS = [
    ("he-sjz-bus", None, None, 100, 100, "he-sjz-bus.full"),
    ("he-sjz-bus", 200, None, 200, 200, "he-sjz-bus.full"),
    ("he-sjz-bus", 200, "student", 100, 200, "he-sjz-bus.student"),
    ("he-sjz-bus", 150, "student", 75, 150, "he-sjz-bus.student"),
    ("he-sjz-bus", 100, "elderly", 100, 100, "he-sjz-bus.full"),  # Tianjin's free ride is not Hebei's
    ("he-lf-bus", None, None, 100, 100, "he-lf-bus.full"),
    ("he-lf-bus", 200, "student", 100, 200, "he-lf-bus.student"),
]


@pytest.mark.parametrize(("operator", "full", "concession", "fen", "full_fen", "rule"), HE_BUS)
def test_hebei_buses(operator, full, concession, fen, full_fen, rule):
    quote = fares.he_bus_fare(operator, full, concession)
    assert (quote.fare_fen, quote.full_fare_fen, quote.rule) == (fen, full_fen, rule)


def test_a_hebei_elder_pays_the_full_fare_with_the_social_security_card():
    quote = fares.quote("he-sjz-bus", holder_birth_date=date(1950, 1, 1), day=date(2025, 3, 1))
    assert quote.fare_fen == 100


# ----------------------------------------------------------------------------- rounding

ROUNDING = [(250, 50, 125), (250, 25, 63), (250, 80, 200), (255, 80, 204), (1, 50, 1), (3, 50, 2), (2, 25, 1),
            (1, 25, 0), (300, 25, 75), (0, 50, 0), (999, 70, 699), (101, 50, 51)]


@pytest.mark.parametrize(("full", "percent", "fen"), ROUNDING)
def test_a_percentage_is_rounded_half_up_to_the_fen(full, percent, fen):
    assert fares.pay_percent(full, percent) == fen


def test_a_discounted_odd_full_fare_rounds_half_up():
    assert fares.quote("he-sjz-bus", full_fare_fen=125, concession="student").fare_fen == 63  # 62.5
    assert fares.quote("tj-bus", full_fare_fen=250).fare_fen == 250


# ----------------------------------------------------------------------------- ages on the day of travel

BIRTH = date(1960, 3, 20)
BIRTHDAYS = [  # day of travel → Beijing bus fare (14 km, elderly concession) and Tianjin bus fare (¥2 line, enabled)
    (date(2020, 3, 19), 150, 200),  # 59 on the eve of the 60th birthday
    (date(2020, 3, 20), 0, 200),  # Beijing's free bus from the 60th birthday; Tianjin's rule is not in force
    (date(2025, 3, 19), 0, 200),
    (date(2025, 3, 20), 0, 0),  # the 65th birthday changes the Tianjin fare from that day
    (date(2025, 3, 21), 0, 0),
    (date(2026, 1, 1), 0, 0),
]


@pytest.mark.parametrize(("day", "bj_fen", "tj_fen"), BIRTHDAYS)
def test_the_60th_and_65th_birthdays_change_the_fare_that_day(day, bj_fen, tj_fen):
    assert fares.quote("bj-bus", km="14", holder_birth_date=BIRTH, day=day, concession="elderly",
                   policy=POLICY).fare_fen == bj_fen
    assert fares.quote("tj-bus", full_fare_fen=200, holder_birth_date=BIRTH, day=day,
                   concession="elderly", policy=POLICY).fare_fen == tj_fen


def test_without_the_policy_no_elderly_rule_applies():
    assert fares.quote("bj-bus", km="14", holder_birth_date=BIRTH, day=date(2026, 1, 1), concession="elderly").fare_fen == 150
    assert fares.quote("tj-bus", full_fare_fen=200, holder_birth_date=BIRTH, day=date(2026, 1, 1),
                   concession="elderly").fare_fen == 200


LEAP = [(date(2025, 2, 28), 64), (date(2025, 3, 1), 65), (date(2024, 2, 28), 63), (date(2024, 2, 29), 64)]


@pytest.mark.parametrize(("day", "age"), LEAP)
def test_a_29_february_birthday_counts_from_1_march_in_common_years(day, age):
    assert fares.age_on(date(1960, 2, 29), day) == age


def test_an_age_needs_the_day_and_a_birth_before_it():
    with pytest.raises(InvalidInput) as e:
        fares.quote("bj-bus", km="3", holder_birth_date=BIRTH)
    assert e.value.field == "--date"
    with pytest.raises(InvalidInput):
        fares.quote("bj-bus", km="3", holder_birth_date=BIRTH, day=date(1959, 1, 1))


def test_the_elderly_free_ride_needs_the_holder():
    with pytest.raises(InvalidInput) as e:
        fares.quote("tj-bus", full_fare_fen=200, concession="elderly")
    assert e.value.field == "--holder-id"


# ----------------------------------------------------------------------------- the quote itself


def test_quote_dispatches_and_refuses_unknown_operators():
    assert fares.quote("bj-subway", km="7").fare_fen == 400
    assert fares.quote("bj-bus", km="7", area="suburb").fare_fen == 160
    assert fares.quote("tj-metro", sections=3).fare_fen == 200
    assert fares.quote("tj-bus").full_fare_fen == fares.TJ_BUS_BASE_FEN
    with pytest.raises(InvalidInput) as e:
        fares.quote("sh-metro", km="3")
    assert e.value.field == "--operator"
    with pytest.raises(InvalidInput) as e:
        fares.quote("bj-subway")
    assert e.value.field == "--km"


def test_a_quote_is_never_more_than_its_full_fare_and_serialises_with_stable_keys():
    quote = fares.quote("bj-bus", km="12", concession="student")
    assert quote.to_json() == {"fare_fen": 75, "full_fare_fen": 300, "rule": "bj-bus.student-city",
                               "description": quote.description,  # the pure rule alone cites nothing:
                               "source": [], "confidence": "illustrative", "illustrative": True}
    with pytest.raises(ValueError):
        fares.FareQuote(301, 300, "x")
