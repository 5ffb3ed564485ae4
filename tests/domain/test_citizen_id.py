"""The citizen ID (GB 11643), which is also the social security number."""

from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sbcard.domain.citizen_id import CitizenId, compute_check_char
from sbcard.domain.errors import InvalidInput

VALID = [
    "320223195302147992",  # CARD-PROFILE.md
    "441522199106240088",  # CARD-PROFILE.md
    "110105198001011238",  # 北京 朝阳区
    "12010419591231002X",  # 天津 南开区, check character X
    "130102200002294510",  # 河北 石家庄 长安区, born on 29 February
    "131082198808080041",  # 河北 廊坊 三河市
    "120103196003010116",  # 天津 河西区
    "11010819600315008X",  # 北京 海淀区
    "120119194510010083",  # 天津 蓟州区
]


@pytest.mark.parametrize("text", VALID)
def test_valid_ids_parse_to_themselves(text):
    assert CitizenId.parse(text).value == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12010419591231002x", "12010419591231002X"),
        (" 320223195302147992 ", "320223195302147992"),
        ("320223 19530214 7992", "320223195302147992"),
        ("320223195302147992\n", "320223195302147992"),
    ],
)
def test_parse_accepts_lower_case_x_and_spaces_and_normalises(text, expected):
    assert CitizenId.parse(text).value == expected


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("", "citizen_id.empty", "no citizen ID"),
        ("   ", "citizen_id.empty", "no citizen ID"),
        ("32022319530214799", "citizen_id.length", "18 characters, got 17"),
        ("3202231953021479921", "citizen_id.length", "18 characters, got 19"),
        ("32022319530214799A", "citizen_id.format", "digit or 'X', got 'A'"),
        ("3202231953021479X2", "citizen_id.format", "first 17 characters must be the digits"),
        ("３２０２２３195302147992", "citizen_id.format", "first 17 characters must be the digits"),
        ("320223195302147993", "citizen_id.check_char", "check character should be '2', got '3'"),
        ("12010419591231002Y", "citizen_id.format", "got 'Y'"),
        ("120104195912310021", "citizen_id.check_char", "check character should be 'X', got '1'"),
        ("110105199902300000", "citizen_id.birth_date", "birth date 19990230 does not exist"),
        ("110105199913010000", "citizen_id.birth_date", "birth date 19991301 does not exist"),
        ("110105199900010000", "citizen_id.birth_date", "birth date 19990001 does not exist"),
        ("110105190002290000", "citizen_id.birth_date", "birth date 19000229 does not exist"),
        ("110105187912310000", "citizen_id.birth_year", "birth year 1879 is before 1880"),
        # the 15-digit form of before 1999 (no century, no check character): refused, naming its 18-digit form
        ("320223530214799", "citizen_id.old_form", "its 18-digit form is 320223195302147992"),
        ("441522 910624 008", "citizen_id.old_form", "its 18-digit form is 441522199106240088"),
        ("320223531314799", "citizen_id.length", "18 characters, got 15"),  # no 13th month: not an old ID either
        ("32022353021479X", "citizen_id.length", "18 characters, got 15"),
    ],
)
def test_parse_refuses_with_the_reason(text, code, reason):
    with pytest.raises(InvalidInput) as exc:
        CitizenId.parse(text)
    assert exc.value.code == code
    assert exc.value.field == "citizen_id"
    assert reason in exc.value.message


def test_an_impossible_date_is_reported_before_a_wrong_check_character():
    # A bad date is the more useful message: the check character cannot fix it.
    first17 = "11010519990230000"
    wrong = "0" if compute_check_char(first17) != "0" else "1"
    with pytest.raises(InvalidInput, match="19990230 does not exist"):
        CitizenId.parse(first17 + wrong)


def test_construction_validates_too_so_a_citizen_id_that_exists_is_valid():
    with pytest.raises(InvalidInput):
        CitizenId("320223195302147993")


def test_an_id_checked_again_is_judged_as_the_first_time(monkeypatch):
    """The checks are remembered for values that passed only: a refused one is refused every time."""
    from sbcard.domain import citizen_id

    monkeypatch.setattr(citizen_id, "_PASSED", {})
    monkeypatch.setattr(citizen_id, "_PASSED_KEPT", 3)
    for _ in range(2):
        assert [CitizenId(v).value for v in VALID] == VALID
        with pytest.raises(InvalidInput, match="check character should be '2', got '3'"):
            CitizenId("320223195302147993")
    assert len(citizen_id._PASSED) <= 3


