"""Money is int fen; yuan text is parsed strictly and formatted only at the edges."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbcard.domain.errors import InvalidInput
from sbcard.domain.money import MAX_FEN, fen_to_yuan_str, format_fen, parse_yuan


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.30", 1230),
        ("12.3", 1230),
        ("12", 1200),
        ("0.01", 1),
        ("0", 0),
        ("0.00", 0),
        ("007.5", 750),
        ("¥12.30", 1230),
        ("￥12.30", 1230),  # the full-width yuan sign Chinese input methods type
        (" 12.30 ", 1230),
        ("92233720368547758.07", MAX_FEN),
    ],
)
def test_parse_yuan_reads_digits_with_up_to_two_decimals(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("", "amount.empty", "no amount given"),
        (" ", "amount.empty", "no amount given"),
        ("¥", "amount.empty", "no digits"),
        ("12.345", "amount.decimals", "more than 2 decimal places"),
        ("0.001", "amount.decimals", "more than 2 decimal places"),
        ("-1", "amount.negative", "must not be negative"),
        ("¥-1", "amount.negative", "must not be negative"),
        ("1e3", "amount.format", "exponent notation"),
        ("1E-2", "amount.format", "exponent notation"),
        ("NaN", "amount.not_a_number", "write a number"),
        ("inf", "amount.not_a_number", "write a number"),
        ("-inf", "amount.negative", "must not be negative"),
        ("1,000", "amount.format", "thousands separators"),
        ("1_000", "amount.format", "thousands separators"),
        ("1 000", "amount.format", "no spaces"),
        ("12.", "amount.format", "digits are needed after the decimal point; write 12"),
        (".5", "amount.format", "a digit is needed before the decimal point; write 0.5"),
        (".", "amount.format", "at most 2 decimals"),
        ("1.2.3", "amount.format", "more than one decimal point"),
        ("+3", "amount.format", "no '+' sign"),
        ("0x10", "amount.format", "hexadecimal"),
        ("１２", "amount.format", "ASCII digits"),
        ("12.3０", "amount.format", "ASCII digits"),
        ("12元", "amount.format", "at most 2 decimals"),
        ("abc", "amount.format", "at most 2 decimals"),
        ("92233720368547758.08", "amount.too_large", "too large"),
        ("9" * 5000, "amount.too_large", "too large"),
    ],
)
def test_parse_yuan_refuses_with_the_reason(text, code, reason):
    with pytest.raises(InvalidInput) as exc:
        parse_yuan(text)
    assert exc.value.code == code
    assert exc.value.field == "amount"
    assert reason in exc.value.message


def test_the_refusal_quotes_what_was_typed():
    with pytest.raises(InvalidInput, match=r"'¥1,000' is not an amount in yuan"):
        parse_yuan("¥1,000")


def test_the_refusal_names_the_callers_field():
    with pytest.raises(InvalidInput) as exc:
        parse_yuan("12.345", field="subsidy_amount")
    assert exc.value.field == "subsidy_amount"


@pytest.mark.parametrize(("text", "fen"), [("-1", -100), ("-0.05", -5), ("-¥12.30", -1230), ("12", 1200)])
def test_negative_amounts_only_when_allowed(text, fen):
    assert parse_yuan(text, allow_negative=True) == fen


@pytest.mark.parametrize("text", ["--1", "¥-1", "- 1"])
def test_a_minus_sign_goes_once_at_the_start_even_when_allowed(text):
    with pytest.raises(InvalidInput):
        parse_yuan(text, allow_negative=True)


def test_parse_yuan_refuses_a_float():
    with pytest.raises(InvalidInput):
        parse_yuan(12.3)


@pytest.mark.parametrize(
    ("fen", "text", "shown"),
    [
        (1230, "12.30", "¥12.30"),
        (1, "0.01", "¥0.01"),
        (0, "0.00", "¥0.00"),
        (-5, "-0.05", "-¥0.05"),
        (-1230, "-12.30", "-¥12.30"),
        (123456789, "1234567.89", "¥1234567.89"),
    ],
)
def test_formatting_fen(fen, text, shown):
    assert fen_to_yuan_str(fen) == text
    assert format_fen(fen) == shown


@pytest.mark.parametrize("bad", [12.3, True, "1230", None])
def test_formatting_accepts_only_int_fen(bad):
    with pytest.raises(TypeError):
        format_fen(bad)
    with pytest.raises(TypeError):
        fen_to_yuan_str(bad)


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_parse_yuan_reads_back_what_fen_to_yuan_str_wrote(fen):
    assert parse_yuan(fen_to_yuan_str(fen)) == fen


@given(st.integers(min_value=-MAX_FEN, max_value=MAX_FEN))
def test_signed_amounts_round_trip_through_the_human_format(fen):
    assert parse_yuan(format_fen(fen), allow_negative=True) == fen
