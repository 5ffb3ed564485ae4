"""Masking personal data for logs and human output: it never reveals the middle."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbcard.domain.masking import mask_citizen_id, mask_middle, mask_name, mask_phone


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三", "张*"), ("欧阳娜娜", "欧***"), ("李小明", "李**"), ("王", "王"), ("", ""), ("张三  ", "张*")],
)
def test_mask_name_keeps_the_first_character(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("320223195302147992", "320223********7992"),
        ("12010419591231002X", "120104********002X"),
        ("320223195302147993", "320223********7993"),  # invalid IDs are masked too
        (" 320223195302147992 ", "320223********7992"),
        ("320223530214799", "32***********99"),  # an old 15-digit ID
        ("12345", "12*45"),
        ("1234", "****"),
        ("", ""),
    ],
)
def test_mask_citizen_id(text, masked):
    assert mask_citizen_id(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [("13812345678", "138****5678"), ("022-23456789", "022*****6789"), ("1234567", "*******"), ("", "")],
)
def test_mask_phone_keeps_first_three_and_last_four(text, masked):
    assert mask_phone(text) == masked


@given(st.text(min_size=0, max_size=40).map(str.strip), st.integers(0, 6), st.integers(0, 6))
def test_mask_middle_keeps_the_length_and_hides_all_but_the_ends(text, head, tail):
    masked = mask_middle(text, head, tail)
    assert len(masked) == len(text)
    if len(text) <= head + tail:
        assert masked == "*" * len(text)
    else:
        assert masked[head : len(text) - tail] == "*" * (len(text) - head - tail)


@given(st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True))
def test_a_masked_citizen_id_hides_exactly_the_birth_date(text):
    masked = mask_citizen_id(text)
    assert masked[6:14] == "********"
    assert masked[:6] + masked[14:] == text[:6] + text[14:]


@given(st.text(alphabet="0123456789X", min_size=1, max_size=30))
def test_a_masked_citizen_id_of_any_length_hides_at_least_its_middle(text):
    masked = mask_citizen_id(text)
    assert len(masked) == len(text)
    middle = slice(6, 14) if len(text) == 18 else slice(2, len(text) - 2)
    assert set(masked[middle]) <= {"*"}
