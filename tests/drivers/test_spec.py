"""Reader specs (``--reader``) and ``list_readers``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from drivers_fakes import SELECT_SSSE

from sbcard.chip.reader import ReaderError
from sbcard.domain.errors import InvalidInput
from terminals.drivers import emulator as emulator_mod
from terminals.drivers import pcsc as pcsc_mod
from terminals.drivers.emulator import EmulatorReader
from terminals.drivers.spec import list_readers, open_reader


@pytest.fixture
def fake_default_loader(monkeypatch, fake_loader):
    """Make EmulatorReader's default loader the fake card (open_reader takes no loader)."""
    monkeypatch.setattr(emulator_mod, "_default_loader", fake_loader)
    return fake_loader


@pytest.fixture
def card_file(tmp_path: Path) -> Path:
    p = tmp_path / "188347080.card"
    p.write_bytes(b"fake")
    return p


@pytest.fixture
def pcscd_down(monkeypatch):
    """pyscard's readers() failing the way it does when no pcscd answers."""
    pytest.importorskip("smartcard")
    import smartcard.System
    from smartcard.pcsc.PCSCExceptions import EstablishContextException

    def readers(*a, **kw):
        raise EstablishContextException(0x8010001D)

    monkeypatch.setattr(smartcard.System, "readers", readers)


def test_emulator_spec(card_file, fake_default_loader):
    r = open_reader(f"emulator:{card_file}")
    assert isinstance(r, EmulatorReader)
    assert r.path == card_file and r.faults is None
    assert r.transmit_raw(SELECT_SSSE) == b"\x90\x00"


def test_emulator_relative_path(fake_default_loader):
    r = open_reader("emulator:world/cards/x.card")
    assert r.path == Path("world/cards/x.card")


def test_trace_option_prints_to_stderr(card_file, fake_default_loader, capsys):
    r = open_reader(f"emulator:{card_file}?trace=1")
    r.transmit_raw(SELECT_SSSE)
    err = capsys.readouterr().err.splitlines()
    assert err == ["> 00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF", "< 90 00"]


def test_trace_callable_wins_over_stderr(card_file, fake_default_loader, capsys):
    lines: list[str] = []
    r = open_reader(f"emulator:{card_file}?trace=1", trace=lines.append)
    r.transmit_raw(SELECT_SSSE)
    assert len(lines) == 2 and capsys.readouterr().err == ""


def test_trace_0_turns_it_off(card_file, fake_default_loader):
    lines: list[str] = []
    r = open_reader(f"emulator:{card_file}?trace=0", trace=lines.append)
    r.transmit_raw(SELECT_SSSE)
    assert lines == []


def test_tear_option_builds_faults(card_file):
    faults_mod = pytest.importorskip("terminals.emulator.faults", reason="faults are not there yet")
    r = open_reader(f"emulator:{card_file}?tear=3&trace=0")
    assert r.faults == faults_mod.Faults.from_query({"tear": "3"})
    assert r.faults.tear_at_write == 3


def test_bad_tear_value(card_file):
    pytest.importorskip("terminals.emulator.faults", reason="faults are not there yet")
    with pytest.raises(InvalidInput) as exc:
        open_reader(f"emulator:{card_file}?tear=soon")
    assert exc.value.code == "reader.bad_spec" and exc.value.field == "reader"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("emulator:/tmp/c.card?colour=red", ["'colour'", "tear", "trace"]),
        ("emulator:/tmp/c.card?trace=1&trace=0", ["'trace'", "twice"]),
        ("emulator:/tmp/c.card?trace=maybe", ["trace", "1 or 0"]),
        ("emulator:", ["names no card file"]),
        ("emulator:?trace=1", ["names no card file"]),
        ("/tmp/c.card", ["--reader", "emulator:PATH", "pcsc:NAME", "pcsc:"]),
        ("usb:1", ["--reader", "unknown driver 'usb'", "emulator:PATH", "pcsc:"]),
        ("", ["--reader", "emulator:PATH"]),
    ],
)
def test_bad_specs_name_the_field_and_the_problem(spec, words):
    with pytest.raises(InvalidInput) as exc:
        open_reader(spec)
    e = exc.value
    assert e.code == "reader.bad_spec" and e.field == "reader" and e.exit_code == 2
    for w in words:
        assert w in e.message
    assert "\n" not in str(e)


def test_pcsc_spec_when_pcscd_is_down(pcscd_down):
    for spec in ("pcsc:", "pcsc:Virtual PCD 00 00"):
        with pytest.raises(ReaderError) as exc:
            open_reader(spec)
        assert str(exc.value) == pcsc_mod.SERVICE_DOWN


