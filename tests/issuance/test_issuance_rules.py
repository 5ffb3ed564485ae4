"""The pure rules of issuance: numbers, the PIN a holder may choose, who may apply."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.domain import allocation
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.card_number import CardNumber
from sbcard.domain.citizen_id import CitizenId, compute_check_char
from sbcard.domain.eligibility import ApplicationFacts, check_application
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.pin import RULE, check_new_pin

TODAY = dt.date(2024, 3, 1)


def cid(region: str, born: str, seq: str = "123") -> CitizenId:
    first17 = region + born + seq
    return CitizenId(first17 + compute_check_char(first17))


ADULT = cid("120103", "19800101")
GUARDIAN = cid("120103", "19850505", "224")

# ----------------------------------------------------------------------------- allocation


@pytest.mark.parametrize(
    "node, sequence, body",
    [("bj", 1, "B0000001"), ("tj", 42, "T0000042"), ("he", 9_999_999, "H9999999")],
)
def test_card_numbers_carry_the_issuer_letter_and_a_valid_check_character(node, sequence, body):
    number = allocation.card_number(node, sequence)
    assert number.body == body and number.check_ok
    assert CardNumber.parse(number.value) == number


def test_a_region_that_used_every_card_number_is_refused_not_wrapped():
    with pytest.raises(RuleRefused, match="all 7-digit values"):
        allocation.card_number("bj", 10_000_000)


@pytest.mark.parametrize(
    "province, prefecture, issuer",
    [("110000", None, "110000"), ("120000", None, "120000"), ("130000", "130100", "130100"),
     ("130000", None, "130000")],
)
def test_municipalities_issue_their_cards_and_hebei_cities_theirs(province, prefecture, issuer):
    assert allocation.issuing_region(province, prefecture) == issuer


@pytest.mark.parametrize(
    "region, sequence, serial",
    [("110000", 1, "03101000000000000001"), ("120000", 7, "03103000000000000007"),
     ("130600", 123, "03100710000000000123"), ("130000", 5, "03100500000000000005")],
)
def test_application_serials_are_0310_city_sequence(region, sequence, serial):
    assert allocation.app_serial(region, sequence) == serial


def test_card_id_code_is_region_rid_and_the_unique_bytes():
    code = allocation.card_id_code("120000", bytes.fromhex("0102030405060708"))
    assert code == CardIdCode("120000D1560000050102030405060708")
    with pytest.raises(InvalidInput):
        allocation.card_id_code("310000", bytes(8))  # Shanghai does not issue here


@pytest.mark.parametrize(
    "node, seq, text", [("tj", 1, "TJ-A-20240301-000001"), ("he", 1234567, "HE-A-20240301-1234567")]
)
def test_application_ids_name_their_node(node, seq, text):
    assert allocation.application_id(node, TODAY, seq) == text
    assert allocation.node_of_application(text.lower()) == node


@pytest.mark.parametrize("text", ["", "TJ-20240301-000001", "SH-A-20240301-000001", "TJ-A-2024031-000001"])
def test_malformed_application_ids_are_refused_naming_the_argument(text):
    with pytest.raises(InvalidInput) as e:
        allocation.node_of_application(text)
    assert e.value.field == "APPLICATION_ID"


# ----------------------------------------------------------------------------- PIN


@pytest.mark.parametrize("pin", ["147258", "902318", "000123", "112233"])
def test_ordinary_pins_are_accepted(pin):
    assert check_new_pin(pin, birth_date=dt.date(1980, 1, 1)) == pin


@pytest.mark.parametrize(
    "pin, code",
    [
        ("12345", "pin.format"), ("1234567", "pin.format"), ("12a456", "pin.format"),
        ("１２３４５６", "pin.format"),  # full-width digits are not digits here
        ("111111", "pin.trivial"), ("000000", "pin.trivial"),
        ("123456", "pin.trivial"), ("654321", "pin.trivial"), ("012345", "pin.trivial"),
        ("890123", "pin.trivial"), ("210987", "pin.trivial"),
        ("800101", "pin.trivial"), ("010180", "pin.trivial"),  # born 1980-01-01: YYMMDD, MMDDYY
    ],
)
def test_guessable_pins_are_refused_with_the_rule_and_without_the_pin(pin, code):
    with pytest.raises(InvalidInput) as e:
        check_new_pin(pin, birth_date=dt.date(1980, 1, 1))
    assert (e.value.code, e.value.field) == (code, "--pin")
    assert pin not in e.value.message.replace(RULE, "")  # the rule's own examples aside


# ----------------------------------------------------------------------------- eligibility


def facts(**changes) -> ApplicationFacts:
    values = dict(citizen_id=ADULT, today=TODAY, online=False, enrolled=True, photo_on_file=False)
    return ApplicationFacts(**(values | changes))


NEWBORN = cid("120103", "20231201", "225")
CHILD = cid("120103", "20150601", "226")


@pytest.mark.parametrize(
    "changes, kind",
    [
        ({}, "first"),
        ({"online": True, "photo_on_file": True}, "first"),
        ({"citizen_id": NEWBORN, "guardian_id": GUARDIAN, "guardian_recorded": True}, "newborn"),
        ({"citizen_id": NEWBORN, "guardian_id": GUARDIAN, "guardian_recorded": True, "online": True}, "newborn"),
        ({"citizen_id": CHILD, "guardian_id": GUARDIAN, "guardian_recorded": True}, "first"),
        ({"valid_card": "T0000001X", "replaces": "T0000001X"}, "replacement"),
    ],
)
def test_who_may_apply_and_the_kind_of_application(changes, kind):
    assert check_application(facts(**changes)) == kind


@pytest.mark.parametrize(
    "changes, code, field",
    [
        ({"enrolled": False}, "application.not_insured", "--citizen-id"),
        ({"open_application": "TJ-A-20240301-000001"}, "application.open", "--citizen-id"),
        ({"valid_card": "B0000001X"}, "application.card_held", "--citizen-id"),
        ({"valid_card": "B0000001X", "replaces": "B0000002X"}, "application.not_replaceable", "--citizen-id"),
        ({"citizen_id": CHILD}, "application.guardian_required", "--guardian-id"),
        ({"citizen_id": NEWBORN}, "application.guardian_required", "--guardian-id"),
        ({"citizen_id": CHILD, "guardian_id": GUARDIAN}, "application.guardian_unknown", "--guardian-id"),
        ({"citizen_id": NEWBORN, "guardian_id": CHILD, "guardian_recorded": True}, "application.guardian_minor",
         "--guardian-id"),
        ({"guardian_id": ADULT, "guardian_recorded": True}, "application.guardian_self", "--guardian-id"),
        ({"online": True}, "application.photo_required", "--online"),
    ],
)
def test_applications_the_rules_refuse(changes, code, field):
    with pytest.raises((RuleRefused, InvalidInput)) as e:
        check_application(facts(**changes))
    assert (e.value.code, e.value.field) == (code, field)


def test_the_newborn_bundle_ends_on_the_first_birthday():
    born = cid("120103", "20230301", "227")
    base = dict(citizen_id=born, guardian_id=GUARDIAN, guardian_recorded=True, online=True)
    assert check_application(facts(**base, today=dt.date(2024, 2, 29))) == "newborn"
    with pytest.raises(RuleRefused, match="photo"):
        check_application(facts(**base, today=dt.date(2024, 3, 1)))
