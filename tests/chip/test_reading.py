"""Reading a card: what ``read_card`` reports, and what ``--json`` shows of it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from chip_helpers import keys_for, make_card_data

from sbcard.chip import commands
from sbcard.chip import profile
from sbcard.chip import purse
from sbcard.chip.codec import bcd_datetime
from sbcard.chip.keys import transport_key
from sbcard.chip.personalisation import personalise
from sbcard.chip.reading import CardSnapshot, read_card
from sbcard.chip.tlv import Tlv
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator.blank import create_blank

SERIAL = bytes.fromhex("5342000000000001")
TERMINAL = bytes.fromhex("110105000001")

JSON_KEYS = {
    "atr", "chip_serial", "life_state", "card_number", "card_id_code", "card_type", "spec_version",
    "issue_date", "expiry_date", "citizen_id", "name", "sex", "region", "app_serial", "balance_fen",
    "transit_blocked", "transactions", "insurance", "warnings",
}  # fmt: skip
PERSONAL_KEYS = {"birth_date", "birth_place", "ethnicity"}


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    return create_blank(tmp_path / "card.json", chip_serial=SERIAL)


@pytest.fixture
def issued(blank: Path, card_data) -> Path:
    with EmulatorReader(blank) as reader:
        personalise(reader, card_data, keys_for(card_data))
    return blank


def read(path: Path) -> CardSnapshot:
    with EmulatorReader(path) as reader:
        return read_card(reader)


# ------------------------------------------------------------------ life states


def test_a_blank_card_gives_its_chip_and_nulls(blank):
    snapshot = read(blank)
    assert snapshot.life_state is profile.LifeState.BLANK
    out = snapshot.to_json()
    assert set(out) == JSON_KEYS
    assert out["atr"] == "3B6C0000" + b"SBC3".hex().upper() + SERIAL.hex().upper()
    assert (out["chip_serial"], out["life_state"]) == ("5342000000000001", "blank")
    assert out["warnings"] == []
    assert all(value is None for key, value in out.items() if key not in {"atr", "chip_serial", "life_state", "warnings"})


def test_a_card_being_personalised_shows_nothing_of_a_person(blank):
    with EmulatorReader(blank) as reader:
        commands.external_authenticate(reader, transport_key(SERIAL), profile.TRANSPORT_KEY_INDEX)
        commands.Erase().send(reader)
        commands.select_ssse().send(reader)
        commands.UpdateRecord(profile.SFI_EF05, Tlv(profile.Tag.CARD_NUMBER, b"188347080")).send(reader)
    snapshot = read(blank)
    assert snapshot.to_json()["life_state"] == "personalising"
    assert snapshot.card_number is None and snapshot.balance_fen is None


# ------------------------------------------------------------------ a personalised card


def test_a_personalised_card_reads_back_every_field(issued, card_data):
    s = read(issued)
    assert s.personalised and s.warnings == ()
    assert (s.card_id_code, s.card_type, s.spec_version, s.init_org) == (
        "110105D156000005AD932A48BDC3B9E9",
        "3",
        "3.00",
        "110105" + "00" * 9,
    )
    assert (s.card_number, s.issue_date, s.expiry_date) == ("188347080", dt.date(2024, 3, 1), dt.date(2034, 3, 1))
    assert (s.citizen_id, s.name, s.sex, s.ethnicity, s.birth_place, s.birth_date) == (
        "320223195302147992",
        "张三",
        "M",
        1,
        "320223",
        dt.date(1953, 2, 14),
    )
    assert s.region == "110105"
    assert s.tunion == card_data.tunion and s.insurance == card_data.insurance
    assert (s.balance_fen, s.transit_blocked, s.transactions) == (0, False, ())


def test_json_masks_the_person_unless_asked(issued):
    out = read(issued).to_json()
    assert set(out) == JSON_KEYS
    assert (out["citizen_id"], out["name"]) == ("320223********7992", "张*")
    assert (out["issue_date"], out["expiry_date"]) == ("2024-03-01", "2034-03-01")
    assert out["insurance"] == {
        "insured_region": "110105",
        "type": "employee",
        "retired": True,
        "personal_account": True,
        "offline_limit_fen": 20_000,
        "offline_used_fen": 0,
        "offline_year": 2024,
    }


def test_json_shows_the_person_with_show_personal(issued):
    out = read(issued).to_json(show_personal=True)
    assert set(out) == JSON_KEYS | PERSONAL_KEYS
    assert (out["citizen_id"], out["name"]) == ("320223195302147992", "张三")
    assert (out["birth_date"], out["birth_place"], out["ethnicity"]) == ("1953-02-14", "320223", 1)


# ------------------------------------------------------------------ what a field reader tolerates


def _rewrite(path: Path, card_data, sfi: int, record: Tlv) -> None:
    """An outlet's correction under the maintenance key (MK)."""
    with EmulatorReader(path) as reader:
        commands.external_authenticate(reader, keys_for(card_data).maintenance, profile.CARD_KEY_INDEX)
        commands.select_ssse().send(reader)
        commands.UpdateRecord(sfi, record).send(reader)


