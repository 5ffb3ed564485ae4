"""Attacks on a purchase: a replayed DEBIT, a forged MAC1, a counterfeit MAC2, a PSAM without keys."""

from __future__ import annotations

import pytest
from validator_helpers import ApduTap, rig, validator_template  # noqa: F401

from sbcard.chip import sw
from sbcard.chip.apdu import Response
from sbcard.chip.commands import InitializeForPurchase, select_tunion
from sbcard.chip.crypto import Algorithm
from sbcard.chip.reader import CardIOError, transmit
from sbcard.services.terminals.register import consumer_keys
from terminals.drivers.emulator import EmulatorReader
from terminals.psam import Psam, PsamKeySet

DEBIT = bytes.fromhex("8054")


def _debit_of(tap: ApduTap) -> bytes:
    [debit] = [apdu for apdu in tap.sent if apdu[:2] == DEBIT]
    return debit


def test_a_replayed_debit_is_refused_by_the_card(rig):
    card = rig.card("tj", balance_fen=1000)
    bus = rig.terminal("tj-bus", line="13")
    captured = {}

    def spy(reader):
        captured["tap"] = ApduTap(reader)
        return captured["tap"]

    assert rig.tap(bus, card, wrap=spy).ok
    debit = _debit_of(captured["tap"])
    after = rig.purse(card)

    with EmulatorReader(card) as reader:
        select_tunion().send(reader)
        # on its own: no INITIALIZE in this session
        assert Response.from_bytes(reader.transmit_raw(debit)).sw == sw.CONDITIONS_NOT_SATISFIED
        # after a fresh INITIALIZE of the same amount at the same terminal: the card's new random
        # makes another session key, so the old MAC1 does not verify
        InitializeForPurchase(1, 200, bytes.fromhex(bus.config.terminal_no)).send(reader)
        assert Response.from_bytes(reader.transmit_raw(debit)).sw == sw.MAC_ERROR
        # and the failed DEBIT dropped the transaction: even a right one now finds nothing open
        assert Response.from_bytes(reader.transmit_raw(debit)).sw == sw.CONDITIONS_NOT_SATISFIED
    assert rig.purse(card) == after  # one purchase, one debit
    assert len(bus.records()) == 1


def test_a_forged_mac1_is_refused_by_the_card_and_nothing_is_debited(rig):
    card = rig.card("bj", balance_fen=1000)
    bus = rig.terminal("bj-bus")
    forged = Psam(bus.config.terminal_no_bytes,
                  [PsamKeySet(f"{p}00000000000000", b"A FORGED DPK KEY", b"A FORGED DAMK!!!") for p in ("11", "12", "13")],
                  bus, psam_id="forged")
    refused = rig.tap(rig.validator(bus, psam=forged), card)
    assert not refused.ok and refused.code == "mac1_rejected"
    assert rig.purse(card).balance == 1000 and rig.purse(card).offline_counter == 0
    assert bus.records() == [] and bus.pending() == []
    [event] = bus.events()
    assert event["kind"] == "purchase_refused" and event["details"]["sw"] == "9302"
    # the genuine PSAM works at once on the same card
    assert rig.tap(bus, card).ok


def test_the_psam_rejects_a_counterfeit_mac2(rig):
    """A card answering DEBIT with a MAC2 that is not its issuer's: refused, the record kept flagged."""
    card = rig.card("he", balance_fen=1000)
    bus = rig.terminal("he-sjz-bus", line="1")

    def counterfeit(apdu: bytes, answer: bytes) -> bytes:
        if apdu[:2] == DEBIT and answer[-2:] == b"\x90\x00":
            return answer[:4] + bytes(4) + answer[-2:]  # TAC kept, MAC2 zeroed
        return answer

    refused = rig.tap(bus, card, wrap=lambda r: ApduTap(r, mangle=counterfeit))
    assert not refused.ok and refused.code == "mac2_failed" and "MAC2" in refused.reason
    [record] = bus.records()
    assert record["status"] == "mac2_failed" and record["mac2"] == "00000000"
    assert bus.pending() == []


def test_a_psam_without_the_issuers_keys_refuses_before_the_card_is_touched(rig):
    card = rig.card("he", balance_fen=1000)
    bus = rig.terminal("bj-bus")
    with rig.world() as world:
        keys = [k for k in consumer_keys(world) if k.node != "he"]
    partial = Psam(bus.config.terminal_no_bytes,
                   [PsamKeySet(k.issuer_id, k.purchase_master, k.app_maintenance_master, Algorithm(k.algorithm))
                    for k in keys], bus, psam_id="partial")
    refused = rig.tap(rig.validator(bus, psam=partial), card)
    assert not refused.ok and refused.code == "unknown_issuer"
    assert rig.purse(card).offline_counter == 0 and bus.pending() == [] and bus.last_serial() == 0


def test_the_psam_serial_never_repeats_even_when_the_log_write_fails(rig):
    card = rig.card("bj", balance_fen=5000)
    bus = rig.terminal("tj-bus", line="8")
    serials = [rig.tap(bus, card).terminal_serial for _ in range(3)]
    assert serials == [1, 2, 3]
    with pytest.raises(CardIOError):
        rig.tap(bus, card, wrap=lambda r: ApduTap(r, 7))  # torn at DEBIT, before the card
    rig.later(minutes=1)
    assert rig.tap(bus, card).terminal_serial == 5  # 4 went to the torn purchase, never again
    assert [r["terminal_serial"] for r in bus.records()] == [1, 2, 3, 5]


def test_mac1_is_bound_to_the_amount(rig):
    """A terminal that asks the PSAM for a small amount cannot debit a larger one, nor the reverse."""
    from sbcard.chip.codec import bcd_datetime
    from sbcard.chip.commands import DebitForPurchase
    from sbcard.chip.psam import InitSamForPurchase, card_serial

    card = rig.card("bj", balance_fen=1000)
    bus = rig.terminal("bj-bus")
    psam = bus.psam()
    app_serial = rig.card_data(card).app_serial
    with EmulatorReader(card) as reader:
        select_tunion().send(reader)
        init = InitializeForPurchase(1, 900, bus.config.terminal_no_bytes).send(reader)
        when = bcd_datetime(rig.clock.now())
        sam = InitSamForPurchase(init.random, init.offline_counter, 1, 0x06, when, 1, 4, card_serial(app_serial),
                                 bytes.fromhex("1100000000000000")).send(psam)
        response = transmit(reader, DebitForPurchase(sam.terminal_serial, when, sam.mac1).command())
        assert response.sw == sw.MAC_ERROR
    assert rig.purse(card).balance == 1000
