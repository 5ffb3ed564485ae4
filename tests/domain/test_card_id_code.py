"""The card identification code: issuing region + the ministry's RID + 8 card-unique bytes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbcard.domain.card_id_code import RID, CardIdCode
from sbcard.domain.errors import InvalidInput

EXAMPLE = "320200D156000005AD932A48BDC3B9E9"  # CARD-PROFILE.md


def test_the_example_parses_into_region_and_unique_part():
    code = CardIdCode.parse(EXAMPLE)
    assert code.region_code == "320200"
    assert code.unique == "AD932A48BDC3B9E9"
    assert code.unique_bytes == bytes.fromhex("AD932A48BDC3B9E9")


def test_parse_is_case_insensitive_and_normalises_to_upper_case():
    assert CardIdCode.parse(EXAMPLE.lower()).value == EXAMPLE


def test_parse_ignores_spaces_in_hex_dumps():
    assert CardIdCode.parse("320200 D156000005 AD932A48 BDC3B9E9").value == EXAMPLE


def test_to_bytes_is_16_bytes_with_the_region_as_bcd():
    data = CardIdCode.parse(EXAMPLE).to_bytes()
    assert len(data) == 16
    assert data[:3] == b"\x32\x02\x00"
    assert data[3:8] == bytes.fromhex(RID)


def test_from_bytes_reads_what_to_bytes_wrote():
    code = CardIdCode.parse(EXAMPLE)
    assert CardIdCode.from_bytes(code.to_bytes()) == code


def test_make_builds_a_code_for_the_issuing_region():
    code = CardIdCode.make("120103", bytes.fromhex("0011223344556677"))
    assert code.value == "120103D1560000050011223344556677"


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("", "card_id_code.empty", "no card identification code"),
        (EXAMPLE[:-1], "card_id_code.length", "32 hex digits, got 31"),
        (EXAMPLE + "0", "card_id_code.length", "32 hex digits, got 33"),
        (EXAMPLE[:-1] + "G", "card_id_code.format", "hex digits"),
        ("32020AD156000005AD932A48BDC3B9E9", "card_id_code.region", "region code"),
        ("320200D156000006AD932A48BDC3B9E9", "card_id_code.rid", "RID D156000005"),
    ],
)
def test_parse_refuses_with_the_reason(text, code, reason):
    with pytest.raises(InvalidInput) as exc:
        CardIdCode.parse(text)
    assert exc.value.code == code
    assert exc.value.field == "card_id_code"
    assert reason in exc.value.message


@pytest.mark.parametrize("data", [b"", bytes(15), bytes(17)])
def test_from_bytes_needs_16_bytes(data):
    with pytest.raises(InvalidInput, match="16 bytes"):
        CardIdCode.from_bytes(data)


@pytest.mark.parametrize(("region", "unique"), [("12010", bytes(8)), ("1201AB", bytes(8)), ("120103", bytes(7))])
def test_make_refuses_a_bad_region_or_unique_part(region, unique):
    with pytest.raises(InvalidInput):
        CardIdCode.make(region, unique)


@given(st.from_regex(r"[0-9]{6}", fullmatch=True), st.binary(min_size=8, max_size=8))
def test_make_round_trips_through_bytes_and_text(region, unique):
    code = CardIdCode.make(region, unique)
    assert CardIdCode.from_bytes(code.to_bytes()) == code
    assert CardIdCode.parse(code.value.lower()) == code
    assert (code.region_code, code.unique_bytes) == (region, unique)
