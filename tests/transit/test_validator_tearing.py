"""Tearing: a card pulled away at any APDU or any persistent write of a purchase.

Whatever the point, the next tap of the same card never debits twice and never loses
the record (CARD-PROFILE, "Tearing"): one debit on the card, one record in the
terminal's log with a TAC the issuer accepts, nothing left in flight.
"""

from __future__ import annotations

import pytest
from validator_helpers import ApduTap, rig, validator_template  # noqa: F401

from sbcard.chip import purse as formulas
from sbcard.chip.crypto import Algorithm
from sbcard.chip.reader import CardIOError
from terminals.apps.terminal_state import TerminalState

BUS_APDUS = 7  # SELECT SSSE, READ card number, READ birth date, SELECT T-Union, READ 0017, INITIALIZE, DEBIT
EXIT_APDUS = 8  # SELECT SSSE, READ card number, SELECT T-Union, READ 0017, READ capp record,
#                 INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE, DEBIT


def _tac_ok(rig, card, record) -> bool:
    keys = rig.card_keys(card)
    tac = formulas.purchase_tac(
        Algorithm.SM4, keys.tac, record["amount_fen"], record["txn_type"], bytes.fromhex(record["terminal_no"]),
        record["terminal_serial"].to_bytes(4, "big"), bytes.fromhex(record["date_time"]))
    return record["tac"] == tac.hex().upper()


def _exactly_once(rig, card, terminal, *, balance_before: int, counter_before: int, fare: int) -> dict:
    """One debit on the card, one record in the log (TAC right), nothing in flight."""
    purse = rig.purse(card)
    assert (purse.balance, purse.offline_counter) == (balance_before - fare, counter_before + 1)
    mine = [r for r in terminal.records() if r["app_serial"] == rig.card_data(card).app_serial]
    assert len(mine) == 1, mine
    [record] = mine
    assert (record["counter"], record["amount_fen"], record["balance_before_fen"]) == (counter_before, fare,
                                                                                     balance_before)
    assert record["status"] == "ok" and _tac_ok(rig, card, record)
    assert terminal.pending() == []
    return record


@pytest.mark.parametrize("lose_response", [False, True], ids=["before-the-card", "answer-lost"])
@pytest.mark.parametrize("cut_at", range(1, BUS_APDUS + 1))
def test_a_bus_ride_torn_at_every_apdu(rig, cut_at, lose_response):
    card = rig.card("tj", balance_fen=1000)
    bus = rig.terminal("bj-bus")
    with pytest.raises(CardIOError):
        rig.tap(bus, card, wrap=lambda r: ApduTap(r, cut_at, lose_response=lose_response))
    committed = lose_response and cut_at == BUS_APDUS  # the DEBIT ran, its answer never came back
    assert rig.purse(card).offline_counter == (1 if committed else 0)
    assert len(bus.pending()) == (1 if cut_at == BUS_APDUS else 0)

    rig.later(seconds=20)
    again = rig.tap(bus, card)
    assert again.ok and again.fare_fen == 100  # ¥2.00, half with the card in the city area
    assert again.recovered == ("prove" if committed else None)
    record = _exactly_once(rig, card, bus, balance_before=1000, counter_before=0, fare=100)
    assert record["recovered"] == again.recovered


@pytest.mark.parametrize("lose_response", [False, True], ids=["before-the-card", "answer-lost"])
@pytest.mark.parametrize("cut_at", range(1, EXIT_APDUS + 1))
def test_a_metro_exit_torn_at_every_apdu(rig, cut_at, lose_response):
    card = rig.card("tj", balance_fen=1000)
    gate_in = rig.terminal("bj-subway", station="西直门", gate="entry")
    gate_out = rig.terminal("bj-subway", station="国贸", gate="exit")
    assert rig.tap(gate_in, card).ok
    rig.later(minutes=30)
    with pytest.raises(CardIOError):
        rig.tap(gate_out, card, wrap=lambda r: ApduTap(r, cut_at, lose_response=lose_response))
    rig.later(seconds=10)
    again = rig.tap(gate_out, card)
    assert again.ok and again.kind == "exit" and again.fare_fen == 500 and again.entry_station == "西直门"
    record = _exactly_once(rig, card, gate_out, balance_before=1000, counter_before=1, fare=500)
    assert record["entry_station"] == "西直门"
    assert rig.capp(card)[19] == 0x00  # exited


@pytest.mark.parametrize("cut_at", range(1, EXIT_APDUS + 1))
def test_a_metro_entry_torn_at_every_apdu_is_entered_once(rig, cut_at):
    card = rig.card("bj", balance_fen=1000)
    gate_in = rig.terminal("bj-subway", station="西直门", gate="entry")
    with pytest.raises(CardIOError):
        rig.tap(gate_in, card, wrap=lambda r: ApduTap(r, cut_at, lose_response=True))
    again = rig.tap(gate_in, card)  # the retry at the same gate: never "already entered", never charged
    assert again.ok and again.kind == "entry" and again.fare_fen == 0
    _exactly_once(rig, card, gate_in, balance_before=1000, counter_before=0, fare=0)


