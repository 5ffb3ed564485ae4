"""BER-TLV as the card's records and FCI use it."""

from __future__ import annotations

import pytest

from sbcard.chip import tlv
from sbcard.chip.tlv import Tlv, TlvError

H = bytes.fromhex


@pytest.mark.parametrize(
    "tag, value, wire",
    [
        (0x01, H("33"), "010133"),
        (0x9F0C, H("AABB"), "9F0C02AABB"),  # two-byte tag: low five bits of the first byte all set
        (0xDF8101, H("00"), "DF81010100"),  # three-byte tag: continuation bit in the second byte
        (0x84, bytes(0x7F), "847F" + "00" * 0x7F),  # longest one-byte length
        (0x84, bytes(0x80), "848180" + "00" * 0x80),  # 81 xx
        (0x84, bytes(0x100), "84820100" + "00" * 0x100),  # 82 xx xx
    ],
)
def test_tags_and_lengths_encode_and_decode(tag, value, wire):
    assert tlv.encode(tag, value) == H(wire)
    assert tlv.decode(H(wire)) == [Tlv(tag, value)]


def test_records_are_decoded_in_order_and_padding_is_skipped():
    assert tlv.decode(H("010133" "00FF" "0204332E3030")) == [Tlv(0x01, H("33")), Tlv(0x02, b"3.00")]


FCI = H("6F" "10" "8408A000000632010105" "A504" "9F0C0111")


def test_find_looks_into_constructed_objects():
    assert tlv.find(FCI, 0x9F0C) == Tlv(0x9F0C, H("11"))
    assert tlv.find(FCI, 0x84) == Tlv(0x84, H("A000000632010105"))


def test_find_without_recursion_stays_at_the_top_level():
    assert tlv.find(FCI, 0x9F0C, recursive=False) is None
    assert tlv.find(FCI, 0x6F, recursive=False) is not None


def test_constructed_bit_is_read_from_the_first_tag_byte():
    assert Tlv(0x6F, b"").constructed and Tlv(0xA5, b"").constructed
    assert not Tlv(0x9F0C, b"").constructed and not Tlv(0x84, b"").constructed


@pytest.mark.parametrize(
    "wire",
    [
        "9F",  # tag announces a second byte that is missing
        "DF81",  # third tag byte missing
        "01",  # no length
        "0105AABB",  # value shorter than its length
        "0182",  # long length missing its bytes
        "0180",  # indefinite length: not BER-TLV as ISO 7816 uses it
        "0185FFFFFFFFFF",  # length of more than 4 bytes
        "6F05" "8403AA",  # truncated inside a template, found when looking in
    ],
)
def test_truncated_or_malformed_data_raises_tlv_error(wire):
    def decode_all(data: bytes) -> None:
        for item in tlv.decode(data):
            if item.constructed:
                decode_all(item.value)

    with pytest.raises(TlvError):
        decode_all(H(wire))
