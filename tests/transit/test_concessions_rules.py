"""Concessions, pure: who may have one, from when, and the EF 0017 bytes."""

from __future__ import annotations

from datetime import date

import pytest

from sbcard.chip import profile
from sbcard.domain import concessions
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.reference.transit import load_concession_policy

POLICY = load_concession_policy()  # fixtures/transit/concessions.csv

TJ_ELDER = CitizenId("120103196003200024")  # born 1960-03-20: 65 on 2025-03-20
TJ_LEAP = CitizenId("120103196002290013")  # born 1960-02-29: 65 on 2025-03-01 (a common year)
TJ_MARCH31 = CitizenId("120103196103310028")  # born 1961-03-31: 65 on 2026-03-31
BJ_ELDER = CitizenId("110105195001011234")

# ----------------------------------------------------------------------------- from when

FROM = [(TJ_ELDER, date(2025, 2, 20)), (TJ_LEAP, date(2025, 2, 1)), (TJ_MARCH31, date(2026, 2, 28))]


@pytest.mark.parametrize(("citizen", "first"), FROM)
def test_the_free_ride_may_be_enabled_one_month_before_the_65th_birthday(citizen, first):
    assert concessions.elderly_free_ride_from(citizen) == first


ENABLE = [  # day → allowed
    (date(2025, 2, 19), False),
    (date(2025, 2, 20), True),
    (date(2025, 3, 19), True),
    (date(2025, 3, 20), True),
    (date(2030, 1, 1), True),
]


@pytest.mark.parametrize(("today", "allowed"), ENABLE)
def test_enabling_the_elderly_free_ride_on_a_tianjin_card(today, allowed):
    if allowed:
        granted = concessions.grant("elderly", citizen_id=TJ_ELDER, card_region="120000", today=today, policy=POLICY)
        assert (granted.kind, granted.region, granted.start, granted.end, granted.status) == (
            concessions.ELDERLY_FREE_RIDE, "120000", today, None, concessions.ENABLED)
    else:
        with pytest.raises(RuleRefused) as e:
            concessions.grant("elderly", citizen_id=TJ_ELDER, card_region="120000", today=today, policy=POLICY)
        assert e.value.code == "concession.too_young" and "2025-02-20" in e.value.message


def test_a_beijing_card_gets_beijings_concession_and_a_hebei_card_none():
    granted = concessions.grant("elderly", citizen_id=BJ_ELDER, card_region="110000", today=date(2025, 3, 1), policy=POLICY,
                      residence="hukou", household_region="110105")
    assert (granted.kind, granted.region) == (concessions.BJ_ELDERLY_FREE_BUS, "110000")
    with pytest.raises(RuleRefused) as e:  # a Tianjin-born holder with a Hebei card: the card decides
        concessions.grant("elderly", citizen_id=TJ_ELDER, card_region="130100", today=date(2025, 3, 20), policy=POLICY)
    assert e.value.code == "concession.no_elderly_rule" and "敬老卡" in e.value.message
    with pytest.raises(RuleRefused) as e:  # the stored name of the other region's kind
        concessions.grant("elderly_free_ride", citizen_id=BJ_ELDER, card_region="110000", today=date(2025, 3, 1),
                policy=POLICY, residence="hukou", household_region="110105")
    assert e.value.code == "concession.wrong_region"


def test_the_free_ride_has_no_end_date():
    with pytest.raises(InvalidInput) as e:
        concessions.grant("elderly", citizen_id=TJ_ELDER, card_region="120000", today=date(2025, 3, 20), until=date(2026, 1, 1),
                policy=POLICY)
    assert e.value.field == "--until"


STUDENT = [  # until → ok
    (None, False), (date(2025, 3, 1), False), (date(2025, 3, 2), True), (date(2026, 3, 2), True),
    (date(2026, 3, 3), False),
]


@pytest.mark.parametrize(("until", "ok"), STUDENT)
def test_a_student_ticket_has_an_end_date_at_most_a_year_ahead(until, ok):
    today = date(2025, 3, 1)
    if ok:
        granted = concessions.grant("student", citizen_id=BJ_ELDER, card_region="110000", today=today, until=until)
        assert (granted.kind, granted.region, granted.start, granted.end) == (concessions.STUDENT, "110000", today, until)
    else:
        with pytest.raises(InvalidInput) as e:
            concessions.grant("student", citizen_id=BJ_ELDER, card_region="110000", today=today, until=until)
        assert e.value.field == "--until"


def test_a_hebei_student_ticket_applies_in_the_whole_province():
    granted = concessions.grant("student", citizen_id=BJ_ELDER, card_region="130100", today=date(2025, 3, 1),
                      until=date(2025, 7, 1))
    assert granted.region == "130000"
    assert granted.applies("131000", date(2025, 5, 1)) and not granted.applies("120000", date(2025, 5, 1))


def test_an_unknown_kind_is_bad_input():
    with pytest.raises(InvalidInput) as e:
        concessions.card_kind("veteran")
    assert e.value.field == "--kind"
    assert concessions.card_kind("elderly") == concessions.ELDERLY and concessions.card_kind("student") == concessions.STUDENT
    assert concessions.card_kind("bj_elderly_free_bus") == concessions.BJ_ELDERLY_FREE_BUS


# ----------------------------------------------------------------------------- where and when it applies

