"""The T-Union e-purse: purchase, compound purchase, load, prove, block (¥100.00 on the card)."""

from __future__ import annotations

import random
from pathlib import Path

import attrs
import pytest
from emulator_helpers import SELECT_SSSE, SELECT_TU, TEMPLATE_BALANCE, TERMINAL_NO, ok, run, sw

from sbcard.chip import profile
from sbcard.chip import sw as status_words
from sbcard.chip.codec import bcd_datetime
from sbcard.chip.crypto import cbc_mac
from sbcard.chip.purse import CAPP_PURCHASE, EP_LOAD, EP_PURCHASE
from terminals.emulator import card_file, testing
from terminals.emulator.card import VirtualCard

WHEN = testing.TEST_WHEN
DATE_TIME = bcd_datetime(WHEN).hex()


def _log(card: VirtualCard, n: int) -> bytes:
    ok(card, SELECT_TU)
    return ok(card, f"00B2{n:02X}C400")


def test_get_balance(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    assert ok(card, "805C000204") == TEMPLATE_BALANCE.to_bytes(4, "big")


def test_a_purchase(card: VirtualCard, keys) -> None:
    receipt = testing.purchase(card, 250, keys=keys)  # MAC2 and TAC verified by the helper
    assert (receipt.counter, receipt.balance_before, receipt.balance_after) == (0, TEMPLATE_BALANCE, 9_750)
    assert testing.balance(card) == 9_750
    purse = card.state.purse
    assert (purse.offline_counter, purse.online_counter) == (1, 1)
    record = bytes.fromhex("0000" + "000000" + "000000FA" + "06" + TERMINAL_NO) + bcd_datetime(WHEN)
    assert _log(card, 1) == record
    assert _log(card, 2)[9] == EP_LOAD  # the initial load is older
    assert testing.transaction_prove(card, EP_PURCHASE, 0) == (receipt.mac2, receipt.tac)


def test_the_initialize_answer(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    r = ok(card, "805001020B01000000641100000000010F")
    assert r[:4] == TEMPLATE_BALANCE.to_bytes(4, "big")
    assert r[4:6] == b"\x00\x00"  # offline counter
    assert r[6:9] == b"\x00\x00\x00"  # overdraft limit
    assert r[9:11] == b"\x01\x04"  # key version 01, SM4
    assert len(r) == 15


def test_purchase_of_the_whole_balance_then_insufficient(card: VirtualCard) -> None:
    testing.purchase(card, TEMPLATE_BALANCE)
    assert testing.balance(card) == 0
    with pytest.raises(status_words.InsufficientBalance):
        testing.purchase(card, 1)


def test_a_wrong_mac1_drops_the_purchase(card: VirtualCard, card_path: Path) -> None:
    ok(card, SELECT_TU)
    ok(card, "805001020B01000000641100000000010F")
    before = card_path.read_bytes()
    assert sw(card, "805401000F" + "00000001" + DATE_TIME + "00000000" + "08") == 0x9302
    assert sw(card, "805401000F" + "00000001" + DATE_TIME + "00000000" + "08") == 0x6985
    assert card_path.read_bytes() == before


def test_debit_with_a_wrong_length_keeps_the_purchase_open(card: VirtualCard) -> None:
    p = testing.start_purchase(card, 100)
    assert sw(card, "805401000E" + "00" * 14) == 0x6700
    testing.finish_purchase(card, p)


@pytest.mark.parametrize("between", [SELECT_SSSE, SELECT_TU, "805001020B01000000011100000000010F"])
def test_select_or_a_new_initialize_drops_the_pending_purchase(card: VirtualCard, between: str) -> None:
    p = testing.start_purchase(card, 100)
    ok(card, between)
    ok(card, SELECT_TU)
    with pytest.raises(status_words.CardStatus) as e:
        testing.finish_purchase(card, p)
    assert e.value.sw in (status_words.CONDITIONS_NOT_SATISFIED, status_words.MAC_ERROR)  # another INITIALIZE: new random


def test_power_off_drops_the_pending_purchase(card: VirtualCard) -> None:
    p = testing.start_purchase(card, 100)
    card.power_off()
    card.power_on()
    ok(card, SELECT_TU)
    with pytest.raises(status_words.ConditionsNotSatisfied):
        testing.finish_purchase(card, p)


def test_reads_between_initialize_and_debit_are_fine(card: VirtualCard) -> None:
    p = testing.start_purchase(card, 100)
    ok(card, "805C000204")
    ok(card, "00B0950000")
    testing.finish_purchase(card, p)


def test_a_compound_purchase_writes_the_capp_cache_with_the_debit(card: VirtualCard) -> None:
    entry = bytes(range(48))
    p = testing.start_purchase(card, 300, capp_records={2: entry})
    assert ok(card, "00B202D400") == bytes(48)  # staged, not written
    receipt = testing.finish_purchase(card, p)
    assert receipt.txn_type == CAPP_PURCHASE
    assert ok(card, "00B202D400") == entry
    assert _log(card, 1)[9] == CAPP_PURCHASE
    assert testing.transaction_prove(card, CAPP_PURCHASE, 0) == (receipt.mac2, receipt.tac)
    assert sw(card, "805A000602000008") == 0x9406  # it was a 09, not a 06


def test_a_failed_compound_purchase_leaves_the_cache(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    ok(card, "805003020B01000000641100000000010F")
    ok(card, "80DC01D030" + "AB" * 48)
    assert sw(card, "805401000F" + "00000001" + DATE_TIME + "00000000") == 0x9302
    assert ok(card, "00B201D400") == bytes(48)


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("80DC09D030" + "00" * 48, 0x6A83),
        ("80DC00D030" + "00" * 48, 0x6A83),
        ("80DC01C030" + "00" * 48, 0x6A82),  # the log is no capp cache
        ("80DC01D430" + "00" * 48, 0x6A86),
        ("80DC01D02F" + "00" * 47, 0x6700),
    ],
)
def test_malformed_capp_updates(card: VirtualCard, apdu: str, expected: int) -> None:
    ok(card, SELECT_TU)
    ok(card, "805003020B01000000641100000000010F")
    assert sw(card, apdu) == expected


def test_capp_update_needs_a_compound_purchase(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    ok(card, "805001020B01000000641100000000010F")
    assert sw(card, "80DC01D030" + "00" * 48) == 0x6985


def test_a_load(card: VirtualCard) -> None:
    receipt = testing.load(card, 5_000)
    assert (receipt.counter, receipt.balance_after) == (1, 15_000)
    assert testing.balance(card) == 15_000
    assert card.state.purse.online_counter == 2
    assert _log(card, 1)[:10] == bytes.fromhex("0001" + "000000" + "00001388" + "02")
    assert testing.transaction_prove(card, EP_LOAD, 1) == (receipt.mac2, receipt.tac)


def test_load_up_to_the_maximum_and_not_beyond(card: VirtualCard) -> None:
    testing.load(card, profile.MAX_BALANCE_FEN - TEMPLATE_BALANCE)
    with pytest.raises(status_words.ConditionsNotSatisfied):
        testing.load(card, 1)


def test_a_wrong_mac2_drops_the_load(card: VirtualCard, card_path: Path) -> None:
    before = card_path.read_bytes()
    testing.start_load(card, 100)
    assert sw(card, "805200000B" + DATE_TIME + "00000000" + "04") == 0x9302
    assert sw(card, "805200000B" + DATE_TIME + "00000000" + "04") == 0x6985
    assert card_path.read_bytes() == before


def test_credit_needs_a_load_not_a_purchase(card: VirtualCard) -> None:
    testing.start_purchase(card, 100)
    assert sw(card, "805200000B" + DATE_TIME + "00000000") == 0x6985
    testing.start_load(card, 100)
    assert sw(card, "805401000F" + "00000001" + DATE_TIME + "00000000") == 0x6985


def test_the_log_keeps_the_ten_newest(card: VirtualCard) -> None:
    for n in range(1, 12):
        testing.purchase(card, n)
    assert int.from_bytes(_log(card, 1)[5:9], "big") == 11
    assert int.from_bytes(_log(card, 10)[5:9], "big") == 2
    assert sw(card, "00B20BC400") == 0x6A83


def test_prove_answers_only_the_last_transaction_of_its_kind(card: VirtualCard) -> None:
    first = testing.purchase(card, 10)
    second = testing.purchase(card, 20)
    assert testing.transaction_prove(card, EP_PURCHASE, 1) == (second.mac2, second.tac)
    with pytest.raises(status_words.MacNotAvailable):
        testing.transaction_prove(card, EP_PURCHASE, first.counter)


def test_counters_run_out(card_path: Path) -> None:
    state = card_file.load(card_path)
    state.purse = attrs.evolve(state.purse, offline_counter=0xFFFF, online_counter=0xFFFF)
    card_file.save(state, card_path)
    card = VirtualCard.load(card_path)
    ok(card, SELECT_TU)
    assert sw(card, "805001020B01000000011100000000010F") == 0x6985
    assert sw(card, "805000020B01000000011100000000010F") == 0x6985


# --- APPLICATION BLOCK / UNBLOCK ---------------------------------------------------------------


def _lock_command(card: VirtualCard, keys, ins: int) -> str:
    challenge = ok(card, "0084000008")
    header = bytes((profile.CLA_SECURE, ins, 0, 0, 4))
    return (header + cbc_mac(keys.algorithm, keys.app_maintenance, challenge + header)).hex()


def test_block_and_unblock_the_application(card: VirtualCard, card_path: Path, keys) -> None:
    ok(card, SELECT_TU)
    ok(card, _lock_command(card, keys, profile.Ins.APPLICATION_BLOCK))
    for apdu in ("805C000204", "805001020B01000000011100000000010F", "805A000202000008", "80DC01D030" + "00" * 48):
        assert sw(card, apdu) == 0x9303, apdu
    fci = ok(card, SELECT_TU)  # still selects
    assert fci[0] == profile.TAG_FCI

    blocked = VirtualCard.load(card_path)
    ok(blocked, SELECT_TU)
    assert sw(blocked, "805C000204") == 0x9303
    ok(blocked, _lock_command(blocked, keys, profile.Ins.APPLICATION_UNBLOCK))
    assert ok(blocked, "805C000204") == TEMPLATE_BALANCE.to_bytes(4, "big")


def test_a_lock_mac_uses_its_challenge_once(card: VirtualCard, keys) -> None:
    ok(card, SELECT_TU)
    command = _lock_command(card, keys, profile.Ins.APPLICATION_BLOCK)
    ok(card, command)
    assert sw(card, command) == 0x6985  # replay: the challenge is gone
    ok(card, "0084000008")
    assert sw(card, command) == 0x9302  # replay: another challenge


def test_unblock_mac_does_not_block(card: VirtualCard, keys) -> None:
    ok(card, SELECT_TU)
    unblock = _lock_command(card, keys, profile.Ins.APPLICATION_UNBLOCK)
    block_with_unblock_mac = "841E" + unblock[4:]
    assert sw(card, block_with_unblock_mac) == 0x9302


def test_a_purchase_on_a_second_card_with_its_own_keys(tmp_path: Path) -> None:
    other = testing.personalised_card(tmp_path / "other.json", card_number="B7K334774", balance_fen=800,
                                      rng=random.Random(4))
    assert testing.purchase(other, 799).balance_after == 1
    with pytest.raises(status_words.MacError):
        testing.purchase(other, 1, keys=testing.keys_of(testing.card_data()))  # another card's DPK: MAC1 refused
    assert run(other, "805C000204").data == (1).to_bytes(4, "big")
