"""Field encodings on the card: BCD dates and times, GBK names."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from sbcard.chip import codec
from sbcard.domain.errors import InvalidInput

H = bytes.fromhex


def test_dates_are_four_bcd_bytes():
    assert codec.bcd_date(dt.date(2024, 2, 29)) == H("20240229")
    assert codec.parse_bcd_date(H("20240229")) == dt.date(2024, 2, 29)


def test_date_time_is_seven_bcd_bytes():
    moment = dt.datetime(2025, 1, 9, 7, 5, 3)
    assert codec.bcd_time(moment) == H("070503")
    assert codec.bcd_datetime(moment) == H("20250109070503")
    assert codec.parse_bcd_datetime(H("20250109070503")) == moment


def test_a_nibble_above_9_is_not_bcd():
    with pytest.raises(ValueError):
        codec.from_bcd(H("1A"))


@pytest.mark.parametrize("raw", ["2023022A", "20230230", "20231301"])
def test_a_bcd_date_that_is_not_a_date_is_refused(raw):
    with pytest.raises(ValueError):
        codec.parse_bcd_date(H(raw))


def test_bcd_packs_two_digits_per_byte():
    assert codec.to_bcd("0310") == H("0310")
    assert codec.from_bcd(H("0310")) == "0310"


@pytest.mark.parametrize("digits", ["123", "12a4", "１２", ""])
def test_bcd_takes_a_nonempty_even_number_of_ascii_digits(digits):
    with pytest.raises(ValueError):
        codec.to_bcd(digits)


def test_names_are_gbk_padded_with_spaces_to_30_bytes():
    raw = codec.encode_name("张三")
    assert raw == H("D5C5C8FD") + b" " * 26
    assert codec.decode_name(raw) == "张三"


def test_surrounding_spaces_are_not_part_of_the_name():
    assert codec.encode_name("  李娜 ") == codec.encode_name("李娜")


def test_fifteen_chinese_characters_fill_the_field_exactly():
    name = "欧" * 15
    assert codec.encode_name(name) == name.encode("gbk")


def _refusal(name: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        codec.encode_name(name)
    assert caught.value.field == "name"
    return caught.value


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_is_refused(name):
    assert _refusal(name).code == "name.empty"


def test_sixteen_chinese_characters_are_too_long():
    error = _refusal("欧" * 16)
    assert error.code == "name.too_long"
    assert "32 GBK bytes" in error.message and "30" in error.message


def test_a_character_outside_gbk_is_refused_with_the_rule_stated():
    error = _refusal("张𠀀")
    assert error.code == "name.not_gbk"
    assert "U+20000" in error.message
    assert "nearest GBK character" in error.message


def test_text_fields_are_ascii_padded():
    assert codec.encode_text("3.00", 4) == b"3.00"
    assert codec.encode_text("3", 4) == b"3   "
    assert codec.decode_text(b"3   ") == "3"
    with pytest.raises(ValueError):
        codec.encode_text("12345", 4)


def test_date_time_digits_are_strftime_s():
    rng = random.Random(3)
    for _ in range(2000):
        moment = dt.datetime(rng.randint(1000, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                             rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999))
        assert codec.bcd_datetime(moment) == codec.to_bcd(moment.strftime("%Y%m%d%H%M%S"))
    aware = dt.datetime(2025, 3, 3, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert codec.bcd_datetime(aware) == H("20250303070000")


def test_date_digits_are_strftime_s():
    rng = random.Random(5)
    for _ in range(2000):
        day = dt.date(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28))
        if day.year >= 1000:
            assert codec.bcd_date(day) == codec.to_bcd(day.strftime("%Y%m%d"))
    assert codec.bcd_date(dt.datetime(2025, 3, 3, 23, 59)) == H("20250303")  # a moment's date
    with pytest.raises(ValueError):
        codec.bcd_date(dt.date(999, 1, 1))  # strftime's three digits: not BCD of a date
