"""The PIN through the CLI: changed with the old one, blocked on the chip by three wrong ones, reset at a counter."""

from __future__ import annotations

import pytest
from lifecycle_world import HOLDERS, OUTLET, PIN, card_row, digests, events
from world_template import error_line

LIU_ID = HOLDERS["liu"][1]["citizen_id"]
CHEN_ID = HOLDERS["chen"][1]["citizen_id"]


def _change(sbcard, card: str, old: str, new: str):
    code, out, err, done = sbcard("card", "pin", "change", card, "--old-pin", old, "--new-pin", new, "--json")
    return code, out, error_line(err), done


def _chip(home, card: str) -> bytes:
    from pathlib import Path

    return Path(card_row(home, "bj", card)["virtual_path"]).read_bytes()


def test_the_holder_changes_the_pin_with_the_old_one(sbcard, home, issue) -> None:
    card = issue("liu")
    code, out, err, done = _change(sbcard, card, PIN, "246813")
    assert code == 0, err
    assert (done["event"], done["operator"], done["tries_left"]) == ("pin_changed", "holder", 3)
    assert _change(sbcard, card, "246813", "975310")[0] == 0  # the chip holds the new PIN
    assert [e["event"] for e in events(home, "bj", card)[-2:]] == ["pin_changed", "pin_changed"]


def test_three_wrong_pins_block_it_until_a_counter_resets_it_for_the_holder(sbcard, home, issue) -> None:
    card = issue("liu")
    for tries_left in (2, 1):
        code, out, err, _ = _change(sbcard, card, "000001", "246813")
        assert (code, err) == (1, f"error: --old-pin: wrong PIN, {tries_left} tries left\n")
    code, out, err, _ = _change(sbcard, card, "000001", "246813")
    assert (code, err) == (1, "error: --old-pin: wrong PIN, 0 tries left: the PIN is now blocked; "
                              "have it reset at a counter\n")
    assert events(home, "bj", card)[-1]["event"] == "pin_blocked"
    code, out, err, _ = _change(sbcard, card, PIN, "246813")  # even the right PIN
    assert (code, err) == (1, "error: --old-pin: PIN blocked: have it reset at a counter\n")

    before = (digests(home), _chip(home, card))
    code, out, err, _ = sbcard("card", "pin", "reset", card, "--citizen-id", CHEN_ID, "--new-pin", "246813",
                               "--operator", "BJ-C1")
    assert code == 1 and "is not that of the holder of card" in err
    assert (digests(home), _chip(home, card)) == before

    code, out, err, done = sbcard("card", "pin", "reset", card, "--citizen-id", LIU_ID, "--new-pin", "246813",
                                  "--operator", "BJ-C1", "--outlet", OUTLET, "--json")
    assert code == 0, err
    reset = events(home, "bj", card)[-1]
    assert (reset["event"], reset["operator"], reset["outlet"], reset["reason"]) == (
        "pin_reset", "BJ-C1", OUTLET, "identity checked")
    assert _change(sbcard, card, "246813", "975310")[0] == 0


@pytest.mark.parametrize(
    ("new_pin", "words"),
    [("111111", "one digit repeated"), ("123456", "a run of digits"), ("850615", "birth date"),
     ("12345", "exactly 6 digits"), (PIN, "the new PIN is the old one")],
)
def test_a_guessable_new_pin_is_refused_before_the_card_is_touched(sbcard, home, issue, new_pin, words) -> None:
    card = issue("liu")
    before = (digests(home), _chip(home, card))
    code, out, err, _ = _change(sbcard, card, PIN, new_pin)
    assert code == 2 and err.startswith("error: --new-pin: ") and words in err
    assert (digests(home), _chip(home, card)) == before


def test_a_lost_cards_pin_is_not_touched(sbcard, home, issue) -> None:
    card = issue("liu")
    sbcard("card", "report-lost", card, "--operator", "BJ-C1")
    before = (digests(home), _chip(home, card))
    code, out, err, _ = _change(sbcard, card, PIN, "246813")
    assert code == 1 and "is reported lost; only an active card's PIN can be changed or reset" in err
    code, out, err, _ = sbcard("card", "pin", "reset", card, "--citizen-id", LIU_ID, "--new-pin", "246813",
                               "--operator", "BJ-C1")
    assert code == 1 and "is reported lost" in err
    assert (digests(home), _chip(home, card)) == before


def test_the_pin_is_asked_for_hidden_when_not_given(sbcard, home, issue) -> None:
    card = issue("liu")
    code, out, err, _ = sbcard("card", "pin", "change", card, input=f"{PIN}\n246813\n246813\n")
    assert code == 0, err
    assert PIN not in out and "246813" not in out
    assert "PIN changed" in out
