"""The wrong PIN that blocks the PIN at a medical point of sale is ``pin.blocked`` and a ``pin_blocked`` card
event, as at a counter's PIN change; wrong PINs before it, and a PIN already blocked, record nothing."""

from __future__ import annotations

import pytest
from world_template import error_line
from medical_world import PIN, clock, medical_template, medical_world  # noqa: F401

LINES = (("XJ01CAA040", 4, "12.50"),)


def _events(w, holder):
    card = w.cards[holder]
    return [r["event"] for r in w.query(card.node, "SELECT event FROM card_events WHERE card_number = ? ORDER BY id",
                                        (card.number,))]


@pytest.mark.parametrize(
    ("pins", "code", "blocked_events"),
    [
        (["111111"], "wrong PIN: 2 tries left", 0),
        (["111111", "222222", "333333"], "error: --pin: wrong PIN, 0 tries left: the PIN is now blocked", 1),
        (["111111", "222222", "333333", PIN], "error: --pin: PIN blocked: reset at a counter", 1),
    ],
    ids=["wrong", "third-wrong-blocks", "already-blocked"],
)
def test_the_pin_blocked_at_a_point_of_sale_is_recorded_once(medical_world, pins, code, blocked_events):
    before = _events(medical_world, "zhao")
    results = [medical_world.settle("zhao", "BJH003", *LINES, options=("--pin", pin)) for pin in pins]
    assert all(c == 1 for c, _ in results)
    last = error_line(results[-1][1])
    assert code in last and last.count("\n") == 1
    after = _events(medical_world, "zhao")
    assert after[:len(before)] == before and after[len(before):] == ["pin_blocked"] * blocked_events
