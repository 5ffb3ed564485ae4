"""Through the real PC/SC stack: pcscd + vsmartcard-vpcd + the bridge, read with pyscard
and with pcsc-tools' scriptor. Marked ``pcsc``; skipped without pcscd/vpcd (failed under CI)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from drivers_fakes import CARD_ID_CODE, FAKE_ATR, SELECT_SSSE, personalisation_inputs

import pcsc_stack as stacklib
from sbcard.chip.apdu import Command
from sbcard.chip.reader import CardIOError, NoCard, Reader, ReaderError, transmit
from sbcard.domain.errors import InvalidInput
from terminals.drivers.emulator import EmulatorReader
from terminals.drivers.pcsc import PcscReader, list_pcsc_readers
from terminals.drivers.spec import list_readers, open_reader

pytestmark = pytest.mark.pcsc

READ_EF05_CARD_ID = bytes.fromhex("00B2012C00")  # READ RECORD tag 01 of SFI 05: 卡识别码
GET_DATA_CHIP = bytes.fromhex("80CA00C100")
ECHO = bytes.fromhex("0001000003A1B2C3")


@pytest.fixture
def fake_card_file(tmp_path: Path) -> Path:
    p = tmp_path / "fake.card"
    p.write_bytes(b"fake")
    return p


@pytest.fixture
def fake_served(pcsc_stack, fake_card_file, fake_loader):
    """The fake card served from a thread of this process (no emulated card needed)."""
    with stacklib.serve_in_thread(fake_card_file, fake_loader, reader=pcsc_stack.reader, port=pcsc_stack.port) as lines:
        yield lines


# -- with the fake card ---------------------------------------------------------------


def test_fake_card_through_pyscard_reader(pcsc_stack, fake_served):
    lines: list[str] = []
    with PcscReader(pcsc_stack.reader, trace=lines.append) as r:
        assert isinstance(r, Reader)
        assert r.card_present()
        assert r.atr == FAKE_ATR
        assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"
        assert transmit(r, Command(0x00, 0x01, 0, 0, b"\xa1\xb2\xc3")).data == b"\xa1\xb2\xc3"
    assert lines[:2] == ["> 00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF", "< 90 00"]


def test_specs_pick_the_reader(pcsc_stack, fake_served):
    for spec in (f"pcsc:{pcsc_stack.reader}", "pcsc:"):
        r = open_reader(spec)
        try:
            assert r.name == pcsc_stack.reader
            assert r.transmit_raw(ECHO) == bytes.fromhex("A1B2C39000")
        finally:
            r.close()


def test_listing_shows_the_card_and_its_atr(pcsc_stack, fake_served):
    by_name = {r["name"]: r for r in list_pcsc_readers()}
    assert by_name[pcsc_stack.reader] == {"name": pcsc_stack.reader, "card_present": True, "atr_hex": FAKE_ATR.hex().upper()}
    items = list_readers(None)
    assert any(i["spec"] == f"pcsc:{pcsc_stack.reader}" and i["card_present"] for i in items)


def test_no_such_reader_lists_the_available_ones(pcsc_stack):
    with pytest.raises(InvalidInput) as exc:  # bad input (exit 2), not a reader failure
        PcscReader("Gemalto PC Twin")
    assert exc.value.code == "reader.unknown" and exc.value.field == "reader"
    assert f'"{pcsc_stack.reader}"' in exc.value.message and "available" in exc.value.message


def test_a_prefix_of_both_virtual_readers_is_ambiguous(pcsc_stack):
    with pytest.raises(InvalidInput) as exc:
        PcscReader("Virtual PCD")
    assert exc.value.code == "reader.ambiguous"
    assert '"Virtual PCD 00 00"' in exc.value.message and '"Virtual PCD 00 01"' in exc.value.message


def test_empty_reader_is_no_card(pcsc_stack):
    assert not stacklib.card_state(pcsc_stack.reader)[0]
    r = PcscReader(pcsc_stack.reader)  # opening an empty reader is fine
    assert not r.card_present()
    with pytest.raises(NoCard):
        r.atr
    with pytest.raises(NoCard):
        r.transmit_raw(SELECT_SSSE)


def test_card_removed_between_commands_then_put_back(pcsc_stack, fake_card_file, fake_loader):
    with stacklib.serve_in_thread(fake_card_file, fake_loader, reader=pcsc_stack.reader, port=pcsc_stack.port):
        r = PcscReader(pcsc_stack.reader)
        assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"
    # the bridge stopped: the card is out, the open connection is dead
    with pytest.raises(CardIOError):
        r.transmit_raw(SELECT_SSSE)
    with pytest.raises(NoCard):
        r.transmit_raw(SELECT_SSSE)
    with stacklib.serve_in_thread(fake_card_file, fake_loader, reader=pcsc_stack.reader, port=pcsc_stack.port):
        assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"  # the same reader object reconnects
    r.close()


def test_torn_card_is_card_io_error_then_comes_back(pcsc_stack, fake_card_file, fake_loader):
    pytest.importorskip("terminals.emulator.card", reason="the emulated card (CardTorn) is not there yet")
    fake_loader.tear_on = 0x54
    with stacklib.serve_in_thread(fake_card_file, fake_loader, reader=pcsc_stack.reader, port=pcsc_stack.port) as lines:
        r = PcscReader(pcsc_stack.reader)
        assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"
        with pytest.raises(CardIOError):
            r.transmit_raw(bytes.fromhex("805401000F" + "00" * 15 + "08"))
        fake_loader.tear_on = None
        # the bridge re-inserts the card (loaded fresh) after ~1 s
        assert stacklib.wait_until(lambda: not r.card_present(), 3.0), lines
        assert stacklib.wait_until(r.card_present, 5.0), lines
        assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"
        assert len(fake_loader.cards) == 2
        r.close()


def test_pcsc_reader_when_pcscd_is_down(monkeypatch):
    """No stack needed: pyscard's context failing the way it does without pcscd."""
    import smartcard.System
    from smartcard.pcsc.PCSCExceptions import EstablishContextException

    from terminals.drivers.pcsc import SERVICE_DOWN

    def readers(*a, **kw):
        raise EstablishContextException(0x8010001D)

    monkeypatch.setattr(smartcard.System, "readers", readers)
    with pytest.raises(ReaderError) as exc:
        PcscReader("Virtual PCD 00 00")
    assert str(exc.value) == SERVICE_DOWN == (
        "PC/SC service not running: start it with `pcscd` (Debian package pcscd)"
    )


