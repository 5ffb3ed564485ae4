"""The card file: format, validation, atomic saves, persistence across process restarts."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from emulator_helpers import SELECT_DF04, SELECT_TU, ok, sw

from sbcard.chip import profile as P
from sbcard.chip import sw as SW
from sbcard.chip.purse import EP_PURCHASE
from terminals.emulator import state as image
from terminals.emulator import testing as T
from terminals.emulator.card import VirtualCard
from terminals.emulator.faults import Faults


def test_the_file_format(card_path: Path) -> None:
    doc = json.loads(card_path.read_text())
    assert doc["format"] == "sbcard-virtual-card" and doc["version"] == 1
    assert doc["life_state"] == "personalised"
    assert doc["os_version"] == "0301"
    assert set(doc["keys"]) == {"MF/00/00", "MF/01/01", "TU/02/01", "TU/03/01", "TU/04/01", "TU/05/01"}
    assert set(doc["records"]) == {"SSSE/05", "SSSE/06", "DF04/05", "DF04/06"}
    assert doc["records"]["SSSE/05"]["07"] == b"188347080".hex()
    assert set(doc["binaries"]) == {"TU/15", "TU/17"}
    assert doc["purse"] == {"balance": 10_000, "offline_counter": 0, "online_counter": 1, "overdraft_limit": 0, "max_balance": 100_000}
    assert doc["pin"] == {"value": "123456", "tries_left": 3}
    assert doc["last_load"]["type"] == 2 and doc["last_purchase"] is None


def test_one_state_has_one_image(card_path: Path) -> None:
    state = image.load(card_path)
    assert image.dumps(state) == card_path.read_bytes()
    assert image.loads(image.dumps(state)) == state


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a JSON card image"),
        (b"\xff\xfe\x00garbage", "not a JSON card image"),
        (b"hello", "not a JSON card image"),
        (b"[1, 2]", "expected an object"),
        (b"{}", "no format marker 'sbcard-virtual-card'"),
        (b'{"format": "sbcard-virtual-card", "version": 2}', "format version 2"),
    ],
)
def test_a_file_that_is_no_card(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as e:
        VirtualCard.load(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("chip_serial", "0102", "chip_serial: 2 bytes, expected 8"),
        ("chip_serial", "zz", "chip_serial: not hex"),
        ("life_state", "broken", "life_state: unknown 'broken'"),
        ("ext_auth_tries", 16, "ext_auth_tries: expected an integer 0..15"),
        ("keys", {"MF/09/01": {"alg": 4, "version": 1, "key": "00" * 16}}, "unknown usage"),
        ("keys", {"XX/01/01": {"alg": 4, "version": 1, "key": "00" * 16}}, "unknown DF 'XX'"),
        ("keys", {"MF/01/01": {"alg": 7, "version": 1, "key": "00" * 16}}, "unknown algorithm id 07"),
        ("records", {"SSSE/5": {}}, "SFI: expected two hex digits"),
        ("purse", {"balance": -1}, "purse.max_balance"),
        ("pin", {"value": "1234", "tries_left": 3}, "pin.value: 2 bytes, expected 3"),
        ("locked", "TU", "locked: expected a list"),
        ("last_purchase", {"type": 6, "counter": 0, "mac2": "00", "tac": "00000000"}, "last_purchase.mac2"),
    ],
)
def test_a_damaged_card_file_names_what_is_wrong(card_path: Path, field: str, value, message: str) -> None:
    doc = json.loads(card_path.read_text())
    doc[field] = value
    card_path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not a valid sbcard virtual card") as e:
        VirtualCard.load(card_path)
    assert message in str(e.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VirtualCard.load(tmp_path / "none.json")


def test_a_save_leaves_no_temporary_file(card: VirtualCard, card_path: Path) -> None:
    T.purchase(card, 1)
    assert [p.name for p in card_path.parent.iterdir()] == ["card.json"]


def test_a_failed_save_keeps_the_old_file_and_the_old_state(card: VirtualCard, card_path: Path, monkeypatch) -> None:
    before, state_before = card_path.read_bytes(), image.load(card_path)

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    p = T.start_purchase(card, 100)
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(SW.CardStatus) as e:
        T.finish_purchase(card, p)
    assert e.value.sw == SW.NO_PRECISE_DIAGNOSIS
    monkeypatch.undo()
    assert card_path.read_bytes() == before
    assert card.state == state_before  # the journal undid the applied writes
    assert [p.name for p in card_path.parent.iterdir()] == ["card.json"]
    T.purchase(card, 100)  # and the card still works


def test_everything_persists_across_a_process_restart(card: VirtualCard, card_path: Path) -> None:
    receipt = T.purchase(card, 321)
    run_verify = sw(card, "0020000003000000")
    assert run_verify == 0x63C2
    ok(card, SELECT_DF04)
    ok(card, "0020000003123456")
    ok(card, "00E2004020" + "5A" * 32)
    assert sw(card, "0020000003000000") == 0x63C2
    state = card.state

    restarted = VirtualCard.load(card_path)
    assert restarted.state == state
    assert T.balance(restarted) == 10_000 - 321
    assert T.transaction_prove(restarted, EP_PURCHASE, receipt.counter) == (receipt.mac2, receipt.tac)
    assert sw(restarted, "00200000") == 0x63C2
    ok(restarted, SELECT_DF04)
    assert sw(restarted, "00E2004020" + "00" * 32) == 0x6982  # PIN verification was RAM
    assert ok(restarted, "0020000003123456") == b""
    assert ok(restarted, "00B2014400") == b"\x5a" * 32


def test_power_on_resets_the_session(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    ok(card, "0020000003123456")
    T.start_purchase(card, 1)
    card.power_on()
    assert sw(card, "805C000204") == 0x6985  # the MF is selected again
    ok(card, SELECT_TU)
    assert sw(card, "805401000F" + "00" * 15) == 0x6985


def test_process_powers_an_unpowered_card_on(card_path: Path) -> None:
    card = VirtualCard.load(card_path)
    assert ok(card, "80CA00C1")[8] == P.LifeState.PERSONALISED


def test_trace_hook(card: VirtualCard) -> None:
    lines: list[str] = []
    card.trace = lines.append
    ok(card, "80CA00C1")
    assert lines[0] == "> 80 CA 00 C1" and lines[1].startswith("< ") and lines[1].endswith("90 00")


def test_a_durable_card_fsyncs(card_path: Path, monkeypatch) -> None:
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    card = VirtualCard(card_path, image.load(card_path), durable=True)
    T.purchase(card, 1)
    assert synced
    synced.clear()
    plain = VirtualCard.load(card_path)
    T.purchase(plain, 1)
    assert not synced


# --- faults -----------------------------------------------------------------------------------


def test_faults_from_a_query() -> None:
    assert Faults.from_query({}) == Faults()
    assert Faults.from_query({"tear": "3"}) == Faults(tear_at_write=3)
    assert Faults.from_query({"tear": " 12 "}).tear_at_write == 12


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tear": "0"}, "'tear'"),
        ({"tear": "-1"}, "'tear'"),
        ({"tear": "x"}, "'tear'"),
        ({"tear": ""}, "'tear'"),
        ({"tear": "٣"}, "'tear'"),  # a digit, but not ASCII
        ({"tare": "3"}, "'tare'"),
        ({"tear": "1", "seed": "2"}, "'seed'"),
    ],
)
def test_bad_fault_options_name_the_option(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.from_query(query)


@pytest.mark.parametrize("value", [0, -2, True, 1.5])
def test_faults_refuse_a_bad_write_number(value) -> None:
    with pytest.raises(ValueError, match="tear_at_write"):
        Faults(tear_at_write=value)


def test_a_seeded_card_is_reproducible(template: Path, tmp_path: Path) -> None:
    images = []
    for name in ("a.json", "b.json"):
        path = tmp_path / name
        path.write_bytes(template.read_bytes())
        card = VirtualCard.load(path, rng=random.Random(42))
        T.purchase(card, 7)
        T.load(card, 9)
        images.append(path.read_bytes())
    assert images[0] == images[1]
