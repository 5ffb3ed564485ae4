"""The elderly transit concessions as data (issue 16, items 2 and 3): who gets them, from when, where.

Beijing: free ground buses within Beijing from **60**, for Beijing 户籍 or 居住证 holders with the
elderly concession (on a Beijing card's EF 0017, type 03). Tianjin: free regular lines of ¥2 or
less from **65**, from the rule's start on **2023-11-01**. Rules come from
``fixtures/transit/concessions.csv``; the same-treatment switch (同城待遇) is off there.
"""

from __future__ import annotations

import copy
from datetime import date

import attrs
import pytest

from sbcard.domain import concessions
from sbcard.domain import fares
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import RuleRefused
from sbcard.reference.transit import load_concession_policy, load_tariff

POLICY = load_concession_policy()
BJ = next(r for r in POLICY.rules if r.id == "bj-elderly-bus")
TJ = next(r for r in POLICY.rules if r.id == "tj-elderly-bus")

BJ_60_ON_2025_03_10 = CitizenId("110105196503100020")  # born 1965-03-10, Beijing
BJ_LEAP = CitizenId("110102196402290057")  # born 1964-02-29: 60 on 2024-02-29 (a leap year)
BJ_75 = CitizenId("110105195001011234")
TJ_65_ON_2025_03_20 = CitizenId("120103196003200024")
TJ_LEAP = CitizenId("120103196002290013")  # born 1960-02-29: 65 on 2025-03-01 (a common year)
TJ_70 = CitizenId("12010319581120001X")  # born 1958-11-20
HE_70 = CitizenId("130102195501010013")


def _with_switch(on: bool, policy: concessions.ConcessionPolicy = POLICY) -> concessions.ConcessionPolicy:
    return concessions.ConcessionPolicy(tuple(attrs.evolve(r, same_treatment=on) if r.id == BJ.id else r for r in policy.rules))


# ----------------------------------------------------------------------------- the data


def test_the_policy_holds_each_regions_rule_as_published():
    assert (BJ.min_age, BJ.operators, BJ.areas, BJ.residence, BJ.card_regions, BJ.enable_ahead) == (
        60, ("bj-bus",), ("city",), ("hukou", "permit"), ("110000",), "none")
    assert (TJ.min_age, TJ.operators, TJ.start, TJ.max_full_fare_fen, TJ.line_kinds, TJ.enable_ahead) == (
        65, ("tj-bus",), date(2023, 11, 1), 200, ("regular",), "one_month")
    assert BJ.same_treatment is False and TJ.same_treatment is False  # 同城待遇: off by default
    assert BJ.card_kind == concessions.BJ_ELDERLY_FREE_BUS and TJ.card_kind == concessions.ELDERLY_FREE_RIDE
    assert TJ.provenance.confidence == "official" and {s.id for s in TJ.provenance.sources} >= {"tj-elderly-bus-2023"}
    assert BJ.provenance.confidence == "secondary"  # the age and who: official; the start day: reported


# ----------------------------------------------------------------------------- granting Beijing's


BJ_GRANT = [  # holder, today → refusal code (None: granted)
    (BJ_60_ON_2025_03_10, date(2025, 3, 9), "concession.too_young"),  # the eve of the 60th birthday
    (BJ_60_ON_2025_03_10, date(2025, 3, 10), None),  # the birthday itself: not ahead of it
    (BJ_LEAP, date(2024, 2, 28), "concession.too_young"),
    (BJ_LEAP, date(2024, 2, 29), None),  # 60 years after a leap year is a leap year
    (BJ_75, date(2016, 12, 31), "concession.not_in_force"),  # the project dates the rule 2017-01-01
    (BJ_75, date(2017, 1, 1), None),
]


@pytest.mark.parametrize(("holder", "today", "refused"), BJ_GRANT)
def test_beijings_elderly_concession_from_the_60th_birthday(holder, today, refused):
    grant = lambda: concessions.grant("elderly", citizen_id=holder, card_region="110000", today=today, policy=POLICY,  # noqa: E731
                            residence="hukou", household_region="110105")
    if refused:
        with pytest.raises(RuleRefused) as e:
            grant()
        assert e.value.code == refused
    else:
        granted = grant()
        assert (granted.kind, granted.region, granted.start, granted.end) == (
            concessions.BJ_ELDERLY_FREE_BUS, "110000", today, None)


RESIDENCE = [  # residence, where the holder lives → refusal code (None: granted)
    ("hukou", "110105", None),  # 户籍 in Beijing
    ("permit", "110108", None),  # a Beijing 居住证
    ("none", "110105", "concession.not_resident"),  # lives in Beijing with neither
    ("unknown", "110105", "concession.residence_unknown"),  # not recorded (before migration 13)
    (None, None, "concession.residence_unknown"),
    ("hukou", "120103", "concession.not_resident"),  # 户籍 in Tianjin, a Beijing card
    ("permit", "131002", "concession.not_resident"),  # a 居住证 of Hebei's 廊坊
]


