"""The card side of metro gates: a 0-fen compound purchase writes the capp record (docs/card-profile.md)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.commands import InitializeForPurchase, ReadRecord, TransactionLogRecord, select_tunion
from sbcard.chip.purse import CAPP_PURCHASE
from sbcard.chip.transit import CappRecord
from terminals.emulator import testing

WHEN = dt.datetime(2025, 3, 3, 8, 15, 0)


@pytest.fixture
def card(tmp_path):
    c = testing.personalised_card(tmp_path / "c.card", balance_fen=500, rng=random.Random(9))
    yield c
    c.close()


def test_an_entry_is_a_zero_fen_compound_purchase_with_its_own_tac(card):
    entry = CappRecord.make("bj-subway", "11020001", testing.TEST_TERMINAL_NO, WHEN, inside=True)
    receipt = testing.purchase(card, 0, capp_records={profile.CAPP_METRO_RECORD: entry.to_bytes()}, when=WHEN)
    assert (receipt.txn_type, receipt.amount, receipt.counter) == (CAPP_PURCHASE, 0, 0)  # TAC and MAC2 verified
    assert card.state.purse.balance == 500 and card.state.purse.offline_counter == 1
    logged = TransactionLogRecord.parse(card.state.logs[("TU", profile.SFI_TU_LOG)][0])  # the newest
    assert (logged.amount, logged.txn_type, logged.counter) == (0, CAPP_PURCHASE, 0)
    raw = testing.run(card, ReadRecord(profile.SFI_TU_CAPP, profile.CAPP_METRO_RECORD, by_tag=False))
    assert CappRecord.parse(raw) == entry
    assert testing.transaction_prove(card, CAPP_PURCHASE, 0) == (receipt.mac2, receipt.tac)


def test_a_plain_purchase_of_zero_is_still_refused(card):
    testing.run(card, select_tunion())
    with pytest.raises(sw.CardStatus) as e:
        testing.run(card, InitializeForPurchase(profile.CARD_KEY_INDEX, 0, testing.TEST_TERMINAL_NO))
    assert e.value.sw == sw.WRONG_DATA
    init = testing.run(card, InitializeForPurchase(profile.CARD_KEY_INDEX, 0, testing.TEST_TERMINAL_NO, capp=True))
    assert init.balance == 500


def test_a_zero_fen_compound_purchase_torn_before_its_commit_writes_nothing(tmp_path):
    from terminals.emulator.card import CardTorn, VirtualCard
    from terminals.emulator.faults import Faults

    c = testing.personalised_card(tmp_path / "t.card", balance_fen=500, rng=random.Random(9))
    c.close()
    torn = VirtualCard.load(tmp_path / "t.card", Faults(tear_at_write=3))  # the capp record's journal write
    entry = CappRecord.make("tj-metro", "12010001", testing.TEST_TERMINAL_NO, WHEN, inside=True)
    with pytest.raises(CardTorn):
        testing.purchase(torn, 0, capp_records={profile.CAPP_METRO_RECORD: entry.to_bytes()}, when=WHEN)
    with VirtualCard.load(tmp_path / "t.card") as again:
        assert again.state.purse.offline_counter == 0
        assert (("TU", profile.SFI_TU_CAPP) not in again.state.records)


def test_capp_records_round_trip_and_refuse_bad_values():
    record = CappRecord.make("tj-metro", "12010004", bytes.fromhex("120000000009"), WHEN, inside=False)
    raw = record.to_bytes()
    assert len(raw) == 48 and raw[:2] == b"\x12\x01" and raw[2:6] == bytes.fromhex("12010004") and raw[19] == 0
    assert CappRecord.parse(raw) == record
    assert CappRecord.parse(bytes(48)) is None
    with pytest.raises(ValueError):
        CappRecord.make("bj-bus", "11020001", bytes(6), WHEN, inside=True)
    with pytest.raises(ValueError):
        CappRecord.make("bj-subway", "1102", bytes(6), WHEN, inside=True)
    foreign = bytes.fromhex("3101") + raw[2:]
    assert CappRecord.parse(foreign).operator is None
