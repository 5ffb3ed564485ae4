"""The in-process reader, with the fake card (and the real emulated card if present)."""

from __future__ import annotations

from pathlib import Path

import pytest
from drivers_fakes import FAKE_ATR, SELECT_SSSE

from sbcard.chip.apdu import Command
from sbcard.chip.reader import CardIOError, NoCard, Reader, ReaderError, transmit
from terminals.drivers.emulator import EmulatorReader


@pytest.fixture
def card_file(tmp_path: Path) -> Path:
    p = tmp_path / "card.bin"
    p.write_bytes(b"fake")
    return p


def test_is_a_reader(card_file, fake_loader):
    r = EmulatorReader(card_file, loader=fake_loader)
    assert isinstance(r, Reader)
    assert r.name == f"emulator:{card_file}"


def test_card_already_in_the_reader_counts_as_inserted(card_file, fake_loader):
    r = EmulatorReader(card_file, loader=fake_loader)
    assert r.card_present()
    assert fake_loader.cards == []  # not powered until used
    assert r.atr == FAKE_ATR
    assert r.atr == FAKE_ATR
    assert len(fake_loader.cards) == 1
    assert fake_loader.cards[0].log == ["on"]


def test_transmit_powers_on_and_passes_bytes_through(card_file, fake_loader):
    r = EmulatorReader(card_file, loader=fake_loader)
    assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"
    assert r.transmit_raw(bytes.fromhex("0001000003AABBCC")) == bytes.fromhex("AABBCC9000")
    card = fake_loader.cards[0]
    assert card.log == ["on", SELECT_SSSE.hex(), "0001000003aabbcc"]


def test_transmit_helper_parses_the_response(card_file, fake_loader):
    r = EmulatorReader(card_file, loader=fake_loader)
    resp = transmit(r, Command(0x00, 0x01, 0, 0, b"\x12\x34"))
    assert resp.ok and resp.data == b"\x12\x34"


def test_no_file_no_card(tmp_path, fake_loader):
    r = EmulatorReader(tmp_path / "missing.card", loader=fake_loader)
    assert not r.card_present()
    with pytest.raises(NoCard):
        r.atr
    with pytest.raises(NoCard):
        r.transmit_raw(SELECT_SSSE)


def test_a_card_put_in_later_is_found(tmp_path, fake_loader):
    p = tmp_path / "later.card"
    r = EmulatorReader(p, loader=fake_loader)
    with pytest.raises(NoCard):
        r.atr
    p.write_bytes(b"x")
    assert r.card_present()
    assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"


def test_card_file_removed_between_commands(card_file, fake_loader):
    r = EmulatorReader(card_file, loader=fake_loader)
    r.transmit_raw(SELECT_SSSE)
    card_file.unlink()
    assert not r.card_present()
    with pytest.raises(NoCard):
        r.transmit_raw(SELECT_SSSE)


def test_not_a_card_file_is_a_reader_error(card_file):
    def bad_loader(path, faults):
        raise ValueError("not a card")

    r = EmulatorReader(card_file, loader=bad_loader)
    with pytest.raises(ReaderError, match="not a virtual card file") as exc:
        r.atr
    assert not isinstance(exc.value, NoCard)


def test_faults_reach_the_loader(card_file, fake_loader):
    marker = object()
    r = EmulatorReader(card_file, marker, loader=fake_loader)
    r.atr
    assert fake_loader.cards[0].faults is marker


def test_trace_lines(card_file, fake_loader):
    lines: list[str] = []
    r = EmulatorReader(card_file, trace=lines.append, loader=fake_loader)
    r.transmit_raw(SELECT_SSSE)
    r.transmit_raw(bytes.fromhex("00010000 02 0a0b".replace(" ", "")))
    assert lines == [
        "> 00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF",
        "< 90 00",
        "> 00 01 00 00 02 0A 0B",
        "< 0A 0B 90 00",
    ]


def test_close_powers_off_and_next_use_is_a_new_tap(card_file, fake_loader):
    r = EmulatorReader(card_file, loader=fake_loader)
    r.atr
    r.close()
    assert fake_loader.cards[0].log == ["on", "off"]
    r.atr
    assert len(fake_loader.cards) == 2
    r.close()
    r.close()  # idempotent


def test_context_manager(card_file, fake_loader):
    with EmulatorReader(card_file, loader=fake_loader) as r:
        r.atr
    assert fake_loader.cards[0].log == ["on", "off"]


def test_torn_card_leaves_the_reader_until_tapped_again(card_file, fake_loader):
    pytest.importorskip("terminals.emulator.card", reason="the emulated card (CardTorn) is not there yet")
    fake_loader.tear_on = 0x54
    lines: list[str] = []
    r = EmulatorReader(card_file, trace=lines.append, loader=fake_loader)
    assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"
    with pytest.raises(CardIOError, match="torn"):
        r.transmit_raw(bytes.fromhex("805401000F" + "00" * 15 + "08"))
    assert lines[-1].startswith("< (card torn")
    assert not r.card_present()
    with pytest.raises(NoCard):
        r.transmit_raw(SELECT_SSSE)
    with pytest.raises(NoCard):
        r.atr
    # a new reader on the same file = the card tapped again: loaded fresh
    r2 = EmulatorReader(card_file, loader=fake_loader)
    assert r2.transmit_raw(SELECT_SSSE) == b"\x90\x00"
    assert len(fake_loader.cards) == 2


# -- the real emulated card, once it exists -------------------------------------------


@pytest.fixture
def blank_card(tmp_path: Path) -> Path:
    pytest.importorskip("terminals.emulator.card", reason="the emulated card is not there yet")
    blank = pytest.importorskip("terminals.emulator.blank", reason="create_blank is not there yet")
    return blank.create_blank(tmp_path / "blank.card")


def test_real_card_select_ssse(blank_card):
    lines: list[str] = []
    with EmulatorReader(blank_card, trace=lines.append) as r:
        assert r.atr.startswith(bytes.fromhex("3B6C0000") + b"SBC3")
        assert r.transmit_raw(SELECT_SSSE)[-2:] == b"\x90\x00"
    assert lines[0] == "> 00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF"
    assert lines[1].endswith("90 00")


def test_real_card_answers_garbage_with_a_status_word(blank_card):
    with EmulatorReader(blank_card) as r:
        for junk in (b"", b"\x00", b"\x00\xa4\x04", b"\x00\xa4\x04\x00\x05\x01"):
            assert len(r.transmit_raw(junk)) >= 2


def test_real_card_not_a_card_file(tmp_path):
    pytest.importorskip("terminals.emulator.card", reason="the emulated card is not there yet")
    p = tmp_path / "not-a-card.txt"
    p.write_text("hello")
    with pytest.raises(ReaderError, match="not a virtual card file"):
        EmulatorReader(p).atr
