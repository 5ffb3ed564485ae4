"""STORE DATA (80 E2): the card factory's personalisation, a whole file per DGI.

Refusals table-driven (state, P1, lengths, DGIs, their contents), each leaving the card
exactly as it was; then what the accepted blocks do, and the factory script torn at
every persistent write.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from emulator_helpers import BLANK_SERIAL, SELECT_DF04, SELECT_SSSE, SELECT_TU, ok, sw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbcard.chip import profile
from sbcard.chip.apdu import Command
from sbcard.chip.commands import Dgi, encode_pin
from sbcard.chip.keys import transport_key
from sbcard.chip.personalisation import build_factory_script, build_script, medical_records, ssse_records
from terminals.emulator import image, image_codec, testing
from terminals.emulator.blank import create_blank
from terminals.emulator.card import CardTorn, VirtualCard
from terminals.emulator.card_file import read_state
from terminals.emulator.factory import MachineCard
from terminals.emulator.faults import Faults

DATA = testing.card_data()
KEYS = testing.keys_of(DATA)
TK = transport_key(BLANK_SERIAL)
SETUP = {"": [], "SSSE": [SELECT_SSSE], "DF04": [SELECT_DF04], "TU": [SELECT_TU]}


def dgi(number: int, data: bytes | str) -> str:
    return Dgi(number, bytes.fromhex(data) if isinstance(data, str) else data).to_bytes().hex().upper()


def store(body: str, p1: str = "08", block: str = "00") -> str:
    """``80 E2 P1 block Lc body`` (short Lc: every body here is under 256 bytes)."""
    return f"80E2{p1}{block}{len(body) // 2:02X}{body}"


def records(sfi: int, made: list) -> str:
    return "".join(record.to_bytes().hex() for s, record in made if s == sfi).upper()


EF05 = records(profile.SFI_EF05, ssse_records(DATA))  # SSSE/EF05's seven records, back to back
EF06 = records(profile.SFI_EF06, ssse_records(DATA))
KEY = "0101" + "0401" + KEYS.maintenance.hex()  # usage MK, index 01, SM4, version 01
KEYS_DGI = dgi(profile.DGI_KEYS, b"".join(
    bytes((usage, profile.CARD_KEY_INDEX, 0x04, 0x01)) + key for usage, key in KEYS.by_usage().items()))
PIN_DGI = dgi(profile.DGI_PIN, encode_pin(DATA.initial_pin))
ISSUER = DATA.tunion.to_bytes().hex()
TUNION_DGIS = (dgi(profile.file_dgi(profile.SFI_TU_ISSUER), ISSUER)
               + dgi(profile.file_dgi(profile.SFI_TU_MANAGEMENT), "00" * 64))


@pytest.fixture
def personalising(blank: VirtualCard) -> VirtualCard:
    """A blank after TK authentication and ERASE: where STORE DATA works."""
    testing.external_authenticate(blank, TK, profile.TRANSPORT_KEY_INDEX)
    ok(blank, "800E0000")
    return blank


def factory_personalise(card: VirtualCard) -> None:
    """What the factory machine sends, from power-on."""
    card.power_on()
    testing.external_authenticate(card, transport_key(card.chip_serial), profile.TRANSPORT_KEY_INDEX)
    for command in build_factory_script(DATA, KEYS):
        testing.send(card, command)


# ----------------------------------------------------------------------------- refusals


REFUSALS = [
    # P1: plain DGIs only (no BER-TLV structure, no encryption, no RFU bits)
    ("", store(PIN_DGI, p1="00"), 0x6A86),
    ("", store(PIN_DGI, p1="80"), 0x6A86),
    ("", store(PIN_DGI, p1="10"), 0x6A86),
    ("", store(PIN_DGI, p1="48"), 0x6A86),  # encrypted (application dependent)
    ("", store(PIN_DGI, p1="68"), 0x6A86),  # encrypted
    ("", store(PIN_DGI, p1="09"), 0x6A86),
    # lengths
    ("", "80E20800", 0x6700),  # no DGI
    ("", store("8010"), 0x6700),  # a header cut short
    ("", store("801003" + "1234"), 0x6700),  # 3 bytes announced, 2 follow
    ("", store("8010FF00"), 0x6700),  # a 2-byte length cut short
    ("", store("8010FF0004" + "123456"), 0x6700),
    ("", store(PIN_DGI + "80"), 0x6700),  # a second header cut short
    # DGIs the card does not know
    ("", store(dgi(0x9000, "00")), 0x6A88),
    ("", store(dgi(0x8001, "00")), 0x6A88),
    ("", store(dgi(0x0000, "00")), 0x6A88),
    ("", store(dgi(0x0501, EF05)), 0x6A88),  # a record number: only whole files ('SS00')
    ("", store(dgi(0x1F00, "00")), 0x6A88),  # SFI beyond 1E
    ("", store(dgi(0x0500, EF05)), 0x6A88),  # the MF has no EF05
    ("SSSE", store(dgi(0x0700, "00")), 0x6A88),
    ("DF04", store(dgi(0x0800, "00" * 32)), 0x6A88),  # the medical log: no DGI writes a log
    ("TU", store(dgi(0x1800, "00" * 23)), 0x6A88),  # the transaction log
    ("TU", store(dgi(0x1A00, "00" * 48)), 0x6A88),  # the capp cache (fixed records)
    # the same DGI twice in one block
    ("", store(PIN_DGI + PIN_DGI), 0x6A80),
    # keys (DGI 8000)
    ("", store(dgi(profile.DGI_KEYS, "")), 0x6700),
    ("", store(dgi(profile.DGI_KEYS, KEY[:-2])), 0x6700),  # 19 bytes
    ("", store(dgi(profile.DGI_KEYS, KEY + "01")), 0x6700),
    ("", store(dgi(profile.DGI_KEYS, "00" + KEY[2:])), 0x6A80),  # the transport key is the factory's
    ("", store(dgi(profile.DGI_KEYS, "06" + KEY[2:])), 0x6A80),  # no such usage
    ("", store(dgi(profile.DGI_KEYS, KEY[:4] + "07" + KEY[6:])), 0x6A80),  # no such algorithm
    ("", store(dgi(profile.DGI_KEYS, KEY + "00" + KEY[2:])), 0x6A80),  # a good key, then a bad one
    ("", store(dgi(profile.DGI_KEYS, KEY + KEY)), 0x6A80),  # the same key twice
    # the PIN (DGI 8010)
    ("", store(dgi(profile.DGI_PIN, "1234")), 0x6700),
    ("", store(dgi(profile.DGI_PIN, "12345678")), 0x6700),
    ("", store(dgi(profile.DGI_PIN, "12345A")), 0x6A80),
    # a TLV file's records
    ("SSSE", store(dgi(0x0500, "")), 0x6700),
    ("SSSE", store(dgi(0x0500, EF06)), 0x6A80),  # EF06's tags are not EF05's
    ("SSSE", store(dgi(0x0500, EF05 + EF05[:36])), 0x6A80),  # tag 01 twice
    ("SSSE", store(dgi(0x0500, EF05[:-2])), 0x6A80),  # the last record cut short
    ("SSSE", store(dgi(0x0500, "00" + EF05)), 0x6A80),  # no padding between records
    ("SSSE", store(dgi(0x0500, "0708" + "31" * 8)), 0x6A80),  # tag 07 holds 9 bytes
    ("SSSE", store(dgi(0x0500, "070A" + "31" * 10)), 0x6A80),
    ("SSSE", store(dgi(0x0500, "1F0101" + "00")), 0x6A80),  # a multi-byte tag is no record here
    ("DF04", store(dgi(0x0500, "0181" + "03" + "110105")), 0x6A80),  # long-form length
    # a binary file's bytes
    ("TU", store(dgi(0x1500, ISSUER[:-2])), 0x6700),
    ("TU", store(dgi(0x1700, "00" * 65)), 0x6700),
    # the last block completes personalisation: refused while the card lacks anything
    ("TU", store(TUNION_DGIS, p1="88", block="00"), 0x6985),
    # blocks in sequence from 00 (GlobalPlatform): the first block must be 00
    ("", store(PIN_DGI, block="01"), 0x6A86),
    ("TU", store(TUNION_DGIS, p1="88", block="03"), 0x6A86),
    ("", store(PIN_DGI, block="FF"), 0x6A86),
    # a bad DGI after a good one: nothing of the block is written
    ("SSSE", store(dgi(0x0500, EF05) + dgi(0x0600, EF06[:-2])), 0x6A80),
]


@pytest.mark.parametrize("setup, apdu, expected", REFUSALS)
def test_a_refused_store_data_changes_nothing(personalising: VirtualCard, setup: str, apdu: str,
                                              expected: int) -> None:
    for command in SETUP[setup]:
        ok(personalising, command)
    before = image_codec.to_json(personalising.state)
    assert sw(personalising, apdu) == expected
    assert image_codec.to_json(personalising.state) == before


def _blank(card: VirtualCard) -> None:
    """A blank card, not authenticated."""


def _blank_under_tk(card: VirtualCard) -> None:
    testing.external_authenticate(card, TK, profile.TRANSPORT_KEY_INDEX)


def _personalising_unauthenticated(card: VirtualCard) -> None:
    _blank_under_tk(card)
    ok(card, "800E0000")
    card.power_on()


def _personalising_under_mk(card: VirtualCard) -> None:
    _blank_under_tk(card)
    ok(card, "800E0000")
    ok(card, store(dgi(profile.DGI_KEYS, KEY)))
    card.power_on()
    testing.external_authenticate(card, KEYS.maintenance, profile.CARD_KEY_INDEX)


@pytest.mark.parametrize("setup, expected", [
    (_blank, 0x6985),  # no write before ERASE
    (_blank_under_tk, 0x6985),
    (_personalising_unauthenticated, 0x6982),
    (_personalising_under_mk, 0x6982),  # while personalising, only TK writes
])
def test_store_data_only_while_personalising_under_tk(blank: VirtualCard, setup: Callable[[VirtualCard], None],
                                                      expected: int) -> None:
    setup(blank)
    before = image_codec.to_json(blank.state)
    assert sw(blank, store(PIN_DGI)) == expected
    assert image_codec.to_json(blank.state) == before


def test_a_personalised_card_takes_no_store_data(card: VirtualCard, keys) -> None:  # noqa: ANN001
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    assert sw(card, store(PIN_DGI)) == 0x6985
    ok(card, SELECT_TU)
    assert sw(card, store(TUNION_DGIS, p1="88")) == 0x6985


def test_cla_84_is_not_store_data(personalising: VirtualCard) -> None:
    """No secure messaging on this card: STORE DATA is CLA 80 only."""
    assert sw(personalising, "84E20800" + store(PIN_DGI)[8:]) == 0x6D00


# ----------------------------------------------------------------------------- the blocks' order


def _block(card: VirtualCard, body: str, block: int, p1: str = "08") -> int:
    return sw(card, store(body, p1=p1, block=f"{block:02X}"))


@pytest.mark.parametrize("blocks, refused", [
    ([0, 0], 1),  # a block repeated
    ([0, 1, 1], 2),
    ([0, 2], 1),  # a block skipped
    ([0, 1, 0], 2),  # going back
])
def test_a_block_out_of_sequence_is_refused_and_changes_nothing(personalising: VirtualCard, blocks: list[int],
                                                                refused: int) -> None:
    for n, block in enumerate(blocks):
        before = image_codec.to_json(personalising.state)
        status = _block(personalising, PIN_DGI, block)
        if n == refused:
            assert status == 0x6A86
            assert image_codec.to_json(personalising.state) == before
        else:
            assert status == 0x9000, (n, block)


def test_a_refused_block_does_not_count_so_it_can_be_sent_again(personalising: VirtualCard) -> None:
    assert _block(personalising, dgi(profile.DGI_PIN, "12345A"), 0) == 0x6A80
    assert _block(personalising, PIN_DGI, 0) == 0x9000
    assert _block(personalising, KEYS_DGI, 1) == 0x9000


@pytest.mark.parametrize("restart", ["erase", "authenticate", "power"])
def test_erase_a_new_authentication_or_power_on_start_the_blocks_again_at_00(personalising: VirtualCard,
                                                                               restart: str) -> None:
    assert _block(personalising, PIN_DGI, 0) == 0x9000
    if restart == "power":
        personalising.power_on()
    if restart in ("authenticate", "power"):
        testing.external_authenticate(personalising, TK, profile.TRANSPORT_KEY_INDEX)
    else:
        ok(personalising, "800E0000")
    assert _block(personalising, PIN_DGI, 1) == 0x6A86
    assert _block(personalising, PIN_DGI, 0) == 0x9000


def test_the_factory_script_numbers_its_blocks_in_sequence_and_marks_only_the_last() -> None:
    blocks = [c for c in build_factory_script(DATA, KEYS) if c.ins == profile.Ins.STORE_DATA]
    assert [c.p2 for c in blocks] == list(range(len(blocks)))
    assert [bool(c.p1 & profile.STORE_DATA_LAST) for c in blocks] == [False] * (len(blocks) - 1) + [True]


def test_no_block_after_the_last(personalising: VirtualCard) -> None:
    script = build_factory_script(DATA, KEYS)
    for command in script[1:]:
        testing.send(personalising, command)
    assert _block(personalising, PIN_DGI, 4) == 0x6985  # the card is personalised: STORE DATA is over


# ----------------------------------------------------------------------------- what it writes


def test_a_block_writes_keys_and_pin_wherever_the_df(personalising: VirtualCard) -> None:
    ok(personalising, SELECT_SSSE)  # usage decides a key's DF, as for WRITE KEY
    ok(personalising, store(KEYS_DGI + PIN_DGI))
    state = personalising.state
    assert state.keys[("MF", profile.KeyUsage.MAINTENANCE, 1)].key == KEYS.maintenance
    assert state.keys[("TU", profile.KeyUsage.PURCHASE, 1)].key == KEYS.purchase
    assert state.keys[("MF", profile.KeyUsage.TRANSPORT, 0)].key == TK  # TK stays until personalised
    assert state.pin == image.Pin(encode_pin(DATA.initial_pin), profile.PIN_TRIES)
    assert state.life_state is profile.LifeState.PERSONALISING


def test_a_file_dgi_is_the_whole_file(personalising: VirtualCard) -> None:
    ok(personalising, SELECT_SSSE)
    ok(personalising, store(dgi(0x0500, EF05) + dgi(0x0600, EF06)))
    assert sorted(personalising.state.records[("SSSE", 5)]) == list(profile.EF05_TAGS)
    assert sorted(personalising.state.records[("SSSE", 6)]) == list(profile.EF06_TAGS)
    ok(personalising, store(dgi(0x0500, EF05[:36]), block="01"))  # tag 01 alone: it replaces the file
    assert personalising.state.records[("SSSE", 5)] == {1: bytes.fromhex(EF05[4:36])}


def test_a_long_dgi_length_is_read(personalising: VirtualCard) -> None:
    ok(personalising, SELECT_TU)
    ok(personalising, store("1700FF0040" + "AB" * 64))
    assert personalising.state.binaries[("TU", profile.SFI_TU_MANAGEMENT)] == b"\xab" * 64


def test_a_long_block_in_an_extended_apdu(personalising: VirtualCard) -> None:
    """A DGI of 255 bytes or more (length FF ‖ 2 bytes) in a block past 255 bytes (an extended Lc)."""
    entries = "".join(f"01{index:02X}" + KEY[4:] for index in range(1, 14))  # MK at indexes 01-0D
    body = bytes.fromhex(dgi(profile.DGI_KEYS, entries) + PIN_DGI)
    assert body[2] == 0xFF and len(body) > 255
    testing.send(personalising, Command(profile.CLA_PROPRIETARY, profile.Ins.STORE_DATA, 0x08, 0x00, body))
    assert ("MF", profile.KeyUsage.MAINTENANCE, 0x0D) in personalising.state.keys and personalising.state.pin is not None


def test_the_last_block_makes_the_card_personalised(personalising: VirtualCard) -> None:
    script = build_factory_script(DATA, KEYS)
    for command in script[1:-1]:
        testing.send(personalising, command)
    assert ok(personalising, "80CA00C1")[8] == profile.LifeState.PERSONALISING
    assert sw(personalising, "0020000003" + DATA.initial_pin) == 0x6985  # not yet a card
    testing.send(personalising, script[-1])
    assert ok(personalising, "80CA00C1")[8] == profile.LifeState.PERSONALISED
    assert sw(personalising, "0020000003" + DATA.initial_pin) == 0x9000
    assert sw(personalising, "80F00003") == 0x6985  # no SET STATUS needed (nor taken)


def test_the_factory_script_makes_the_counters_card(tmp_path: Path) -> None:
    """Same data, keys and serial: the same image, byte for byte, as the counter's script."""
    counter = VirtualCard.load(create_blank(tmp_path / "counter.card", BLANK_SERIAL), rng=random.Random(3))
    factory = VirtualCard.load(create_blank(tmp_path / "factory.card", BLANK_SERIAL), rng=random.Random(3))
    testing.personalise(counter, DATA, KEYS)
    factory_personalise(factory)
    assert image_codec.dumps(factory.state) == image_codec.dumps(counter.state)
    assert read_state(tmp_path / "factory.card") == read_state(tmp_path / "counter.card")
    assert len(build_factory_script(DATA, KEYS)) == 8 < len(build_script(DATA, KEYS)) == 33


