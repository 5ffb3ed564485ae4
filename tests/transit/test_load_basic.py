"""圈存 at a counter: the account pays, the purse receives, the TAC is recorded; refusals change nothing."""

from __future__ import annotations

from purse_world import DEPOSIT_YUAN, clock, purse_template, purse_world  # noqa: F401


def test_a_load_moves_money_from_the_account_into_the_purse(purse_world):
    code, out, err, done = purse_world.load("liu", "50")
    assert code == 0, err
    assert done["amount_fen"] == 5000 and done["balance_fen"] == 5000
    assert done["account_balance_fen"] == DEPOSIT_YUAN * 100 - 5000
    assert purse_world.purse("liu") == 5000
    assert purse_world.account("liu") == DEPOSIT_YUAN * 100 - 5000
    assert purse_world.float_balance("bj") == 5000
    [load] = purse_world.loads("liu")
    assert (load["status"], load["how"], load["tac"]) == ("confirmed", "tac", done["tac"])
    assert load["online_counter"] == 0 and done["online_counter"] == 0
    [shadow] = purse_world.query("bj", "SELECT * FROM purse_shadow")
    assert shadow["expected_balance_fen"] == 5000 and shadow["last_online_counter"] == 1
