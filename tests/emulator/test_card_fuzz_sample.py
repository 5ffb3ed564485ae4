"""A seeded sample of ``benchmarks/fuzz_card.py`` (which sends 10⁶ APDUs to the card OS and 10⁵ to the
PSAM): the same fuzzing, smaller, must find no exception, no hang and no broken invariant.

And the invariants themselves are checked on made-up cases, so a sample that finds nothing
is known to be looking.
"""

from __future__ import annotations

import pytest

from terminals.emulator import fuzzing
from terminals.emulator.fuzzing import Money, money_breaks


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> fuzzing.Pristine:
    return fuzzing.make_pristine(tmp_path_factory.mktemp("fuzz"))


def test_a_seeded_sample_of_card_apdus_in_every_state_finds_nothing(pristine):
    figures = fuzzing.fuzz_card(12_000, 20261207, pristine, tear_share=0.2)
    assert (figures.exceptions, figures.hangs, figures.invariant_breaks) == ([], [], [])
    assert set(figures.per_state) == set(fuzzing.STATES)  # every security state had its share
    assert figures.tears > 0 and figures.accepted["DEBIT_FOR_PURCHASE"] > 0 and figures.accepted["CREDIT_FOR_LOAD"] > 0


def test_a_seeded_sample_of_psam_apdus_finds_nothing():
    figures = fuzzing.fuzz_psam(5_000, 20261207)
    assert (figures.exceptions, figures.hangs, figures.invariant_breaks) == ([], [], [])
    assert figures.psam_apdus == 5_000


BEFORE = Money(balance=10_000, offline=3, online=2, log=(b"load",), max_balance=100_000)


@pytest.mark.parametrize("after, broken", [
    (Money(9_850, 4, 2, (b"buy", b"load"), 100_000), None),  # a purchase: counter, log, balance
    (Money(10_500, 3, 3, (b"ld", b"load"), 100_000), None),  # a load
    (Money(9_850, 3, 2, (b"load",), 100_000), "without a purchase's counter and log record"),
    (Money(9_850, 4, 2, (b"load",), 100_000), "without a purchase's counter and log record"),
    (Money(10_500, 3, 2, (b"ld", b"load"), 100_000), "without a load's counter and log record"),
    (Money(10_000, 2, 2, (b"load",), 100_000), "a counter went back"),
    (Money(10_000, 3, 2, (b"load",), 5_000), "out of 0.."),
    (Money(10_000, 3, 4, (b"x", b"load"), 100_000), "by more than one"),
    (Money(10_000, 4, 2, (b"load",), 100_000), "a counter moved without a log record"),
])
def test_the_money_invariants_catch_what_they_are_for(after, broken):
    found = money_breaks(BEFORE, after)
    if broken is None:
        assert found == []
    else:
        assert any(broken in f for f in found), found