def test_the_factory_script_runs_again_on_a_half_made_card(blank: VirtualCard, blank_path: Path) -> None:
    testing.external_authenticate(blank, TK, profile.TRANSPORT_KEY_INDEX)
    for command in build_factory_script(DATA, KEYS)[:4]:
        testing.send(blank, command)
    again = VirtualCard.load(blank_path)
    assert again.state.life_state is profile.LifeState.PERSONALISING
    factory_personalise(again)
    assert again.state.life_state is profile.LifeState.PERSONALISED


def test_the_factory_script_torn_at_every_write(tmp_path: Path) -> None:
    """Each block lands whole or not at all; a card torn before the last block's commit is
    no card (6985), and running the script again gives exactly the untorn card."""
    reference_path = create_blank(tmp_path / "reference.card", BLANK_SERIAL)
    reference = VirtualCard.load(reference_path, rng=random.Random(5))
    factory_personalise(reference)
    total, expected = reference.writes_since_power_on, read_state(reference_path)
    fresh = create_blank(tmp_path / "fresh.card", BLANK_SERIAL).read_bytes()
    path = tmp_path / "card.card"
    for n in range(1, total + 1):
        path.write_bytes(fresh)
        with pytest.raises(CardTorn):
            factory_personalise(VirtualCard.load(path, Faults(tear_at_write=n), random.Random(5)))
        torn = VirtualCard.load(path, rng=random.Random(5))
        torn.power_on()
        if n == total:  # torn at the last block's commit: the card is complete
            assert read_state(path) == expected
            continue
        assert torn.state.life_state in (profile.LifeState.BLANK, profile.LifeState.PERSONALISING), n
        ok(torn, SELECT_SSSE)
        assert sw(torn, "00B2012C00") == 0x6985, n
        factory_personalise(torn)
        assert read_state(path) == expected, f"torn at write {n}: the rerun differs"


