"""A purse load of any size is answered in one line and changes nothing when it passes the purse's maximum
(¥1,000.00, docs/protections/money-bounds.md) — up to and past SQLite's 64-bit integer."""

from __future__ import annotations

import pytest
from world_template import error_line
from purse_world import DEPOSIT_YUAN, clock, purse_template, purse_world  # noqa: F401

DEPOSIT = DEPOSIT_YUAN * 100


@pytest.mark.parametrize(
    ("amount", "exit_code", "words"),
    [
        ("1000.01", 1, "maximum of ¥1000.00"),
        ("4294967296", 1, "maximum of ¥1000.00"),  # past the card's 4-byte amount
        ("92233720368547758.07", 1, "maximum of ¥1000.00"),  # SQLite's largest integer, in fen
        ("92233720368547758.08", 2, "too large"),
        ("0", 2, "more than ¥0.00"),
    ],
    ids=["a-fen-over", "past-u32", "int64-max", "past-int64", "zero"],
)
def test_a_load_out_of_bounds_is_refused_and_changes_nothing(purse_world, amount, exit_code, words):
    code, out, err, _ = purse_world.load("liu", amount)
    err = error_line(err)
    assert (code, out) == (exit_code, "")
    assert err.startswith("error: --amount: ") and err.count("\n") == 1 and words in err
    assert purse_world.account("liu") == DEPOSIT and purse_world.purse("liu") == 0
    assert purse_world.loads("liu") == []
