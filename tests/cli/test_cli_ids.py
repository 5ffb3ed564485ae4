"""`sbcard ids check`: kind, validity, what the value encodes, and the exit code."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time

from sbcard.domain.citizen_id import compute_check_char

BORN_8_DEC_2026 = "11010520261208002" + compute_check_char("11010520261208002")  # a girl born in 朝阳区


@pytest.mark.parametrize(
    ("value", "kind", "valid"),
    [
        ("320223195302147992", "citizen_id", True),
        ("441522199106240088", "citizen_id", True),
        ("320223195302147993", "citizen_id", False),
        ("188347080", "card_number", True),
        ("B7K334774", "card_number", True),
        ("KD5578904", "card_number", True),
        ("KD5578905", "card_number", False),
        ("320200D156000005AD932A48BDC3B9E9", "card_id_code", True),
        ("120104", "region", True),
        ("hello", "unknown", False),
    ],
)
def test_ids_check_kind_validity_and_exit_code(sbcard, value, kind, valid):
    code, out, err, data = sbcard("ids", "check", value, "--json")
    assert data["kind"] == kind
    assert data["valid"] is valid
    assert code == (0 if valid else 2)
    if not valid:
        assert data["reason"]


def test_citizen_id_tells_birth_date_sex_and_region(sbcard):
    _, _, _, data = sbcard("ids", "check", "320223195302147992", "--json")
    assert data["birth_date"] == "1953-02-14"
    assert data["sex"] == "M"
    assert data["region"] == "320223"


def test_lower_case_x_is_accepted_and_normalised(sbcard):
    code, _, _, data = sbcard("ids", "check", "12010419900307008x", "--json")
    assert code == 0
    assert data["value"] == "12010419900307008X"


def test_human_output_masks_a_citizen_id(sbcard):
    code, out, _, _ = sbcard("ids", "check", "320223195302147992")
    assert code == 0
    assert "320223195302147992" not in out
    assert "320223********7992" in out


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        (dt.datetime(2026, 12, 7, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=8))), False),  # her birthday's eve
        (dt.datetime(2026, 12, 7, 16, 0, 0, tzinfo=dt.timezone.utc), True),  # 00:00 on the 8th in Beijing
        (dt.datetime(2026, 12, 8, 9, 30, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))), True),  # the day itself
    ],
    ids=["eve", "beijing-midnight", "birthday"],
)
def test_a_citizen_id_born_after_today_on_the_clock_is_invalid(sbcard, now, valid):
    with freeze_time(now):
        code, _, _, data = sbcard("ids", "check", BORN_8_DEC_2026, "--json")
    assert (code, data["valid"]) == ((0, True) if valid else (2, False))
    if not valid:
        assert "is after today (2026-12-07)" in data["reason"]


def test_a_15_digit_id_is_refused_with_its_18_digit_form(sbcard):
    code, _, _, data = sbcard("ids", "check", "320223530214799", "--json")
    assert (code, data["kind"], data["valid"]) == (2, "citizen_id", False)
    assert data["eighteen_digit_form"] == "320223195302147992"
    assert "its 18-digit form is 320223195302147992" in data["reason"]