def test_pcsc_service_down_for_real_in_a_subprocess(tmp_path):
    """libpcsclite honours PCSCLITE_CSOCK_NAME: point it at a socket nobody serves."""
    pytest.importorskip("smartcard")
    code = (
        "from terminals.drivers.spec import open_reader, list_readers\n"
        "from sbcard.chip.reader import ReaderError\n"
        "try:\n"
        "    open_reader('pcsc:')\n"
        "except ReaderError as e:\n"
        "    print(type(e).__name__ + ': ' + str(e))\n"
        "print(list_readers(None))\n"
    )
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "ReaderError: " + pcsc_mod.SERVICE_DOWN
    assert "'available': False" in out[1] and pcsc_mod.SERVICE_DOWN in out[1]


def test_list_readers_without_pcscd_lists_the_virtual_cards(tmp_path, pcscd_down):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "B7K334774.card").write_bytes(b"x")
    (cards / "188347080.card").write_bytes(b"x")
    (cards / ".hidden").write_bytes(b"x")
    (cards / "188347080.card.tmp").write_bytes(b"x")
    (cards / "subdir").mkdir()
    items = list_readers(cards)
    keys = {"driver", "spec", "name", "available", "card_present", "atr_hex", "error"}
    assert all(set(i) == keys for i in items)
    assert items[0] == {
        "driver": "pcsc", "spec": None, "name": None, "available": False,
        "card_present": False, "atr_hex": None, "error": pcsc_mod.SERVICE_DOWN,
    }
    assert [i["spec"] for i in items[1:]] == [
        f"emulator:{cards / '188347080.card'}",
        f"emulator:{cards / 'B7K334774.card'}",
    ]
    assert all(i["driver"] == "emulator" and i["card_present"] and i["available"] for i in items[1:])


def test_list_readers_lists_only_card_files_and_finds_them_in_subdirectories(tmp_path, pcscd_down):
    from terminals.emulator.card_file import CARD_FILE_SUFFIX

    assert CARD_FILE_SUFFIX == ".card"
    cards = tmp_path / "cards"
    (cards / "bj" / "2024").mkdir(parents=True)
    (cards / ".trash").mkdir()
    for name in (
        "188347080.card",
        "bj/B7K334774.card",
        "bj/2024/C00000001.card",
        "notes.txt",
        "188347080.json",
        "188347080.card.tmp",
        ".188347080.card.123.tmp",
        ".hidden.card",
        ".trash/old.card",
        "bj/readme",
    ):
        (cards / name).write_bytes(b"x")
    (cards / "looks-like.card").mkdir()  # a directory is no card
    items = [i for i in list_readers(cards) if i["driver"] == "emulator"]
    assert [i["name"] for i in items] == ["188347080.card", "bj/2024/C00000001.card", "bj/B7K334774.card"]
    assert [i["spec"] for i in items] == [
        f"emulator:{cards / '188347080.card'}",
        f"emulator:{cards / 'bj' / '2024' / 'C00000001.card'}",
        f"emulator:{cards / 'bj' / 'B7K334774.card'}",
    ]


def test_list_readers_with_no_world(pcscd_down):
    assert [i["driver"] for i in list_readers(None)] == ["pcsc"]
    assert [i["driver"] for i in list_readers(Path("/nonexistent/cards"))] == ["pcsc"]


def test_list_readers_never_raises_on_a_broken_pyscard(monkeypatch):
    def boom():
        raise OSError("libpcsclite.so.1: cannot open shared object file")

    monkeypatch.setattr(pcsc_mod, "list_pcsc_readers", boom)
    (item,) = list_readers(None)
    assert item["available"] is False and "libpcsclite" in item["error"]


def test_list_readers_with_fake_pcsc(monkeypatch):
    monkeypatch.setattr(
        pcsc_mod,
        "list_pcsc_readers",
        lambda: [{"name": "ACS ACR39U 00 00", "card_present": True, "atr_hex": "3B6C"}],
    )
    (item,) = list_readers(None)
    assert item["spec"] == "pcsc:ACS ACR39U 00 00" and item["card_present"] and item["atr_hex"] == "3B6C"


def test_without_pyscard_everything_else_works(monkeypatch, card_file, fake_default_loader):
    monkeypatch.setitem(sys.modules, "smartcard", None)  # import smartcard → ImportError
    (item,) = list_readers(None)
    assert item["available"] is False and item["error"].startswith("PC/SC support unavailable")
    with pytest.raises(ReaderError, match="PC/SC support unavailable"):
        open_reader("pcsc:")
    assert open_reader(f"emulator:{card_file}").transmit_raw(SELECT_SSSE) == b"\x90\x00"
