"""The card factory's script: STORE DATA values and ``build_factory_script``.

That it makes the counter's card byte for byte is proved on the emulated card
(tests/emulator/test_emulator_store_data.py) and through the factory machine
(tests/batch_production).
"""

from __future__ import annotations

import pytest
from chip_helpers import keys_for, make_card_data

from sbcard.chip import profile
from sbcard.chip.apdu import Command
from sbcard.chip.commands import Dgi, StoreData, encode_pin
from sbcard.chip.crypto import Algorithm
from sbcard.chip.personalisation import build_factory_script, build_script, medical_records, ssse_records


@pytest.mark.parametrize("size, header", [
    (0, "8010 00"),
    (3, "8010 03"),
    (254, "8010 FE"),
    (255, "8010 FF00FF"),  # from 255 bytes on: FF, then two length bytes
    (300, "8010 FF012C"),
])
def test_a_dgi_is_number_length_data(size: int, header: str) -> None:
    assert Dgi(profile.DGI_PIN, bytes(size)).to_bytes() == bytes.fromhex(header) + bytes(size)


@pytest.mark.parametrize("number", [-1, 0x10000, "8010"])
def test_a_dgi_number_is_two_bytes(number: object) -> None:
    with pytest.raises(ValueError, match="DGI"):
        Dgi(number, b"")  # type: ignore[arg-type]


def test_store_data_bytes() -> None:
    pin = Dgi(profile.DGI_PIN, encode_pin("123456"))
    assert StoreData(0, [pin]).command().hex() == "80 E2 08 00 06 80 10 03 12 34 56"
    assert StoreData(3, [pin, pin], last=True).command().to_bytes()[:5] == bytes.fromhex("80E288030C")
    with pytest.raises(ValueError, match="block number"):
        StoreData(256, [pin])
    with pytest.raises(ValueError, match="at least one DGI"):
        StoreData(0, [])


def test_a_block_over_255_bytes_is_an_extended_apdu() -> None:
    command = StoreData(0, [Dgi(profile.DGI_KEYS, bytes(300))]).command()
    assert command.extended and Command.parse(command.to_bytes()) == command


def _store_data(script: list[Command]) -> list[Command]:
    return [c for c in script if (c.cla, c.ins) == (profile.CLA_PROPRIETARY, profile.Ins.STORE_DATA)]


def _dgis(data: bytes) -> dict[int, bytes]:
    """The block's DGIs (short lengths only: every DGI of a card is under 255 bytes)."""
    out, i = {}, 0
    while i < len(data):
        number, length = int.from_bytes(data[i : i + 2], "big"), data[i + 2]
        out[number] = data[i + 3 : i + 3 + length]
        i += 3 + length
    return out


def test_the_factory_script_erases_then_stores_a_block_per_group() -> None:
    card = make_card_data()
    script = build_factory_script(card, keys_for(card))
    assert [(c.cla, c.ins) for c in script] == [
        (0x80, profile.Ins.ERASE), (0x80, 0xE2), (0x00, profile.Ins.SELECT), (0x80, 0xE2),
        (0x00, profile.Ins.SELECT), (0x80, 0xE2), (0x00, profile.Ins.SELECT), (0x80, 0xE2),
    ]
    assert [script[i].data for i in (2, 4, 6)] == [profile.SSSE_NAME, profile.AID_DF04, profile.AID_TUNION]
    blocks = _store_data(script)
    assert [(c.p1, c.p2) for c in blocks] == [(0x08, 0), (0x08, 1), (0x08, 2), (0x88, 3)]  # only the last: 88
    assert [sorted(_dgis(c.data)) for c in blocks] == [
        [0x8000, 0x8010], [0x0500, 0x0600], [0x0500, 0x0600], [0x1500, 0x1700],
    ]
    assert all(len(c.data) <= 255 for c in blocks)  # short APDUs: any reader takes them


def test_the_factory_script_carries_what_the_counters_script_writes() -> None:
    """Every value of build_script's writes is in a DGI of build_factory_script."""
    card = make_card_data()
    keys = keys_for(card, Algorithm.DES3)
    secrets, ssse, medical, tunion = (_dgis(c.data) for c in _store_data(build_factory_script(card, keys)))

    writes = {c.p1: c.data for c in build_script(card, keys) if c.ins == profile.Ins.WRITE_KEY}
    entries = secrets[profile.DGI_KEYS]
    assert {e[0]: e[2:] for e in (entries[i : i + 20] for i in range(0, len(entries), 20))} == writes
    assert {e[1] for e in (entries[i : i + 20] for i in range(0, len(entries), 20))} == {profile.CARD_KEY_INDEX}
    assert secrets[profile.DGI_PIN] == encode_pin(card.initial_pin)

    for made, dgis in ((ssse_records(card), ssse), (medical_records(card), medical)):
        for sfi in (profile.SFI_EF05, profile.SFI_EF06):
            assert dgis[profile.file_dgi(sfi)] == b"".join(r.to_bytes() for s, r in made if s == sfi)
    assert tunion == {0x1500: card.tunion.to_bytes(), 0x1700: bytes(profile.TU_MANAGEMENT_LEN)}

