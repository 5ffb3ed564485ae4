"""Life cycle: blank → personalising → personalised, and what each state allows.

Includes personalisation torn at every one of its persistent writes: the card is then
never usable half-written, and running the personalisation again from the start gives
exactly the card an untorn run gives.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from emulator_helpers import BLANK_SERIAL, SELECT_SSSE, SELECT_TU, ok, sw

from sbcard.chip import profile
from sbcard.chip import sw as status_words
from sbcard.chip import tlv
from sbcard.chip.apdu import Command
from sbcard.chip.keys import transport_key
from sbcard.chip.personalisation import build_script
from terminals.emulator import testing
from terminals.emulator.blank import create_blank
from terminals.emulator.card import CardTorn, VirtualCard
from terminals.emulator.card_file import read_state
from terminals.emulator.faults import Faults
from terminals.emulator.image_codec import LIFE_STATE_NAMES

DATA = testing.card_data()
KEYS = testing.keys_of(DATA)
TK = transport_key(BLANK_SERIAL)

# What an unpersonalised card must refuse with 6985 (after the named setup).
APPLICATION_COMMANDS = [
    (SELECT_SSSE, "00B2012C00"),
    (SELECT_TU, "00B0950000"),
    (SELECT_TU, "00B201C400"),
    (SELECT_TU, "805C000204"),
    (SELECT_TU, "805001020B01000000011100000000010F"),
    (SELECT_TU, "805000020B01000000011100000000010F"),
    (SELECT_TU, "805A000602000008"),
    ("", "0020000003123456"),
    ("", "00200000"),
    ("", "0024000006123456654321"),
    ("00A4040006" + profile.AID_DF04.hex(), "00E2004020" + "00" * 32),
]


def _tk_auth(card: VirtualCard) -> None:
    testing.external_authenticate(card, TK, profile.TRANSPORT_KEY_INDEX)


def _assert_unusable(card: VirtualCard) -> None:
    for setup, command in APPLICATION_COMMANDS:
        if setup:
            ok(card, setup)
        assert sw(card, command) == 0x6985, command


def test_a_blank_card(blank: VirtualCard) -> None:
    assert ok(blank, "80CA00C100") == BLANK_SERIAL + b"\x01" + profile.OS_VERSION
    assert len(ok(blank, "0084000008")) == 8
    # T-Union selects, but shows no issuer data before personalisation
    assert ok(blank, SELECT_TU) == tlv.encode(profile.TAG_FCI, tlv.encode(profile.TAG_DF_NAME, profile.AID_TUNION))
    _assert_unusable(blank)


def test_a_blank_card_takes_no_write_but_erase(blank: VirtualCard) -> None:
    _tk_auth(blank)
    assert sw(blank, "80D4010112" + "0401" + "00" * 16) == 0x6985
    assert sw(blank, "002C020003123456") == 0x6985
    ok(blank, SELECT_SSSE)
    assert sw(blank, "00DC072C0B0709" + "31" * 9) == 0x6985
    assert sw(blank, "80F00003") == 0x6985


def test_erase_needs_the_transport_key(blank: VirtualCard) -> None:
    assert sw(blank, "800E0000") == 0x6982
    _tk_auth(blank)
    ok(blank, "800E0000")
    assert blank.state.life_state is profile.LifeState.PERSONALISING
    assert list(blank.state.keys) == [("MF", profile.KeyUsage.TRANSPORT, 0)]


def test_a_wrong_transport_cryptogram(blank: VirtualCard) -> None:
    ok(blank, "0084000008")
    assert sw(blank, "0082000010" + "00" * 16) == 0x63CE
    assert sw(blank, "800E0000") == 0x6982


def test_personalising_writes_need_tk_not_mk(blank: VirtualCard) -> None:
    _tk_auth(blank)
    ok(blank, "800E0000")
    ok(blank, "80D4010112" + "0401" + KEYS.maintenance.hex())
    blank.power_on()
    testing.external_authenticate(blank, KEYS.maintenance, profile.CARD_KEY_INDEX)  # MK works…
    ok(blank, SELECT_SSSE)
    assert sw(blank, "00DC072C0B0709" + "31" * 9) == 0x6982  # …but only TK writes now
    _assert_unusable(blank)


def test_set_status_refuses_an_incomplete_card(blank: VirtualCard) -> None:
    _tk_auth(blank)
    script = build_script(DATA, KEYS)
    issuer_data = script[-4]
    assert issuer_data.p1 == 0x80 | profile.SFI_TU_ISSUER
    for command in script[:-4] + script[-3:-1]:  # all but UPDATE BINARY 0015 and SET STATUS
        testing.send(blank, command)
    assert sw(blank, "80F00003") == 0x6985
    testing.send(blank, issuer_data)
    assert sw(blank, "80F00002") == 0x6A86
    assert sw(blank, "80F000030100") == 0x6700
    ok(blank, "80F00003")
    assert ok(blank, "80CA00C1")[8] == profile.LifeState.PERSONALISED


def test_set_status_lists_what_is_missing(blank: VirtualCard) -> None:
    from terminals.emulator.personalisation import missing_for_personalised
    from terminals.emulator.session import Session

    _tk_auth(blank)
    ok(blank, "800E0000")
    session = Session(blank.state, None, None)  # type: ignore[arg-type]
    missing = missing_for_personalised(session)
    assert "MAINTENANCE" in missing and "TU/0015" in missing and "SSSE/EF05 tag 01" in missing


def test_a_personalised_card_refuses_the_transport_key(card: VirtualCard) -> None:
    with pytest.raises(status_words.CardStatus) as e:
        testing.external_authenticate(card, transport_key(card.chip_serial), profile.TRANSPORT_KEY_INDEX)
    assert e.value.sw == status_words.KEY_NOT_FOUND


def test_personalisation_through_commands(blank: VirtualCard, blank_path: Path) -> None:
    testing.personalise(blank, DATA, KEYS)
    assert blank.state.life_state is profile.LifeState.PERSONALISED
    again = VirtualCard.load(blank_path)
    assert again.state == blank.state
    assert ok(again, "80CA00C1")[8] == profile.LifeState.PERSONALISED
    ok(again, SELECT_SSSE)
    assert ok(again, "00B2072C00") == tlv.encode(7, b"188347080")
    assert sw(again, "0020000003" + DATA.initial_pin) == 0x9000


def test_purse_keys_land_in_tunion_whatever_df_is_selected(blank: VirtualCard) -> None:
    """The issuer's script writes all keys with the MF selected: usage decides the DF."""
    _tk_auth(blank)
    ok(blank, "800E0000")
    ok(blank, "80D4020112" + "0401" + KEYS.purchase.hex())
    assert ("TU", profile.KeyUsage.PURCHASE, 1) in blank.state.keys