# -- with the real emulated card, served by `python -m terminals.drivers.vpcd` ---------


@pytest.fixture
def blank_card(tmp_path: Path) -> Path:
    pytest.importorskip("terminals.emulator.card", reason="the emulated card is not there yet")
    blank = pytest.importorskip("terminals.emulator.blank", reason="create_blank is not there yet")
    return blank.create_blank(tmp_path / "blank.card")


@pytest.fixture
def personalised_card(blank_card: Path) -> Path:
    from sbcard.chip.personalisation import personalise

    data, keys = personalisation_inputs()
    with EmulatorReader(blank_card) as r:
        personalise(r, data, keys)
    return blank_card


def _emulator_answers(card: Path, apdus: list[bytes]) -> list[bytes]:
    with EmulatorReader(card) as r:
        return [r.transmit_raw(a) for a in apdus]


def test_real_card_through_pyscard_answers_as_in_process(served_card, personalised_card):
    from smartcard.System import readers

    apdus = [SELECT_SSSE, READ_EF05_CARD_ID, GET_DATA_CHIP]
    expected = _emulator_answers(personalised_card, apdus)
    expected_atr = EmulatorReader(personalised_card).atr
    bridge = served_card(personalised_card)
    (reader,) = [r for r in readers() if str(r) == bridge.reader]
    conn = reader.createConnection()
    conn.connect()
    try:
        assert bytes(conn.getATR()) == expected_atr
        got = []
        for apdu in apdus:
            data, sw1, sw2 = conn.transmit(list(apdu))
            got.append(bytes(data) + bytes((sw1, sw2)))
    finally:
        conn.disconnect()
        conn.release()
    assert got[0][-2:] == b"\x90\x00"
    assert got[1] == b"\x01\x10" + bytes.fromhex(CARD_ID_CODE) + b"\x90\x00"  # TLV 01 卡识别码
    assert got == expected


