"""A lost card's purse, refunded after its replacement from the clearing records (the old card cannot be read).

The refund waits for the clearing window (30 days from the replacement: the card is on
the blacklist by then, and every offline purchase made before has been uploaded); it is
then the purse as the clearing records leave it (confirmed loads less cleared
purchases), paid once; a purchase of the old card cleared even later is taken back by a
correction at the next run, so the issuer's purse float still reconciles.
"""

from __future__ import annotations

import datetime as dt

import pytest
from purse_world import DEPOSIT_YUAN, OUTLETS, STAFF, clock, purse_template, purse_world  # noqa: F401
from world_template import receive_blanks

from sbcard.clock import SystemClock
from sbcard.services.clearing import settlement
from sbcard.store.world import open_world

PAST_THE_WINDOW = dt.timedelta(days=31)
FARE = 200  # tj-bus line 13, full fare


def _replace_lost(w) -> dict:
    number = w.cards["liu"].number
    code, _, err, _ = w.run("card", "report-lost", number, "--operator", "BJ-C1", "--outlet", OUTLETS["bj"])
    assert code == 0, err
    [blank] = receive_blanks(w.home, STAFF, OUTLETS["bj"], 1, SystemClock().now())
    code, _, err, done = w.run("card", "replace", number, "--reader", f"emulator:{blank}", "--operator", "BJ-C1",
                               "--outlet", OUTLETS["bj"], "--json")
    assert code == 0, err
    return done


def _pay(w) -> list[dict]:
    code, _, err, paid = w.run("card", "refunds", "--pay", "--operator", "BJ-F1", "--json")
    assert code == 0, err
    return paid


def _account(w) -> int:
    """The holder's account (moved to the new card)."""
    [row] = w.query("bj", "SELECT coalesce(sum(e.amount_fen), 0) AS fen FROM ledger_entries e JOIN accounts a "
                          "USING (account_no) WHERE a.kind = 'holder'")
    return row["fen"]


def _reconciled(w) -> bool:
    with open_world(w.home) as world:
        return settlement.reconcile(world, "bj")["ok"]


@pytest.fixture
def w(purse_world):
    code, _, err, _ = purse_world.run("operator", "add", "BJ-F1", "--name", "赵敏", "--role", "finance", "--region",
                                      "110105")
    assert code == 0, err
    return purse_world


# (taps uploaded before the replacement, taps made before the loss and uploaded inside the window, refund)
CASES = {
    "never used": (0, 0, 5000),
    "a purchase cleared before": (1, 0, 5000 - FARE),
    "a purchase arriving inside the window": (1, 1, 5000 - 2 * FARE),
}


@pytest.mark.parametrize("before, late, refund", CASES.values(), ids=CASES.keys())
def test_the_refund_is_the_purse_the_clearing_records_leave(w, clock, before, late, refund):
    assert w.load("liu", "50")[0] == 0
    bus = w.add_terminal()
    for _ in range(before):
        assert w.tap("liu", bus)[0] == 0
    w.upload_terminal(bus)
    for _ in range(late):  # made before the loss, still in the terminal's log
        assert w.tap("liu", bus)[0] == 0
    done = _replace_lost(w)
    assert (done["purse_balance_fen"], done["refund_basis"]) == (None, "clearing")
    [waiting] = w.run("card", "refunds", "--json")[3]
    assert (waiting["status"], waiting["basis"]) == ("waiting", "clearing")

    clock.tick(dt.timedelta(days=10))
    if late:
        w.upload_terminal(bus)  # the late purchase arrives inside the window
    assert _pay(w) == []  # not due yet
    clock.tick(PAST_THE_WINDOW - dt.timedelta(days=10))
    [paid] = _pay(w)
    assert (paid["status"], paid["amount_fen"], paid["adjusted_fen"]) == ("paid", refund, 0)
    assert _account(w) == DEPOSIT_YUAN * 100 - 5000 + refund
    assert _pay(w) == []  # exactly once
    assert _reconciled(w)


def test_a_purchase_cleared_after_the_refund_is_taken_back_by_a_correction(w, clock):
    assert w.load("liu", "50")[0] == 0
    bus = w.add_terminal()
    assert w.tap("liu", bus)[0] == 0  # made before the loss, uploaded only after the refund
    _replace_lost(w)
    clock.tick(PAST_THE_WINDOW)
    [paid] = _pay(w)
    assert paid["amount_fen"] == 5000

    w.upload_terminal(bus)
    assert w.float_balance("bj") == 0  # the refund took the fare the bus operator is still owed
    [adjusted] = _pay(w)
    assert w.float_balance("bj") == FARE  # backed again: what the next clearing pays the operator
    assert (adjusted["status"], adjusted["amount_fen"], adjusted["adjusted_fen"]) == ("adjusted", 5000 - FARE, -FARE)
    assert _account(w) == DEPOSIT_YUAN * 100 - FARE
    assert _pay(w) == []  # once
    assert _reconciled(w)
    kinds = [r["kind"] for r in w.query("bj", "SELECT kind FROM ledger_entries WHERE txn_id GLOB 'PURSE-REFUND-*' "
                                              "AND account_no != 'FLOAT-PURSE' ORDER BY id")]
    assert kinds == ["purse_refund", "purse_refund_adjustment"]


def test_a_card_presented_is_refunded_from_its_chip_and_never_adjusted(w, clock):
    """The chip's balance is exact: records cleared after it were made before it was read."""
    assert w.load("liu", "50")[0] == 0
    bus = w.add_terminal()
    assert w.tap("liu", bus)[0] == 0
    number = w.cards["liu"].number
    [blank] = receive_blanks(w.home, STAFF, OUTLETS["bj"], 1, SystemClock().now())
    code, _, err, done = w.run("card", "replace", number, "--reader", f"emulator:{blank}", "--old-reader",
                               w.reader("liu"), "--operator", "BJ-C1", "--outlet", OUTLETS["bj"], "--json")
    assert code == 0, err
    assert (done["purse_balance_fen"], done["refund_basis"]) == (5000 - FARE, "chip")
    clock.tick(PAST_THE_WINDOW)
    w.upload_terminal(bus)
    [paid] = _pay(w)
    assert (paid["amount_fen"], paid["basis"]) == (5000 - FARE, "chip")
    assert _pay(w) == []
    assert _reconciled(w)