@pytest.mark.parametrize(("residence", "lives_in", "refused"), RESIDENCE)
def test_beijings_concession_needs_beijing_hukou_or_a_beijing_residence_permit(residence, lives_in, refused):
    grant = lambda: concessions.grant("elderly", citizen_id=BJ_75, card_region="110000", today=date(2025, 3, 1),  # noqa: E731
                            policy=POLICY, residence=residence, household_region=lives_in)
    if refused:
        with pytest.raises(RuleRefused) as e:
            grant()
        assert e.value.code == refused and e.value.field == "residence"  # the registry's field
    else:
        assert grant().kind == concessions.BJ_ELDERLY_FREE_BUS


@pytest.mark.parametrize("residence", ["hukou", "permit", "none", "unknown", None])
def test_tianjins_free_ride_does_not_ask_for_residence(residence):
    granted = concessions.grant("elderly", citizen_id=TJ_65_ON_2025_03_20, card_region="120000", today=date(2025, 3, 20),
                      policy=POLICY, residence=residence, household_region="120103")
    assert granted.kind == concessions.ELDERLY_FREE_RIDE


TJ_GRANT = [  # holder, today → refusal code (None: granted)
    (TJ_70, date(2023, 10, 31), "concession.not_in_force"),  # the eve of the rule's start
    (TJ_70, date(2023, 11, 1), None),
    (TJ_LEAP, date(2025, 1, 31), "concession.too_young"),
    (TJ_LEAP, date(2025, 2, 1), None),  # one month before 2025-03-01
]


@pytest.mark.parametrize(("holder", "today", "refused"), TJ_GRANT)
def test_tianjins_free_ride_from_its_start_and_a_month_before_65(holder, today, refused):
    grant = lambda: concessions.grant("elderly", citizen_id=holder, card_region="120000", today=today, policy=POLICY)  # noqa: E731
    if refused:
        with pytest.raises(RuleRefused) as e:
            grant()
        assert e.value.code == refused
        if refused == "concession.not_in_force":
            assert "2023-11-01" in e.value.message
    else:
        assert grant().start == today


def test_a_rules_end_date_goes_onto_the_card():
    ending = concessions.ConcessionPolicy(tuple(attrs.evolve(r, end=date(2030, 12, 31)) for r in POLICY.rules))
    granted = concessions.grant("elderly", citizen_id=BJ_75, card_region="110000", today=date(2025, 3, 1), policy=ending,
                      residence="hukou", household_region="110105")
    assert granted.end == date(2030, 12, 31)
    assert concessions.decode_0017(concessions.encode_0017(granted)).end == date(2030, 12, 31)
    assert concessions.fare_concession(granted, "110000", date(2030, 12, 31)) == "elderly"
    assert concessions.fare_concession(granted, "110000", date(2031, 1, 1)) is None


# ----------------------------------------------------------------------------- fares

BJ_BUS = [  # birth, day, card concession → fare of 14 km within Beijing (card fare ¥1.50)
    (date(1965, 3, 10), date(2025, 3, 9), "elderly", 150),  # 59 on the eve
    (date(1965, 3, 10), date(2025, 3, 10), "elderly", 0),  # 60 on the day
    (date(1964, 2, 29), date(2024, 2, 28), "elderly", 150),
    (date(1964, 2, 29), date(2024, 2, 29), "elderly", 0),
    (date(1950, 1, 1), date(2025, 3, 1), None, 150),  # 75 without the concession: the card fare
    (date(1950, 1, 1), date(2016, 12, 31), "elderly", 150),  # before the rule's start
]


@pytest.mark.parametrize(("birth", "day", "concession", "fen"), BJ_BUS)
def test_beijing_bus_fares_by_age_on_the_day(birth, day, concession, fen):
    quote = fares.quote("bj-bus", km="14", holder_birth_date=birth, day=day, concession=concession, policy=POLICY)
    assert quote.fare_fen == fen and quote.full_fare_fen == 300


TJ_BUS = [  # birth, day → fare of a ¥2 regular line, free-ride function enabled
    (date(1958, 11, 20), date(2023, 10, 31), 200),  # 64 and the rule not yet in force
    (date(1950, 1, 1), date(2023, 10, 31), 200),  # 73, the eve of the rule's start: charged
    (date(1950, 1, 1), date(2023, 11, 1), 0),  # the start day: free
    (date(1960, 3, 20), date(2025, 3, 19), 200),  # the eve of the 65th birthday
    (date(1960, 3, 20), date(2025, 3, 20), 0),
    (date(1960, 2, 29), date(2025, 2, 28), 200),  # 29 February in a common year: 65 on 1 March
    (date(1960, 2, 29), date(2025, 3, 1), 0),
]