APPLIES = [  # operator region, day, status → applies
    ("120000", date(2025, 3, 1), concessions.ENABLED, True),
    ("120000", date(2025, 2, 28), concessions.ENABLED, False),  # before its start
    ("110000", date(2025, 3, 1), concessions.ENABLED, False),  # a Tianjin concession on a Beijing bus
    ("120000", date(2025, 3, 1), concessions.LOCKED, False),
]


@pytest.mark.parametrize(("region", "day", "status", "applies"), APPLIES)
def test_a_concession_applies_in_its_province_while_enabled(region, day, status, applies):
    card = concessions.CardConcession(concessions.ELDERLY_FREE_RIDE, "120000", date(2025, 3, 1), None, status)
    assert card.applies(region, day) is applies
    assert concessions.fare_concession(card, region, day) == ("elderly" if applies else None)


def test_a_student_ticket_applies_to_its_last_day():
    card = concessions.CardConcession(concessions.STUDENT, "110000", date(2025, 3, 1), date(2025, 7, 15))
    assert concessions.fare_concession(card, "110000", date(2025, 7, 15)) == "student"
    assert concessions.fare_concession(card, "110000", date(2025, 7, 16)) is None
    assert concessions.fare_concession(None, "110000", date(2025, 7, 1)) is None


# ----------------------------------------------------------------------------- EF 0017

ELDERLY = concessions.CardConcession(concessions.ELDERLY_FREE_RIDE, "120000", date(2025, 2, 20))


def test_the_0017_layout_byte_by_byte():
    data = concessions.encode_0017(ELDERLY)
    assert len(data) == 64
    assert data[:14].hex().upper() == "01" "02" "120000" "20250220" "00000000" "01"
    assert data[14:] == bytes(50)
    student = concessions.encode_0017(concessions.CardConcession(concessions.STUDENT, "110000", date(2025, 3, 1), date(2025, 7, 15), concessions.LOCKED))
    assert student[:14].hex().upper() == "01" "01" "110000" "20250301" "20250715" "02"
    beijing = concessions.encode_0017(concessions.CardConcession(concessions.BJ_ELDERLY_FREE_BUS, "110000", date(2025, 3, 10)))
    assert beijing[:14].hex().upper() == "01" "03" "110000" "20250310" "00000000" "01"


def test_the_layout_agrees_with_the_chip_profile():
    assert concessions.EF0017_LEN == profile.TU_MANAGEMENT_LEN
    assert (concessions.OFF_VERSION, concessions.OFF_TYPE, concessions.OFF_REGION, concessions.OFF_START, concessions.OFF_END, concessions.OFF_STATUS) == (
        profile.MGMT_OFF_VERSION, profile.MGMT_OFF_CONCESSION, profile.MGMT_OFF_REGION, profile.MGMT_OFF_START, profile.MGMT_OFF_END,
        profile.MGMT_OFF_STATUS)
    assert concessions.EF0017_VERSION == profile.MGMT_VERSION
    assert (concessions.TYPE_CODES[concessions.NONE], concessions.TYPE_CODES[concessions.STUDENT], concessions.TYPE_CODES[concessions.ELDERLY_FREE_RIDE],
            concessions.TYPE_CODES[concessions.BJ_ELDERLY_FREE_BUS]) == (
        profile.CONCESSION_NONE, profile.CONCESSION_STUDENT, profile.CONCESSION_ELDERLY, profile.CONCESSION_BJ_ELDERLY)
    assert (concessions.STATUS_CODES[concessions.ENABLED], concessions.STATUS_CODES[concessions.LOCKED]) == (profile.CONCESSION_ENABLED, profile.CONCESSION_LOCKED)


@pytest.mark.parametrize("card", [
    ELDERLY,
    concessions.CardConcession(concessions.ELDERLY_FREE_RIDE, "120000", date(2025, 2, 20), None, concessions.LOCKED),
    concessions.CardConcession(concessions.STUDENT, "130000", date(2025, 9, 1), date(2026, 7, 31)),
    concessions.CardConcession(concessions.BJ_ELDERLY_FREE_BUS, "110000", date(2025, 3, 10)),
    concessions.CardConcession(concessions.BJ_ELDERLY_FREE_BUS, "110000", date(2025, 3, 10), date(2027, 3, 9), concessions.LOCKED),
])
def test_encode_and_decode_round_trip(card):
    assert concessions.decode_0017(concessions.encode_0017(card)) == card


def test_no_concession_is_all_zeros():
    assert concessions.encode_0017(None) == bytes(64)
    assert concessions.decode_0017(bytes(64)) is None
    assert concessions.decode_0017(bytes([1, 0]) + bytes(62)) is None  # version 01, type 00 none


def _with(offset: int, value: bytes) -> bytes:
    data = bytearray(concessions.encode_0017(ELDERLY))
    data[offset:offset + len(value)] = value
    return bytes(data)


@pytest.mark.parametrize("data", [
    bytes(63),
    _with(0, b"\x02"),  # unknown version
    _with(1, b"\x07"),  # unknown type
    _with(13, b"\x09"),  # unknown status
    _with(2, b"\x1A\x00\x00"),  # region not BCD
    _with(5, bytes.fromhex("20251340")),  # no such date
    _with(9, bytes.fromhex("20250101")),  # ends before it starts
    _with(40, b"\x01"),  # reserved bytes not zero
])
def test_a_layout_this_project_did_not_write_is_refused(data):
    with pytest.raises(InvalidInput) as e:
        concessions.decode_0017(data)
    assert e.value.code == "concession.layout"
