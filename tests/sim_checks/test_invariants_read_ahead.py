"""The night's card files read ahead in another process (``invariants.read_cards``): the checks take
a reading only while its file is as it was read, and say exactly what a full read says."""

from __future__ import annotations

import os
import time

from checks_world import DAY, edit_card

from sbcard.sim import invariants
from sbcard.store.world import open_world


def night(checks, read_ahead=None):
    with open_world(checks.home) as world:
        return invariants.check_day(world, checks.home, DAY, read_ahead=read_ahead)


def paths(checks):
    return sorted(os.path.abspath(checks.card_path(h)) for h in checks.holders)


def test_a_reading_still_current_is_taken_instead_of_the_file(checks, monkeypatch):
    monkeypatch.setattr(invariants, "RACY_NS", 0)
    ahead = invariants.read_cards(paths(checks))
    assert sorted(ahead) == paths(checks)
    full = night(checks)

    def no_read(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr("terminals.emulator.card_file.read_state", no_read)
    assert night(checks, ahead) == full
    assert all(r.ok for r in full.values()), invariants.describe(full)


def test_a_file_written_since_its_reading_is_read_again(checks, monkeypatch):
    """A reading made before the write would hide the extra ¥10.00 the card now shows."""
    monkeypatch.setattr(invariants, "RACY_NS", 0)
    ahead = invariants.read_cards(paths(checks))
    edit_card(checks, "chen", lambda doc: doc["purse"].__setitem__("balance", doc["purse"]["balance"] + 1000))
    results = night(checks, ahead)
    assert results == night(checks)
    assert set(invariants.failures(results)) == {"purse_float_reconciled"}
    assert "(off by -¥10.00)" in results["purse_float_reconciled"].detail


def test_a_file_written_just_before_the_reading_is_left_to_the_checks(checks):
    """Within ``racy_ns`` of its last write a file may change again without its signature showing it."""
    minute = 60 * 10**9
    hour_ago = time.time_ns() - 60 * minute
    for holder in checks.holders:
        os.utime(checks.card_path(holder), ns=(hour_ago, hour_ago))
    edit_card(checks, "chen", lambda doc: None)  # written now
    assert sorted(invariants.read_cards(paths(checks), racy_ns=minute)) == \
        sorted(os.path.abspath(checks.card_path(h)) for h in checks.holders if h != "chen")


def test_a_file_that_cannot_be_read_is_left_to_the_checks_which_say_why(checks, monkeypatch):
    monkeypatch.setattr(invariants, "RACY_NS", 0)
    broken = checks.card_path("liu")
    broken.write_bytes(b"not a card")
    os.utime(broken, ns=(1, 1))
    ahead = invariants.read_cards([*paths(checks), "/nonexistent/card.card"])
    assert os.path.abspath(broken) not in ahead and "/nonexistent/card.card" not in ahead
    results = night(checks, ahead)
    assert results == night(checks)
    detail = results["purse_float_reconciled"].detail
    assert detail.startswith(f"card {checks.holders['liu'].number} (北京 (bj)): {broken} is not an sbcard "
                             "virtual card")