def _persistent_writes_of_a_purchase(rig, make, terminal_of) -> int:
    """How many persistent writes the purchase makes on the card (journal writes + commit)."""
    from terminals.drivers.emulator import EmulatorReader
    from terminals.emulator.card import VirtualCard

    card = make()
    cards = {}

    def loader(path, faults):
        cards["card"] = VirtualCard.load(path, faults)
        return cards["card"]

    reader = EmulatorReader(card, loader=loader)
    try:
        assert rig.validator(terminal_of()).tap(reader).ok
        return cards["card"].writes_since_power_on
    finally:
        reader.close()


@pytest.mark.parametrize("kind", ["ride", "exit"])
def test_a_purchase_torn_at_every_persistent_write(rig, kind):
    """``emulator:PATH?tear=N`` for every N the purchase has: journal writes lose it, the commit keeps it."""
    if kind == "ride":
        terminal = rig.terminal("tj-bus", line="13")
        fare, before_counter = 200, 0

        def setup():
            return rig.card("bj", balance_fen=1000)
    else:
        gate_in = rig.terminal("bj-subway", station="西直门", gate="entry")
        terminal = rig.terminal("bj-subway", station="国贸", gate="exit")
        fare, before_counter = 500, 1

        def setup():
            card = rig.card("bj", balance_fen=1000)
            assert rig.tap(gate_in, card).ok
            return card

    writes = _persistent_writes_of_a_purchase(rig, setup, lambda: terminal)
    assert writes == (4 if kind == "ride" else 5)  # purse, log, [capp,] prove, commit
    for n in range(1, writes + 1):
        card = setup()
        with pytest.raises(CardIOError):
            rig.tap(terminal, card, tear=n)
        committed = n == writes
        assert rig.purse(card).offline_counter == before_counter + (1 if committed else 0)
        rig.later(seconds=5)
        again = rig.tap(terminal, card)
        assert again.ok and again.recovered == ("prove" if committed else None), n
        _exactly_once(rig, card, terminal, balance_before=1000, counter_before=before_counter, fare=fare)


def test_a_terminal_that_dies_after_the_debit_completes_the_record_at_the_next_tap(rig, monkeypatch):
    card = rig.card("he", balance_fen=1000)
    bus = rig.terminal("he-lf-bus", line="27")  # ¥2.00
    directory = bus.directory

    def crash(record):
        raise KeyboardInterrupt("power cut in the terminal")

    monkeypatch.setattr(bus, "append_record", crash)
    with pytest.raises(KeyboardInterrupt):
        rig.tap(bus, card)
    assert rig.purse(card).balance == 800  # the card paid
    bus.close()

    restarted = TerminalState.open(directory)  # what was on disk: the purchase in flight, in its slot
    assert restarted.records() == [] and restarted.last_serial() == 1
    assert restarted.resume()["counter"] == 0  # what the validator does when it starts
    assert len(restarted.pending()) == 1 and restarted.resume() is None
    again = rig.tap(restarted, card)
    assert again.ok and again.recovered == "prove" and again.balance_fen == 800
    _exactly_once(rig, card, restarted, balance_before=1000, counter_before=0, fare=200)


def test_a_tear_during_the_recovery_is_recovered_at_the_tap_after(rig):
    card = rig.card("bj", balance_fen=1000)
    bus = rig.terminal("tj-bus", line="13")
    with pytest.raises(CardIOError):
        rig.tap(bus, card, wrap=lambda r: ApduTap(r, BUS_APDUS, lose_response=True))
    torn = 0
    for cut in range(1, 20):  # the recovery's own APDUs: reads, the card's log, PROVE, GET BALANCE
        try:
            again = rig.tap(bus, card, wrap=lambda r: ApduTap(r, cut, lose_response=True))
        except CardIOError:
            torn += 1
            assert len(bus.pending()) == 1 and bus.records() == []  # still in flight, never lost
            continue
        break
    assert torn >= 8  # every APDU of the recovery was torn once
    assert again.ok and again.recovered == "prove" and again.balance_fen == 800
    _exactly_once(rig, card, bus, balance_before=1000, counter_before=0, fare=200)


