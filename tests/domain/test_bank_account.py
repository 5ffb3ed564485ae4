"""The card's financial account number: 16-19 digits with a Luhn check digit."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbcard.domain.bank_account import BankAccount, luhn_check_digit
from sbcard.domain.errors import InvalidInput


@pytest.mark.parametrize(
    ("body", "digit"),
    [
        ("7992739871", "3"),  # the textbook example 79927398713
        ("453201511283036", "6"),
        ("621700123456789012", "2"),
        ("0", "0"),
    ],
)
def test_luhn_check_digit(body, digit):
    assert luhn_check_digit(body) == digit


@pytest.mark.parametrize("text", ["4532015112830366", "6217001234567890122", "6228480012345671", "62284800123456717"])
def test_valid_numbers_of_16_to_19_digits_parse(text):
    assert BankAccount.parse(text).value == text


def test_parse_ignores_groups_of_four():
    assert BankAccount.parse("4532 0151 1283 0366").value == "4532015112830366"


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("", "bank_account.empty", "no account number"),
        ("453201511283036", "bank_account.length", "16 to 19 digits, got 15"),
        ("45320151128303660000", "bank_account.length", "16 to 19 digits, got 20"),
        ("4532015112830367", "bank_account.check_digit", "should be '6', got '7'"),
        ("4532-0151-1283-0366", "bank_account.format", "digits 0-9 only"),
        ("４532015112830366", "bank_account.format", "digits 0-9 only"),
    ],
)
def test_parse_refuses_with_the_reason(text, code, reason):
    with pytest.raises(InvalidInput) as exc:
        BankAccount.parse(text)
    assert exc.value.code == code
    assert exc.value.field == "bank_account"
    assert reason in exc.value.message


def test_make_appends_the_luhn_digit_to_bin_and_body():
    assert BankAccount.make("621700", "123456789012").value == "6217001234567890122"


def test_make_refuses_a_result_of_the_wrong_length():
    with pytest.raises(InvalidInput, match="16 to 19"):
        BankAccount.make("621700", "1234")


def test_masked_keeps_the_bin_and_last_four_and_the_length():
    assert BankAccount.parse("6217001234567890122").masked() == "621700*********0122"


@given(st.from_regex(r"[0-9]{15,18}", fullmatch=True))
def test_a_number_made_from_any_body_parses(body):
    account = BankAccount.make(body[:6], body[6:])
    assert BankAccount.parse(account.value) == account


@given(st.from_regex(r"[0-9]{15,18}", fullmatch=True), st.data())
def test_any_single_digit_typo_is_caught(body, data):
    number = body + luhn_check_digit(body)
    i = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    typo = data.draw(st.sampled_from([d for d in "0123456789" if d != number[i]]))
    with pytest.raises(InvalidInput):
        BankAccount.parse(number[:i] + typo + number[i + 1 :])
