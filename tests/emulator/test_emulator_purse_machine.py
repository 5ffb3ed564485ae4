"""A state machine over the purse: loads, purchases, bad MACs, tears and process restarts.

The model is what the terminals learnt: receipts of completed transactions, and for a
torn one whatever a re-tap shows (GET TRANSACTION PROVE). Invariants after every step:
balance + Σ purchases − Σ loads == the initial balance, the counters count exactly the
committed transactions and never go back, and the balance stays within [0, maximum].
"""

from __future__ import annotations

import random
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from machine_budget import machine_size

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.codec import bcd_datetime
from sbcard.chip.commands import DebitForPurchase
from sbcard.chip.purse import EP_LOAD, EP_PURCHASE
from terminals.emulator import testing
from terminals.emulator.card import CardTorn, VirtualCard
from terminals.emulator.faults import Faults

INITIAL = 20_000
WRITES_PER_TRANSACTION = 4  # purse, log record, prove; commit
SERIAL = bytes.fromhex("0000ABCD")
amounts = st.integers(1, 30_000)


@cache
def _template() -> bytes:
    path = Path(tempfile.mkdtemp(prefix="purse-template-")) / "card.json"
    testing.personalised_card(path, balance_fen=INITIAL, rng=random.Random(0))
    image = path.read_bytes()
    shutil.rmtree(path.parent)
    return image


class PurseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="purse-machine-"))
        self.path = self.dir / "card.json"
        self.path.write_bytes(_template())
        self.taps = 0
        self.card = self._tap()
        self.purchased = self.loaded = 0
        self.purchases, self.loads = 0, 1  # the template's initial load
        self.seen_counters = (0, 1)

    def _tap(self, faults: Faults | None = None) -> VirtualCard:
        """A new tap: the card read from its file, with a fresh but reproducible random source."""
        self.taps += 1
        card = VirtualCard.load(self.path, faults, random.Random(self.taps))
        card.power_on()
        return card

    def _balance(self) -> int:
        return testing.balance(self.card)

    def _committed_purchase(self, amount: int) -> None:
        self.purchased += amount
        self.purchases += 1

    def _committed_load(self, amount: int) -> None:
        self.loaded += amount
        self.loads += 1

    @rule(amount=amounts)
    def load(self, amount: int) -> None:
        if self._balance() + amount > profile.MAX_BALANCE_FEN:
            with pytest.raises(sw.ConditionsNotSatisfied):
                testing.load(self.card, amount)
            return
        receipt = testing.load(self.card, amount)
        assert receipt.counter == self.loads
        self._committed_load(amount)

    @rule(amount=amounts)
    def purchase(self, amount: int) -> None:
        if amount > self._balance():
            with pytest.raises(sw.InsufficientBalance):
                testing.purchase(self.card, amount)
            return
        receipt = testing.purchase(self.card, amount, terminal_serial=SERIAL)
        assert receipt.counter == self.purchases
        self._committed_purchase(amount)

    @rule(amount=amounts, flip=st.integers(0, 31))
    def purchase_with_a_bad_mac1(self, amount: int, flip: int) -> None:
        if amount > self._balance():
            return
        p = testing.start_purchase(self.card, amount)
        date_time = bcd_datetime(testing.TEST_WHEN)
        mac1 = bytearray(p.mac1(SERIAL, date_time))
        mac1[flip // 8] ^= 1 << (flip % 8)
        response = testing.transmit(self.card, DebitForPurchase(SERIAL, date_time, bytes(mac1)).command())
        assert response.sw == sw.MAC_ERROR

    @rule(kind=st.sampled_from(["purchase", "load"]), amount=amounts, tear=st.integers(1, WRITES_PER_TRANSACTION + 1))
    def torn(self, kind: str, amount: int, tear: int) -> None:
        balance = self._balance()
        if (kind == "purchase" and amount > balance) or (kind == "load" and balance + amount > profile.MAX_BALANCE_FEN):
            return
        self.card = self._tap(Faults(tear_at_write=tear))
        if kind == "purchase":
            pending = testing.start_purchase(self.card, amount)
            expected = pending.expected_prove(SERIAL, testing.TEST_WHEN)
            finish = lambda: testing.finish_purchase(self.card, pending, SERIAL)  # noqa: E731
        else:
            pending = testing.start_load(self.card, amount)
            expected = (pending.mac2(testing.TEST_WHEN), pending.expected_tac(testing.TEST_WHEN))
            finish = lambda: testing.finish_load(self.card, pending)  # noqa: E731
        try:
            finish()
            torn = False
        except CardTorn:
            torn = True
        assert torn == (tear <= WRITES_PER_TRANSACTION)
        self.card = self._tap()
        committed = tear >= WRITES_PER_TRANSACTION  # the commit write or beyond
        sign = -1 if kind == "purchase" else 1
        assert self._balance() == balance + sign * amount * committed
        if committed:
            txn_type = EP_PURCHASE if kind == "purchase" else EP_LOAD
            assert testing.transaction_prove(self.card, txn_type, pending.counter) == expected
            (self._committed_purchase if kind == "purchase" else self._committed_load)(amount)

    @rule()
    def process_restart(self) -> None:
        state = self.card.state
        self.card = self._tap()
        assert self.card.state == state

    @invariant()
    def money_is_conserved(self) -> None:
        purse = self.card.state.purse
        assert self._balance() == purse.balance
        assert purse.balance + self.purchased - self.loaded == INITIAL
        assert 0 <= purse.balance <= purse.max_balance

    @invariant()
    def counters_count_committed_transactions_and_never_go_back(self) -> None:
        purse = self.card.state.purse
        counters = (purse.offline_counter, purse.online_counter)
        assert counters == (self.purchases, self.loads)
        assert counters[0] >= self.seen_counters[0] and counters[1] >= self.seen_counters[1]
        self.seen_counters = counters

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


PurseMachine.TestCase.settings = settings(
    **machine_size(25, 30), deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
TestPurse = PurseMachine.TestCase