def test_a_card_used_elsewhere_after_a_tear_completes_from_its_log_and_pays_the_new_ride(rig):
    card = rig.card("tj", balance_fen=1000)
    bus_a = rig.terminal("tj-bus", line="13")
    bus_b = rig.terminal("tj-bus", line="8")
    with pytest.raises(CardIOError):
        rig.tap(bus_a, card, wrap=lambda r: ApduTap(r, BUS_APDUS, lose_response=True))  # paid ¥2.00, no answer
    rig.later(minutes=1)
    assert rig.tap(bus_b, card).ok  # ¥1.50 elsewhere: the card's prove is now that purchase's
    rig.later(hours=2)
    back = rig.tap(bus_a, card)
    assert back.ok and back.recovered is None and back.fare_fen == 200  # a new ride, paid
    first, second = bus_a.records()
    assert (first["counter"], first["recovered"], first["tac"]) == (0, "log", None)  # no prove left: the host decides
    assert (second["counter"], second["tac"] is not None) == (2, True)
    assert rig.purse(card).balance == 1000 - 200 - 150 - 200 and bus_a.pending() == []


def test_a_tap_long_after_a_torn_purchase_is_completed_and_charged_anew(rig):
    card = rig.card("bj", balance_fen=1000)
    bus = rig.terminal("tj-bus", line="13")
    with pytest.raises(CardIOError):
        rig.tap(bus, card, wrap=lambda r: ApduTap(r, BUS_APDUS, lose_response=True))
    rig.later(hours=3)  # not the rider retrying: tomorrow's ride
    ride = rig.tap(bus, card)
    assert ride.ok and ride.recovered is None and ride.counter == 1
    assert [(r["counter"], r["recovered"]) for r in bus.records()] == [(0, "prove"), (1, None)]
    assert rig.purse(card).balance == 600


_KILLED_AT_DEBIT = """
import os, sys, datetime as dt
from sbcard.clock import BEIJING, FixedClock
from sbcard.reference.transit import load_tariff
from terminals.apps.terminal_state import TerminalState
from terminals.apps.transit import Validator
from terminals.apps.transit_fares import TariffFares
from terminals.drivers.emulator import EmulatorReader

class KillAtDebit:
    def __init__(self, reader, after):
        self.reader, self.name, self.after = reader, reader.name, after == "after"
    atr = property(lambda self: self.reader.atr)
    def card_present(self):
        return True
    def transmit_raw(self, apdu):
        if apdu[:2] == bytes.fromhex("8054"):
            if self.after:
                self.reader.transmit_raw(apdu)  # the card commits; the terminal dies before the answer
            os._exit(9)  # no handler runs: what is on disk is all there is
        return self.reader.transmit_raw(apdu)
    def close(self):
        self.reader.close()

state = TerminalState.open(sys.argv[1])
clock = FixedClock(dt.datetime.fromisoformat(sys.argv[4]))
validator = Validator(state, state.psam(), TariffFares(load_tariff()), clock)
validator.tap(KillAtDebit(EmulatorReader(sys.argv[2]), sys.argv[3]))
"""


@pytest.mark.parametrize("when", ["before", "after"], ids=["killed-before-the-card-commits", "killed-after"])
def test_a_terminal_process_killed_at_the_debit_loses_nothing(rig, when):
    import subprocess
    import sys

    card = rig.card("tj", balance_fen=1000)
    bus = rig.terminal("tj-bus", line="13")
    directory = bus.directory
    bus.close()
    proc = subprocess.run([sys.executable, "-c", _KILLED_AT_DEBIT, str(directory), str(card), when,
                           rig.clock.now().isoformat()], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    committed = when == "after"
    assert rig.purse(card).offline_counter == (1 if committed else 0)

    restarted = TerminalState.open(directory)
    assert restarted.last_serial() == 1  # the serial the dead terminal used is never given again
    rig.later(seconds=30)
    again = rig.tap(restarted, card)
    assert again.ok and again.recovered == ("prove" if committed else None)
    record = _exactly_once(rig, card, restarted, balance_before=1000, counter_before=0, fare=200)
    assert record["terminal_serial"] == (1 if committed else 2)
    if not committed:
        assert [e["kind"] for e in restarted.events()] == ["purchase_abandoned"]


def test_a_balance_edited_behind_the_cards_back_is_noted_while_the_record_is_completed(rig):
    import attrs

    from terminals.emulator.card_file import CardFile

    card = rig.card("tj", balance_fen=1000)
    bus = rig.terminal("tj-bus", line="13")
    with pytest.raises(CardIOError):
        rig.tap(bus, card, wrap=lambda r: ApduTap(r, BUS_APDUS, lose_response=True))
    file, state = CardFile.open(card)  # the purse's balance edited in the card file
    state.purse = attrs.evolve(state.purse, balance=5000)
    file.save(state)
    file.close()
    again = rig.tap(bus, card)
    assert again.ok and again.recovered == "prove" and again.balance_fen == 5000
    [event] = [e for e in bus.events() if e["kind"] == "balance_mismatch"]
    assert event["details"] == {"counter": 0, "expected_fen": 800, "balance_fen": 5000}
    assert len(bus.records()) == 1