# ----------------------------------------------------------------------------- any bytes


@settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(setup=st.sampled_from(sorted(SETUP)), p1=st.sampled_from([0x08, 0x88]),
       number=st.sampled_from([profile.DGI_KEYS, profile.DGI_PIN, 0x0500, 0x0600, 0x1500, 0x1700]) | st.integers(0, 0xFFFF),
       value=st.binary(max_size=300), tail=st.binary(max_size=8))
def test_any_dgi_gets_a_proper_status_word(setup: str, p1: int, number: int, value: bytes, tail: bytes) -> None:
    """No DGI makes the card answer 6F00 (its catch-all), and a refusal changes nothing."""
    card = MachineCard("never-written.card", BLANK_SERIAL, rng=random.Random(4))  # a blank held in memory
    testing.external_authenticate(card, TK, profile.TRANSPORT_KEY_INDEX)
    ok(card, "800E0000")
    for command in SETUP[setup]:
        ok(card, command)
    before = image_codec.to_json(card.state)
    body = bytes.fromhex(dgi(number, value)) + tail
    response = card.process(Command(profile.CLA_PROPRIETARY, profile.Ins.STORE_DATA, p1, 0, body).to_bytes())
    status = int.from_bytes(response[-2:], "big")
    assert status in (0x9000, 0x6700, 0x6A80, 0x6A88, 0x6985), f"{body.hex()} -> {status:04X}"
    if status != 0x9000:
        assert len(response) == 2 and image_codec.to_json(card.state) == before
