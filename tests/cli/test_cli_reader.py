"""`sbcard card blank` and `sbcard reader read` on the software card."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from sbcard.chip.crypto import kdf
from sbcard.chip.keys import IssuerMasterKeys, card_keys
from sbcard.chip.personalisation import CardData, personalise
from sbcard.store.world import open_world
from terminals.drivers.emulator import EmulatorReader


def _personalise(path: Path) -> CardData:
    data = CardData(
        card_number="B7K334774",
        card_id_code="120103D156000005AD932A48BDC3B9E9",
        region_code="120103",
        citizen_id="320223195302147992",
        name="张三丰",
        ethnicity=1,
        birth_place="320223",
        issue_date=dt.date(2025, 6, 3),
        app_serial="03101200000000000007",
        insurance_type="resident",
        initial_pin="357913",
    )
    masters = IssuerMasterKeys(*(kdf(b"test", label) for label in ("MK", "DPK", "DLK", "DTK", "DAMK")))
    reader = EmulatorReader(path)
    try:
        personalise(reader, data, card_keys(masters, data.card_unique, data.app_serial_bytes))
    finally:
        reader.close()
    return data


@pytest.fixture
def blank(sbcard, tmp_path) -> Path:
    path = tmp_path / "cards" / "blank.card"
    code, _, err, _ = sbcard("card", "blank", "--out", str(path), "--serial", "0102030405060708", "--json")
    assert code == 0, err
    return path


def test_a_blank_card_has_a_chip_serial_and_an_atr_only(sbcard, blank):
    code, _, err, data = sbcard("reader", "read", "--reader", f"emulator:{blank}", "--json")
    assert code == 0, err
    assert data["atr"].upper().startswith("3B6C0000")
    assert data["chip_serial"] == "0102030405060708"
    assert data["life_state"] == "blank"
    assert data["card_number"] is None and data["balance_fen"] is None


def test_blank_never_writes_over_an_existing_card(sbcard, blank):
    code, _, err, _ = sbcard("card", "blank", "--out", str(blank))
    assert code == 2
    assert "--out" in err and "already exists" in err


@pytest.mark.parametrize("serial", ["0102", "zz02030405060708"])
def test_blank_refuses_a_malformed_chip_serial(sbcard, tmp_path, serial):
    code, _, err, _ = sbcard("card", "blank", "--out", str(tmp_path / "x.card"), "--serial", serial)
    assert code == 2 and "--serial" in err
    assert not (tmp_path / "x.card").exists()


def test_a_personalised_card_reads_back_with_masked_holder(sbcard, blank):
    _personalise(blank)
    code, out, err, data = sbcard("reader", "read", "--reader", f"emulator:{blank}", "--json")
    assert code == 0, err
    assert data["card_number"] == "B7K334774"
    assert data["card_id_code"] == "120103D156000005AD932A48BDC3B9E9"
    assert data["balance_fen"] == 0
    assert data["name"] == "张**"
    assert data["citizen_id"] == "320223********7992"
    code, out, _, _ = sbcard("reader", "read", "--reader", f"emulator:{blank}")
    assert "B7K334774" in out and "张三丰" not in out and "320223195302147992" not in out


def test_show_personal_needs_an_operator(sbcard, blank):
    _personalise(blank)
    code, out, err, _ = sbcard("reader", "read", "--reader", f"emulator:{blank}", "--show-personal")
    assert code == 2 and "--operator" in err
    assert "张三丰" not in out


def test_show_personal_reveals_and_is_audited_in_the_issuing_region(sbcard, blank, home):
    sbcard("init", "--seed", "1")
    _personalise(blank)
    code, out, err, data = sbcard(
        "reader", "read", "--reader", f"emulator:{blank}", "--show-personal", "--operator", "tj-0042", "--json"
    )
    assert code == 0, err
    assert data["name"] == "张三丰" and data["citizen_id"] == "320223195302147992"
    with open_world(home) as world:
        rows = list(world.region("tj").query("select * from audit_log"))
    assert [(r["operator"], r["action"], r["subject"]) for r in rows] == [("tj-0042", "show_personal", "B7K334774")]
    assert "320223195302147992" not in json.dumps(rows, ensure_ascii=False)


def test_trace_prints_every_apdu_on_stderr(sbcard, blank):
    code, _, err, _ = sbcard("reader", "read", "--reader", f"emulator:{blank}", "--trace")
    assert code == 0
    assert "> 80 CA 00 C1" in err and "< " in err


@pytest.mark.parametrize(
    ("spec", "exit_code", "words"),
    [
        ("emulator:/nonexistent/card.card", 1, "no card"),
        ("nfc:reader", 2, "--reader"),
        ("emulator:x.card?bogus=1", 2, "bogus"),
    ],
)
def test_reader_problems_are_one_line_errors(sbcard, spec, exit_code, words):
    code, out, err, _ = sbcard("reader", "read", "--reader", spec)
    assert code == exit_code
    assert words in err.lower() or words in err
    assert "Traceback" not in err and err.count("\n") == 1