def test_real_card_through_scriptor(served_card, personalised_card):
    if shutil.which("scriptor") is None:
        pytest.skip("pcsc-tools' scriptor is not installed")
    expected = _emulator_answers(personalised_card, [SELECT_SSSE, READ_EF05_CARD_ID])
    bridge = served_card(personalised_card)
    script = "\n".join(a.hex(" ").upper() for a in (SELECT_SSSE, READ_EF05_CARD_ID)) + "\n"
    proc = subprocess.run(
        ["scriptor", "-r", bridge.reader], input=script, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    responses = parse_scriptor(proc.stdout)
    assert responses[0].endswith("90 00")
    assert responses[1] == "01 10 " + bytes.fromhex(CARD_ID_CODE).hex(" ").upper() + " 90 00"
    assert responses == [e.hex(" ").upper() for e in expected]


def test_read_card_gives_the_same_snapshot_both_ways(served_card, personalised_card):
    from sbcard.chip.reading import read_card

    with EmulatorReader(personalised_card) as r:
        in_process = read_card(r)
    bridge = served_card(personalised_card)
    with PcscReader(bridge.reader) as r:
        via_pcsc = read_card(r)
    assert via_pcsc == in_process
    assert via_pcsc.card_number == "188347080"


def test_personalise_through_pcsc_survives_a_tear(served_card, blank_card):
    """Personalisation torn at the 5th write (bridge --tear 5), then run again: it
    starts over and completes; the bridge persisted every write to the card file."""
    from sbcard.chip.personalisation import personalise
    from sbcard.chip.reading import read_card

    data, keys = personalisation_inputs()
    bridge = served_card(blank_card, "--tear", "5")
    with PcscReader(bridge.reader) as r:
        with pytest.raises(CardIOError):
            personalise(r, data, keys)
        assert stacklib.wait_until(lambda: not r.card_present(), 3.0), bridge.log()  # pulled out
        assert stacklib.wait_until(r.card_present, 5.0), bridge.log()  # and tapped again
        result = personalise(r, data, keys)
    assert not result.resumed
    bridge.stop()
    with EmulatorReader(blank_card) as r:
        assert read_card(r).card_number == "188347080"


def test_real_card_via_spec_and_trace(served_card, personalised_card):
    bridge = served_card(personalised_card)
    lines: list[str] = []
    r = open_reader(f"pcsc:{bridge.reader}", trace=lines.append)
    try:
        resp = transmit(r, Command(0x00, 0xA4, 0x04, 0x00, SELECT_SSSE[5:]))
        assert resp.ok
    finally:
        r.close()
    assert lines[0] == "> " + SELECT_SSSE.hex(" ").upper()
    assert lines[1].endswith("90 00")


def parse_scriptor(out: str) -> list[str]:
    """scriptor prints ``< 6F 10 … 90 00 : Normal processing.``; long answers wrap."""
    responses: list[str] = []
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("< "):
            current = []
            responses.append("")
            line = line[2:]
        elif line.startswith(("> ", "Using")) or current is None:
            current = None
            continue
        body = line.split(":", 1)[0].strip()
        current.extend(body.split())
        responses[-1] = " ".join(current)
    return responses


def test_parse_scriptor():
    out = "Using T=0 protocol\n> 00 A4 04 00 02 3F 00\n< 90 00 : Normal processing.\n> 00 B2 01 2C 00\n< 01 02 \n03 90 00 : Normal processing.\n"
    assert parse_scriptor(out) == ["90 00", "01 02 03 90 00"]



def test_pcsc_colon_refuses_when_both_virtual_readers_hold_a_card(pcsc_stack, fake_card_file, fake_loader):
    second = "Virtual PCD 00 01"  # vpcd's second reader listens on the next port
    if second not in list(stacklib_names()):
        pytest.skip(f'pcscd has no reader "{second}"')
    with stacklib.serve_in_thread(fake_card_file, fake_loader, reader=pcsc_stack.reader, port=pcsc_stack.port), \
            stacklib.serve_in_thread(fake_card_file, fake_loader, reader=second, port=pcsc_stack.port + 1):
        with pytest.raises(InvalidInput) as refused:
            open_reader("pcsc:")
        assert refused.value.code == "reader.several_cards"
        assert f'"{pcsc_stack.reader}", "{second}"' in refused.value.message
        r = open_reader(f"pcsc:{second}")  # naming one still works
        try:
            assert r.transmit_raw(ECHO) == bytes.fromhex("A1B2C39000")
        finally:
            r.close()


def stacklib_names() -> list[str]:
    return [r["name"] for r in list_pcsc_readers()]