def _writes_of_personalisation(tmp_path: Path) -> tuple[int, dict]:
    """How many persistent writes a whole personalisation makes, and the card it gives."""
    path = create_blank(tmp_path / "reference.json", BLANK_SERIAL)
    card = VirtualCard.load(path, rng=random.Random(5))
    testing.personalise(card, DATA, KEYS)
    return card.writes_since_power_on, read_state(path)


def test_personalisation_torn_at_every_write(tmp_path: Path) -> None:
    total, reference = _writes_of_personalisation(tmp_path)
    assert total > 60  # every record, key and commit counts
    fresh = create_blank(tmp_path / "fresh.json", BLANK_SERIAL).read_bytes()
    path = tmp_path / "card.json"
    for n in range(1, total + 1):
        path.write_bytes(fresh)
        card = VirtualCard.load(path, Faults(tear_at_write=n), random.Random(5))
        with pytest.raises(CardTorn):
            testing.personalise(card, DATA, KEYS)
        with pytest.raises(CardTorn):  # out of the field until loaded again
            card.process(bytes.fromhex("80CA00C1"))

        torn = VirtualCard.load(path, rng=random.Random(5))
        torn.power_on()
        if n == total:  # torn at SET STATUS's commit: the card is complete
            assert read_state(path) == reference
            continue
        assert torn.state.life_state in (profile.LifeState.BLANK, profile.LifeState.PERSONALISING), n
        _assert_unusable(torn)
        testing.personalise(torn, DATA, KEYS)  # from the start: ERASE wipes the half-written card
        assert read_state(path) == reference, f"torn at write {n}: the rerun differs"


def test_rerun_of_an_abandoned_personalisation(blank: VirtualCard, blank_path: Path) -> None:
    _tk_auth(blank)
    for command in build_script(DATA, KEYS)[:10]:
        testing.send(blank, command)
    blank.power_off()
    again = VirtualCard.load(blank_path)
    assert LIFE_STATE_NAMES[again.state.life_state] == "personalising"
    testing.personalise(again, DATA, KEYS)
    assert again.state.life_state is profile.LifeState.PERSONALISED


def test_a_3des_card_works_end_to_end(tmp_path: Path) -> None:
    """Algorithm id 00: the same commands with 3DES keys, 8-byte blocks."""
    from sbcard.chip.crypto import Algorithm
    from sbcard.chip.keys import IssuerMasterKeys

    masters = IssuerMasterKeys(
        maintenance=bytes(range(16)),
        purchase=bytes(range(1, 17)),
        load=bytes(range(2, 18)),
        tac=bytes(range(3, 19)),
        app_maintenance=bytes(range(4, 20)),
        algorithm=Algorithm.DES3,
    )
    card = testing.personalised_card(tmp_path / "des.json", masters=masters, balance_fen=500, rng=random.Random(6))
    receipt = testing.purchase(card, 120, masters=masters)
    assert receipt.balance_after == 380
    testing.external_authenticate(card, testing.keys_of(testing.card_data(), masters).maintenance, profile.CARD_KEY_INDEX,
                                  Algorithm.DES3)


def test_commands_have_their_profile_bytes() -> None:
    """The script the tests use is the profile's: a spot check of a few APDUs."""
    script = [c.to_bytes().hex().upper() for c in build_script(DATA, KEYS)]
    assert script[0] == "800E0000"
    assert script[-1] == "80F00003"
    assert "00D695001E" + DATA.tunion.to_bytes().hex().upper() in script
    assert Command.parse(bytes.fromhex(script[-2])).ins == profile.Ins.RESET_RETRY_COUNTER


def test_blank_files_are_not_overwritten(blank_path: Path) -> None:
    with pytest.raises(FileExistsError):
        create_blank(blank_path, BLANK_SERIAL)
    with pytest.raises(FileExistsError):
        testing.personalised_card(blank_path)


def test_a_blank_with_a_drawn_serial(tmp_path: Path) -> None:
    a = create_blank(tmp_path / "a.json", rng=random.Random(9))
    b = create_blank(tmp_path / "b.json", rng=random.Random(9))
    card_a, card_b = VirtualCard.load(a), VirtualCard.load(b)
    assert card_a.chip_serial == card_b.chip_serial and len(card_a.chip_serial) == 8
    assert card_a.state.keys[("MF", profile.KeyUsage.TRANSPORT, 0)].key == transport_key(card_a.chip_serial)
    with pytest.raises(ValueError, match="8 bytes"):
        create_blank(tmp_path / "c.json", b"\x01\x02")
    assert not (tmp_path / "c.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