@pytest.mark.parametrize(("card_region", "fen"), [
    ("120000", 0),  # a Tianjin card with the free-ride function
    ("110000", 200),  # a Beijing card's elderly concession is Beijing's, not Tianjin's free ride
    ("130100", 200),  # a Hebei card: Hebei's elderly ride with the city's 敬老卡
])
def test_only_a_tianjin_card_carries_tianjins_free_ride(card_region, fen):
    quote = fares.quote("tj-bus", full_fare_fen=200, holder_birth_date=date(1950, 1, 1), day=date(2025, 6, 1),
                    concession="elderly", policy=POLICY, card_region=card_region)
    assert quote.fare_fen == fen
    assert ("not Tianjin's free ride" in quote.description) is (fen > 0)


@pytest.mark.parametrize(("birth", "day", "fen"), TJ_BUS)
def test_tianjin_bus_fares_from_the_rules_start_and_the_65th_birthday(birth, day, fen):
    quote = fares.quote("tj-bus", full_fare_fen=200, holder_birth_date=birth, day=day, concession="elderly",
                    policy=POLICY)
    assert quote.fare_fen == fen


SAME_TREATMENT = [  # card region, switch, age → fare of 5 km within Beijing (card fare ¥1.00)
    ("120000", False, 70, 100),  # a Tianjin holder on a Beijing bus pays the card fare
    ("130100", False, 70, 100),  # a Hebei one too
    ("120000", True, 70, 0),  # with the switch on: free by age
    ("131000", True, 60, 0),
    ("131000", True, 59, 100),  # but not before Beijing's age
    ("110000", True, 70, 100),  # a Beijing card still needs Beijing's concession
    (None, True, 70, 100),  # a card whose issuer is not known
]
# … and a card carrying its own region's elderly concession (Tianjin's free ride): not Beijing's
SAME_TREATMENT_WITH_OWN_CONCESSION = [("120000", False, 70, 100), ("120000", True, 70, 0), ("110000", False, 60, 0)]


@pytest.mark.parametrize(("card_region", "on", "age", "fen", "concession"),
                         [(*row, None) for row in SAME_TREATMENT]
                         + [(*row, "elderly") for row in SAME_TREATMENT_WITH_OWN_CONCESSION])
def test_other_regions_holders_on_a_beijing_bus_by_the_same_treatment_switch(card_region, on, age, fen, concession):
    day = date(2025, 6, 1)
    birth = date(day.year - age, 1, 1)
    quote = fares.quote("bj-bus", km="5", holder_birth_date=birth, day=day, policy=_with_switch(on),
                    card_region=card_region, concession=concession)
    assert quote.fare_fen == fen


def test_a_rules_end_date_ends_the_free_ride():
    ending = concessions.ConcessionPolicy(tuple(attrs.evolve(r, end=date(2030, 12, 31)) for r in POLICY.rules))
    fare = lambda day: fares.quote("bj-bus", km="5", holder_birth_date=date(1950, 1, 1), day=day,  # noqa: E731
                               concession="elderly", policy=ending).fare_fen
    assert (fare(date(2030, 12, 31)), fare(date(2031, 1, 1))) == (0, 100)


# ----------------------------------------------------------------------------- where the answer comes from

PROVENANCE = [  # operator, arguments → confidence, a source id cited (or None)
    ("bj-subway", {"km": "7"}, "official", "bj-fares-2014"),
    ("bj-subway", {"origin": "西直门", "destination": "东直门"}, "illustrative", "bj-fares-2014"),  # estimated km
    ("bj-bus", {"km": "14"}, "official", "bj-fares-2014"),
    ("bj-bus", {"km": "14", "holder_birth_date": date(1950, 1, 1), "day": date(2025, 3, 1),
                "concession": "elderly"}, "secondary", "bj-elderly-card-guide"),
    ("tj-metro", {"sections": 5}, "official", "tj-metro-fares"),
    ("tj-metro", {"sections": 5, "concession": "student"}, "illustrative", None),
    ("tj-bus", {"full_fare_fen": 200, "holder_birth_date": date(1950, 1, 1), "day": date(2025, 3, 1),
                "concession": "elderly"}, "official", "tj-elderly-bus-2023"),
    ("tj-bus", {"line": "13"}, "illustrative", None),  # the line's fare is the project's own
    ("he-sjz-bus", {}, "illustrative", None),
]


@pytest.mark.parametrize(("operator", "kw", "confidence", "cited"), PROVENANCE)
def test_each_quote_names_its_sources_and_confidence(operator, kw, confidence, cited):
    quote, _ = load_tariff().quote(operator, **kw)
    data = quote.to_json()
    assert data["confidence"] == confidence and data["illustrative"] is (confidence == "illustrative")
    if cited:
        assert cited in [s["id"] for s in data["source"]]


def test_the_tariff_with_the_switch_on_is_data_not_code():
    tariff = copy.copy(load_tariff())
    tariff.policy = _with_switch(True)
    quote, _ = tariff.quote("bj-bus", km="5", holder_birth_date=date(1950, 1, 1), day=date(2025, 3, 1),
                            card_region="120000")
    assert quote.fare_fen == 0 and "同城待遇" in quote.description
