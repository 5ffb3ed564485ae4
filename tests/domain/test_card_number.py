"""The card number: 8 body characters and a check character; strict for new numbers only."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbcard.domain.card_number import CardNumber, compute_check_char
from sbcard.domain.errors import InvalidInput

BODY_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.mark.parametrize("text", ["188347080", "B7K334774", "KD5578904", "12000003X", "000000000"])
def test_valid_numbers_parse_strictly(text):
    number = CardNumber.parse(text)
    assert number.value == text
    assert number.check_ok
    assert number.warning is None


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("18834708", "0"),  # r = 11 → '0'
        ("B7K33477", "4"),
        ("KD557890", "4"),
        ("12000003", "X"),  # r = 10 → 'X'
        ("A0000001", "1"),  # A counts 10
        ("ZZZZZZZZ", "3"),  # Z counts 35
    ],
)
def test_compute_check_char(body, check):
    assert compute_check_char(body) == check


def test_parse_normalises_case_and_spaces():
    assert CardNumber.parse(" kd557 8904 ").value == "KD5578904"


def test_from_body_appends_the_check_char():
    assert CardNumber.from_body("B7K33477").value == "B7K334774"


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("", "card_number.empty", "no card number"),
        ("18834708", "card_number.length", "9 characters, got 8"),
        ("1883470800", "card_number.length", "9 characters, got 10"),
        ("18834708-", "card_number.format", "0-9 and A-Z only"),
        ("１88347080", "card_number.format", "0-9 and A-Z only"),
        ("188347081", "card_number.check_char", "check character should be '0', got '1'"),
        ("B7K33477X", "card_number.check_char", "check character should be '4', got 'X'"),
    ],
)
def test_strict_parse_refuses_with_the_reason(text, code, reason):
    with pytest.raises(InvalidInput) as exc:
        CardNumber.parse(text)
    assert exc.value.code == code
    assert exc.value.field == "card_number"
    assert reason in exc.value.message


def test_a_number_read_from_a_card_that_fails_its_check_is_kept_with_a_warning():
    number = CardNumber.parse("188347081", strict=False)
    assert number.value == "188347081"
    assert not number.check_ok
    assert number.warning == "check character should be '0', got '1'"


def test_a_number_read_from_a_card_must_still_be_well_formed():
    with pytest.raises(InvalidInput, match="9 characters"):
        CardNumber.parse("18834708", strict=False)


def test_body_and_check_char_are_the_two_parts():
    number = CardNumber.parse("KD5578904")
    assert (number.body, number.check_char) == ("KD557890", "4")


@pytest.mark.parametrize("bad", ["1883470", "188347080", "1883470a", "1883470-"])
def test_compute_check_char_needs_8_upper_case_body_chars(bad):
    with pytest.raises(InvalidInput):
        compute_check_char(bad)


bodies = st.text(alphabet=BODY_CHARS, min_size=8, max_size=8)


@given(bodies)
def test_a_number_made_from_any_body_passes_strict_parsing(body):
    assert CardNumber.parse(CardNumber.from_body(body).value).check_ok


@given(bodies)
def test_the_check_char_is_a_digit_or_x(body):
    assert compute_check_char(body) in "0123456789X"


@given(bodies, st.sampled_from(BODY_CHARS))
def test_changing_one_body_char_changes_the_check_char_or_is_caught(body, replacement):
    # Weights 3 7 9 10 5 8 4 2 are all prime to 11, but letters reach 35: a change by a
    # multiple of 11 (e.g. 0 → B) keeps the sum; everything else is detected.
    changed = replacement + body[1:]
    same_mod = (BODY_CHARS.index(replacement) - BODY_CHARS.index(body[0])) % 11 == 0
    assert (compute_check_char(changed) == compute_check_char(body)) == same_mod
