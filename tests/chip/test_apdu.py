"""Command APDU encoding and the card's strict decoding (ISO 7816-4 cases 1–4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbcard.chip import sw
from sbcard.chip.apdu import Command, MalformedApdu, Response

H = bytes.fromhex

ENCODINGS = [
    # case, command, bytes on the wire
    ("1", Command(0x80, 0x0E, 0x00, 0x00), "800E0000"),
    ("2 short", Command(0x00, 0x84, 0x00, 0x00, le=8), "0084000008"),
    ("2 short, Le 256 is 00", Command(0x00, 0xB2, 0x01, 0x2C, le=256), "00B2012C00"),
    ("3 short", Command(0x00, 0x20, 0x00, 0x00, H("123456")), "0020000003123456"),
    ("4 short", Command(0x80, 0x50, 0x01, 0x02, H("01" "00000064" "112233445566"), le=15),
     "805001020B0100000064112233445566" "0F"),
    ("2 extended", Command(0x00, 0xB0, 0x95, 0x00, le=300), "00B09500" "00012C"),
    ("2 extended, Le 65536 is 0000", Command(0x00, 0xB0, 0x95, 0x00, le=65536), "00B09500" "000000"),
    ("3 extended", Command(0x00, 0xD6, 0x95, 0x00, bytes(256)), "00D69500" "000100" + "00" * 256),
    ("4 extended", Command(0x00, 0xD6, 0x95, 0x00, bytes(256), le=2), "00D69500" "000100" + "00" * 256 + "0002"),
    ("4 extended by Le alone", Command(0x00, 0xCA, 0x00, 0xC1, H("AA"), le=257), "00CA00C1" "000001AA" "0101"),
]


@pytest.mark.parametrize("case, command, wire", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_encoding_and_decoding_of_each_case(case, command, wire):
    assert command.to_bytes() == H(wire)
    assert Command.parse(H(wire)) == command


commands = st.builds(
    Command,
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=300),
    le=st.none() | st.integers(1, 65536),
)


@given(commands)
def test_every_command_survives_the_round_trip(command):
    assert Command.parse(command.to_bytes()) == command


MALFORMED = [
    ("empty", ""),
    ("1 byte", "00"),
    ("3 bytes: no full header", "00A404"),
    ("short Lc larger than the data", "00A40400" "05" "0102"),
    ("short Lc smaller than the data, beyond one Le byte", "00A40400" "01" "010203"),
    ("extended marker with one length byte", "00B00000" "0001"),
    ("extended Lc of zero", "00D60000" "000000" "01"),
    ("extended Lc larger than the data", "00D60000" "000010" "0102"),
    ("extended Lc with one trailing byte", "00D60000" "000002" "0102" "00"),
]


@pytest.mark.parametrize("name, wire", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_every_malformed_form_is_refused_with_6700(name, wire):
    with pytest.raises(MalformedApdu) as caught:
        Command.parse(H(wire))
    assert caught.value.sw == sw.WRONG_LENGTH


@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_answer_6700(raw):
    try:
        Command.parse(raw)
    except MalformedApdu as e:
        assert e.sw == sw.WRONG_LENGTH


@pytest.mark.parametrize(
    "kwargs",
    [dict(cla=256), dict(p2=-1), dict(data=bytes(65536)), dict(le=0), dict(le=65537)],
)
def test_a_command_that_cannot_be_encoded_cannot_be_made(kwargs):
    fields = dict(cla=0, ins=0xA4, p1=0, p2=0) | kwargs
    with pytest.raises(ValueError):
        Command(**fields)


def test_response_splits_data_and_status_word():
    resp = Response.from_bytes(H("0102" "9000"))
    assert (resp.data, resp.sw, resp.ok) == (H("0102"), 0x9000, True)
    assert resp.check() == H("0102")
    assert resp.to_bytes() == H("01029000")


def test_response_without_status_word_is_refused():
    with pytest.raises(ValueError):
        Response.from_bytes(H("90"))


def test_failed_status_word_raises_its_typed_exception():
    with pytest.raises(sw.InsufficientBalance) as caught:
        Response(b"", 0x9401).check()
    assert caught.value.sw == 0x9401
