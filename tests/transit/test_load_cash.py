"""现金充值: a load paid in cash at an outlet's counter — the till pays, the purse receives, the account is
left alone; a torn cash load goes back to the till; cash is taken only at the card's own region's outlets."""

from __future__ import annotations

import pytest
from purse_world import DEPOSIT_YUAN, OUTLETS, STAFF, clock, purse_template, purse_world  # noqa: F401

DEPOSIT = DEPOSIT_YUAN * 100


def cash_load(pw, holder: str, yuan: str, *, outlet: str | None = None, **reader_options):
    node = pw.cards[holder].node
    staff = next(code for code, (_, _, _, n) in STAFF.items() if n == node)
    where = ("--outlet", outlet or OUTLETS[node]) if outlet != "" else ()
    return pw.run("transit", "load", "--reader", pw.reader(holder, **reader_options), "--amount", yuan,
                  "--operator", staff, *where, "--cash", "--json")


def till(pw, node: str, outlet: str) -> int:
    [row] = pw.query(node, "SELECT coalesce(sum(amount_fen), 0) AS fen FROM ledger_entries WHERE account_no = ?",
                     (f"CASH-{outlet}",))
    return row["fen"]


def test_a_cash_load_moves_the_tills_cash_into_the_purse_and_leaves_the_account_alone(purse_world):
    before = till(purse_world, "bj", OUTLETS["bj"])
    code, out, err, done = cash_load(purse_world, "liu", "50")
    assert code == 0, err
    assert (done["paid"], done["account_balance_fen"]) == ("cash", None)
    assert done["balance_fen"] == 5000 == purse_world.purse("liu")
    assert purse_world.account("liu") == DEPOSIT
    assert till(purse_world, "bj", OUTLETS["bj"]) == before - 5000
    assert purse_world.float_balance("bj") == 5000
    [load] = purse_world.loads("liu")
    assert (load["status"], load["account_no"], load["tac"]) == ("confirmed", f"CASH-{OUTLETS['bj']}", done["tac"])


def test_the_counters_screen_says_the_load_was_paid_in_cash(purse_world):
    node = purse_world.cards["liu"].node
    code, out, err, _ = purse_world.run("transit", "load", "--reader", purse_world.reader("liu"), "--amount", "20",
                                        "--operator", "BJ-C1", "--outlet", OUTLETS[node], "--cash")
    assert code == 0, err
    assert f"in cash at {OUTLETS[node]}" in out and "account" not in out


@pytest.mark.parametrize(("outlet", "why"), [
    ("TJ-120103-01", "takes cash at Beijing's outlets only"),  # a Beijing card at a Tianjin counter
    ("", "give the outlet"),  # no outlet: no till to take the cash
])
def test_a_cash_load_without_a_till_of_the_cards_region_is_refused_and_changes_nothing(purse_world, outlet, why):
    result, out, err, _ = cash_load(purse_world, "liu", "50", outlet=outlet)
    assert result != 0
    assert "--outlet" in err and why in err
    assert purse_world.purse("liu") == 0
    assert purse_world.loads("liu") == []
    assert purse_world.float_balance("bj") == 0


@pytest.mark.parametrize("write", [1, 2, 3])
def test_a_torn_cash_load_the_card_never_credited_goes_back_to_the_till(purse_world, write):
    before = till(purse_world, "bj", OUTLETS["bj"])
    code, _, err, _ = cash_load(purse_world, "liu", "50", tear=write)
    assert code != 0 and "torn" in err
    assert till(purse_world, "bj", OUTLETS["bj"]) == before - 5000  # taken, in the float

    code, _, err, done = purse_world.recover("liu")
    assert code == 0, err
    [settled] = done["settled"]
    assert settled["status"] == "reversed"
    assert till(purse_world, "bj", OUTLETS["bj"]) == before
    assert purse_world.float_balance("bj") == 0 == purse_world.purse("liu")
    assert purse_world.account("liu") == DEPOSIT