def test_construction_does_not_normalise_lower_case_x():
    with pytest.raises(InvalidInput):
        CitizenId("12010419591231002x")


def test_birth_year_1880_is_accepted():
    first17 = "11010518800101000"
    assert CitizenId.parse(first17 + compute_check_char(first17)).birth_date == date(1880, 1, 1)


@pytest.mark.parametrize(
    ("text", "region", "birth", "sex", "sequence"),
    [
        ("320223195302147992", "320223", date(1953, 2, 14), "M", "799"),
        ("441522199106240088", "441522", date(1991, 6, 24), "F", "008"),
        ("12010419591231002X", "120104", date(1959, 12, 31), "F", "002"),
        ("130102200002294510", "130102", date(2000, 2, 29), "M", "451"),
    ],
)
def test_region_birth_date_sex_and_sequence_come_from_the_number(text, region, birth, sex, sequence):
    cid = CitizenId.parse(text)
    assert (cid.region_code, cid.birth_date, cid.sex, cid.sequence) == (region, birth, sex, sequence)


@pytest.mark.parametrize(
    ("day", "age"),
    [
        (date(2018, 2, 13), 64),
        (date(2018, 2, 14), 65),  # the 65th birthday itself
        (date(2018, 12, 31), 65),
        (date(1953, 2, 14), 0),
    ],
)
def test_age_counts_full_years(day, age):
    assert CitizenId.parse("320223195302147992").age_on(day) == age


@pytest.mark.parametrize(
    ("day", "age"),
    [
        (date(2001, 2, 28), 0),
        (date(2001, 3, 1), 1),  # common year: one year older on 1 March
        (date(2004, 2, 28), 3),
        (date(2004, 2, 29), 4),  # leap year: on the day itself
        (date(2065, 2, 28), 64),
        (date(2065, 3, 1), 65),
    ],
)
def test_someone_born_on_29_february_turns_older_on_1_march_in_common_years(day, age):
    assert CitizenId.parse("130102200002294510").age_on(day) == age


def test_age_before_birth_is_refused():
    with pytest.raises(InvalidInput, match="after"):
        CitizenId.parse("130102200002294510").age_on(date(1999, 12, 31))


def test_check_not_future_accepts_the_birth_day_itself():
    CitizenId.parse("130102200002294510").check_not_future(date(2000, 2, 29))


def test_check_not_future_refuses_an_id_born_after_today():
    with pytest.raises(InvalidInput) as exc:
        CitizenId.parse("130102200002294510").check_not_future(date(2000, 2, 28))
    assert exc.value.code == "citizen_id.birth_in_future"
    assert "2000-02-29" in exc.value.message


def test_masked_keeps_region_and_last_four():
    assert CitizenId.parse("320223195302147992").masked() == "320223********7992"


@pytest.mark.parametrize(("first17", "check"), [("32022319530214799", "2"), ("12010419591231002", "X")])
def test_compute_check_char(first17, check):
    assert compute_check_char(first17) == check


@pytest.mark.parametrize("bad", ["3202231953021479", "320223195302147992", "3202231953021479A"])
def test_compute_check_char_needs_exactly_17_digits(bad):
    with pytest.raises(InvalidInput):
        compute_check_char(bad)


first17s = st.builds(
    lambda region, born, seq: f"{region}{born:%Y%m%d}{seq:03d}",
    st.sampled_from(["110101", "110105", "120103", "120116", "130102", "131082", "320223"]),
    st.dates(min_value=date(1880, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(min_value=0, max_value=999),
)


@given(first17s)
def test_an_id_completed_with_its_check_char_always_parses(first17):
    cid = CitizenId.parse(first17 + compute_check_char(first17))
    assert cid.value[:17] == first17


@given(first17s, st.sampled_from("0123456789X"))
def test_every_other_check_char_is_refused(first17, check):
    assume(check != compute_check_char(first17))
    with pytest.raises(InvalidInput, match="check character"):
        CitizenId.parse(first17 + check)


@given(first17s)
def test_sex_follows_the_parity_of_the_sequence(first17):
    cid = CitizenId.parse(first17 + compute_check_char(first17))
    assert cid.sex == ("M" if int(first17[-1]) % 2 else "F")
