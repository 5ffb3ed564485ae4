"""`sbcard ids check VALUE`: the kind is decided from the shape, then the value is checked."""

from datetime import date

import pytest

from sbcard.domain.identify import identify
from sbcard.domain.regions import Region, RegionDirectory

REGIONS = RegionDirectory(
    [
        Region("110000", "北京市", "province", None),
        Region("110105", "朝阳区", "county", "110000"),
        Region("120000", "天津市", "province", None),
        Region("120103", "河西区", "county", "120000"),
        Region("130000", "河北省", "province", None),
        Region("131000", "廊坊市", "prefecture", "130000"),
        Region("131082", "三河市", "county", "131000"),
    ]
)


def check(value, **kwargs):
    return identify(value, REGIONS, **kwargs)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("120103196003010116", "citizen_id"),
        ("120103196003010117", "citizen_id"),  # wrong check char: still a citizen ID
        ("12010419591231002x", "citizen_id"),
        ("12010319600301011A", "citizen_id"),
        ("188347080", "card_number"),
        ("kd5578904", "card_number"),
        ("320200D156000005AD932A48BDC3B9E9", "card_id_code"),
        ("120103", "region"),
        ("310101", "region"),
        ("4532015112830366", "bank_account"),
        ("6217001234567890122", "bank_account"),
        ("hello", "unknown"),
        ("", "unknown"),
        ("12345678901234567890", "unknown"),
        ("320200D156000006AD932A48BDC3B9E9", "unknown"),
    ],
)
def test_the_kind_comes_from_the_shape(value, kind):
    assert check(value)["kind"] == kind


def test_every_answer_has_the_common_keys():
    for value in ["120103196003010116", "188347080", "120103", "4532015112830366", "x"]:
        assert {"kind", "value", "valid", "reason"} <= check(value).keys()


def test_a_valid_citizen_id_with_a_known_region():
    assert check("120103196003010116") == {
        "kind": "citizen_id",
        "value": "120103196003010116",
        "valid": True,
        "reason": None,
        "birth_date": "1960-03-01",
        "sex": "M",  # sequence 011: odd
        "region": "120103",
        "region_name": "天津市河西区",
        "region_known": True,
    }


def test_a_citizen_id_is_normalised_to_upper_case_x():
    assert check(" 12010419591231002x ")["value"] == "12010419591231002X"


def test_a_citizen_id_with_an_unknown_region_is_still_valid():
    # IDs keep the code of the birth registration, even after re-zoning or from elsewhere.
    result = check("320223195302147992")
    assert result["valid"] is True
    assert result["region_known"] is False
    assert result["region_name"] is None
    assert (result["birth_date"], result["sex"]) == ("1953-02-14", "M")


def test_a_citizen_id_with_a_wrong_check_char_says_which():
    result = check("120103196003010117")
    assert result["valid"] is False
    assert result["reason"] == "check character should be '6', got '7'"
    assert result["birth_date"] is None


def test_a_citizen_id_with_an_impossible_birth_date_says_so():
    result = check("110105199902300000")
    assert result["valid"] is False
    assert "birth date 19990230 does not exist" in result["reason"]


def test_an_18_digit_value_is_a_citizen_id_even_if_it_could_be_a_bank_account():
    # 621700123456789011 fails the ID check (should end in 7) but passes Luhn.
    result = check("621700123456789011")
    assert result["kind"] == "citizen_id"
    assert result["valid"] is False
    assert result["also_valid_as"] == ["bank_account"]


def test_an_invalid_citizen_id_that_fails_luhn_too_has_no_alternative():
    assert "also_valid_as" not in check("110105198001011239")


def test_a_citizen_id_born_after_today_is_invalid_when_today_is_given():
    value = "130102200002294510"
    assert check(value)["valid"] is True
    result = check(value, today=date(2000, 2, 28))
    assert result["valid"] is False
    assert "after today" in result["reason"]


def test_card_number_with_a_failing_check_is_invalid_with_the_reason():
    assert check("188347081") == {
        "kind": "card_number",
        "value": "188347081",
        "valid": False,
        "reason": "check character should be '0', got '1'",
    }


def test_card_id_code_reports_its_region():
    result = check("120103d1560000050011223344556677")
    assert result["valid"] is True
    assert result["value"] == "120103D1560000050011223344556677"
    assert (result["region"], result["region_name"], result["region_known"]) == ("120103", "天津市河西区", True)
    assert result["unique"] == "0011223344556677"


def test_card_id_code_with_a_non_decimal_region_is_invalid():
    result = check("12010AD1560000050011223344556677")
    assert result["kind"] == "card_id_code"
    assert result["valid"] is False
    assert "region code" in result["reason"]


def test_a_known_region():
    assert check("131082") == {
        "kind": "region",
        "value": "131082",
        "valid": True,
        "reason": None,
        "name": "三河市",
        "full_name": "河北省廊坊市三河市",
        "level": "county",
        "province": "130000",
        "node": "he",
    }


def test_an_unlisted_region_inside_the_three_provinces_is_invalid_but_has_its_node():
    result = check("110103")
    assert result["valid"] is False
    assert result["reason"] == "unknown region code 110103"
    assert (result["province"], result["node"]) == ("110000", "bj")


def test_a_region_outside_the_three_provinces_is_invalid():
    result = check("310101")
    assert result["valid"] is False
    assert result["reason"] == "region 310101 is outside Beijing, Tianjin and Hebei"


def test_a_bank_account_is_shown_masked():
    result = check("6217 0012 3456 7890 122")
    assert result["valid"] is True
    assert result["value"] == "6217001234567890122"
    assert result["masked"] == "621700*********0122"


def test_a_bank_account_with_a_wrong_luhn_digit_is_invalid():
    result = check("4532015112830367")
    assert result["valid"] is False
    assert result["masked"] is None
    assert "Luhn check digit should be '6'" in result["reason"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "no value given"),
        ("hello", "not the shape of"),
        ("320200D156000006AD932A48BDC3B9E9", "characters 7-16 must be D156000005"),
        ("12010319600301A116", "18 characters, but a citizen ID is 17 digits"),
    ],
)
def test_unknown_values_say_why(value, reason):
    result = check(value)
    assert result["valid"] is False
    assert reason in result["reason"]