def test_a_card_number_failing_its_check_is_read_with_a_warning(issued, card_data):
    _rewrite(issued, card_data, profile.SFI_EF05, Tlv(profile.Tag.CARD_NUMBER, b"188347081"))
    s = read(issued)
    assert s.card_number == "188347081"
    assert len(s.warnings) == 1 and "188347081" in s.warnings[0] and "check character" in s.warnings[0]
    assert s.to_json()["warnings"] == list(s.warnings)


def test_an_undecodable_field_is_null_with_a_warning(issued, card_data):
    _rewrite(issued, card_data, profile.SFI_EF06, Tlv(profile.Tag.SEX, b"9"))
    s = read(issued)
    assert s.sex is None and s.name == "张三"
    assert s.warnings == ("SSSE/EF06/0A: cannot decode",)  # the holder's bytes stay out of warnings


def test_a_card_id_code_outside_the_ministrys_rid_is_kept_with_a_warning(issued, card_data):
    _rewrite(issued, card_data, profile.SFI_EF05, Tlv(profile.Tag.CARD_ID_CODE, bytes.fromhex("110105D156000099AD932A48BDC3B9E9")))
    s = read(issued)
    assert s.card_id_code == "110105D156000099AD932A48BDC3B9E9" and s.region == "110105"
    assert len(s.warnings) == 1 and "RID" in s.warnings[0]


# ------------------------------------------------------------------ the purse


def _load(reader, keys, amount: int, at: dt.datetime) -> None:
    init = commands.InitializeForLoad(0x01, amount, TERMINAL).send(reader)
    sk = purse.load_session_key(init.algorithm, keys.load, init.random, init.online_counter)
    assert init.mac1 == purse.load_mac1(init.algorithm, sk, init.balance, amount, purse.EP_LOAD, TERMINAL)
    mac2 = purse.load_mac2(init.algorithm, sk, amount, purse.EP_LOAD, TERMINAL, bcd_datetime(at))
    commands.CreditForLoad(bcd_datetime(at), mac2).send(reader)


def _purchase(reader, keys, amount: int, at: dt.datetime, serial: bytes) -> commands.PurchaseResult:
    init = commands.InitializeForPurchase(0x01, amount, TERMINAL).send(reader)
    alg = init.algorithm
    sk = purse.purchase_session_key(alg, keys.purchase, init.random, init.offline_counter, serial)
    mac1 = purse.purchase_mac1(alg, sk, amount, purse.EP_PURCHASE, TERMINAL, bcd_datetime(at))
    result = commands.DebitForPurchase(serial, bcd_datetime(at), mac1).send(reader)
    assert result.mac2 == purse.purchase_mac2(alg, sk, amount)
    return result


def test_balance_and_log_newest_first_after_a_load_and_a_purchase(issued, card_data):
    keys = keys_for(card_data)
    loaded, bought = dt.datetime(2025, 1, 9, 8, 0, 0), dt.datetime(2025, 1, 9, 8, 30, 15)
    with EmulatorReader(issued) as reader:
        commands.select_tunion().send(reader)
        _load(reader, keys, 5000, loaded)
        result = _purchase(reader, keys, 300, bought, bytes.fromhex("00000007"))
        prove = commands.GetTransactionProve(purse.EP_PURCHASE, 0).send(reader)
    assert (prove.mac2, prove.tac) == (result.mac2, result.tac)

    s = read(issued)
    assert s.balance_fen == 4700
    assert s.to_json()["transactions"] == [
        {"counter": 0, "type": "purchase", "amount_fen": 300, "terminal": "110105000001", "at": "2025-01-09T08:30:15"},
        {"counter": 0, "type": "load", "amount_fen": 5000, "terminal": "110105000001", "at": "2025-01-09T08:00:00"},
    ]


def test_a_blocked_transit_application_is_reported_not_refused(issued, card_data):
    with EmulatorReader(issued) as reader:
        commands.select_tunion().send(reader)
        commands.block_application(reader, keys_for(card_data).app_maintenance)
    s = read(issued)
    assert s.transit_blocked is True and s.balance_fen is None
    assert s.card_number == card_data.card_number
    assert s.warnings == ("the T-Union application is blocked",)
    with EmulatorReader(issued) as reader:
        commands.select_tunion().send(reader)
        commands.unblock_application(reader, keys_for(card_data).app_maintenance)
    assert read(issued).transit_blocked is False


def test_another_regions_card_reads_its_own_region(tmp_path):
    data = make_card_data(
        region_code="120103",
        card_id_code="120103D156000005000000000000BEEF",
        card_number="KD5578904",
        citizen_id="441522199106240088",
        name="欧阳娜娜",
        ethnicity=3,
        birth_place="441522",
        insurance_type="resident",
        retired=False,
    )
    path = create_blank(tmp_path / "tj.json")
    with EmulatorReader(path) as reader:
        personalise(reader, data, keys_for(data))
    out = read(path).to_json()
    assert (out["region"], out["name"], out["sex"], out["card_number"]) == ("120103", "欧***", "F", "KD5578904")
    assert out["insurance"]["type"] == "resident" and out["insurance"]["personal_account"] is False
