"""Attacks on the offline records, caught at upload: a forged TAC, a counter that goes back, a purse
balance edited in the card file, a blacklisted card tapped on a terminal with an old list.

Purchases here are made on the card through its real commands by a test terminal holding
the issuer's keys (``PurseWorld.purchase``); the validator's own path is in
``test_security_validator.py``.
"""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from purse_world import NOW, clock, purse_template, purse_world  # noqa: F401

MIN = dt.timedelta(minutes=1)


@pytest.fixture
def loaded(purse_world):
    code, _, err, _ = purse_world.load("liu", "50")
    assert code == 0, err
    purse_world.register_terminal()
    return purse_world


def _statuses(pw):
    return [(r["counter"], r["status"], [f["flag"] for f in r["flags"]]) for r in pw.transit_records("bj")]


# ----------------------------------------------------------------------------- forged TAC


@pytest.mark.parametrize("forge", ["tac", "amount", "terminal_serial", "date_time", "no_tac", "unknown_card"])
def test_a_record_the_card_did_not_make_is_set_aside(loaded, forge):
    good = loaded.purchase("liu", 300, serial=1, when=NOW + MIN)
    record = loaded.purchase("liu", 400, serial=2, when=NOW + 2 * MIN)
    record = {
        "tac": lambda r: attrs.evolve(r, tac=f"{int(r.tac, 16) ^ 1:08X}"),
        "amount": lambda r: attrs.evolve(r, amount_fen=40),  # the operator claims less… or more: either way
        "terminal_serial": lambda r: attrs.evolve(r, terminal_serial=99),
        "date_time": lambda r: attrs.evolve(r, date_time="20250303100000"),
        "no_tac": lambda r: attrs.evolve(r, tac=None),
        "unknown_card": lambda r: attrs.evolve(r, app_serial="03101000999999999999", card_number=None),
    }[forge](record)
    result = loaded.upload([good, record])
    assert (result.accepted, result.rejected, result.flagged) == (1, 1, 0)
    [rejected] = result.records
    assert rejected["status"] == "rejected"
    reason = rejected["reason"]
    assert {"no_tac": "no TAC", "unknown_card": "no card with application serial"}.get(forge, "bad TAC") in reason
    rows = {r["counter"]: r for r in loaded.transit_records("bj")}
    assert rows[0]["status"] == "accepted"
    # Set aside, never cleared: the issuer's shadow counts the good record only.
    [shadow] = loaded.query("bj", "SELECT expected_balance_fen FROM purse_shadow")
    assert shadow["expected_balance_fen"] == 5000 - 300


def test_a_forged_record_sent_again_is_a_duplicate_not_a_second_chance(loaded):
    record = attrs.evolve(loaded.purchase("liu", 300, serial=1), tac="DEADBEEF")
    assert loaded.upload([record]).rejected == 1
    again = loaded.upload([record])
    assert (again.duplicates, again.rejected) == (1, 0)


# ----------------------------------------------------------------------------- counter going back


def test_a_card_image_put_back_and_spent_again_is_flagged(loaded):
    """Save the card file, spend, put the file back, spend again: the same counter twice."""
    first = loaded.purchase("liu", 300, serial=1, when=NOW + MIN)
    saved = loaded.path("liu").read_bytes()
    second = loaded.purchase("liu", 400, serial=2, when=NOW + 2 * MIN)
    loaded.path("liu").write_bytes(saved)  # the EEPROM as it was after the first purchase
    replay = loaded.purchase("liu", 400, serial=3, when=NOW + 3 * MIN)
    assert (second.counter, replay.counter) == (1, 1)
    result = loaded.upload([first, second, replay])
    assert (result.accepted, result.flagged, result.rejected) == (3, 1, 0)
    [flagged] = result.records
    assert (flagged["terminal_serial"], flagged["counter"]) == (3, 1)
    assert "counter went back" in flagged["reason"] and "serial 2" in flagged["reason"]


def test_a_replay_arriving_in_a_later_upload_is_flagged_too(loaded):
    saved = loaded.path("liu").read_bytes()
    first = loaded.purchase("liu", 300, serial=1, when=NOW + MIN)
    assert loaded.upload([first]).accepted == 1
    loaded.path("liu").write_bytes(saved)
    replay = loaded.purchase("liu", 300, serial=2, when=NOW + 5 * MIN)
    result = loaded.upload([replay])
    assert result.flagged == 1 and "counter went back" in result.records[0]["reason"]


def test_counters_and_times_that_disagree_are_flagged(loaded):
    later = loaded.purchase("liu", 300, serial=1, when=NOW + 60 * MIN)
    earlier = loaded.purchase("liu", 300, serial=2, when=NOW + 10 * MIN)  # a higher counter, an earlier time
    result = loaded.upload([later, earlier])
    assert result.flagged == 1
    assert "counter went back" in result.records[0]["reason"]


# ----------------------------------------------------------------------------- balance edited


@pytest.mark.parametrize("edited", [90000, 1000])
def test_a_purse_balance_edited_in_the_card_file_is_flagged(loaded, edited):
    honest = loaded.purchase("liu", 300, serial=1, when=NOW + MIN)
    loaded.edit_card("liu", lambda doc: doc["purse"].update(balance=edited))
    assert loaded.purse("liu") == edited
    tampered = loaded.purchase("liu", 200, serial=2, when=NOW + 2 * MIN)
    after = loaded.purchase("liu", 100, serial=3, when=NOW + 3 * MIN)
    result = loaded.upload([honest, tampered, after])
    assert (result.accepted, result.flagged) == (3, 2)
    assert _statuses(loaded) == [(0, "accepted", []), (1, "flagged", ["balance_altered"]),
                                 (2, "flagged", ["balance_altered"])]
    flag = loaded.transit_records("bj")[1]["flags"][0]
    assert flag["balance_before_fen"] == edited and flag["expected_fen"] == 4700
    assert "purse balance altered" in result.records[0]["reason"]


def test_a_raised_balance_is_caught_even_when_earlier_records_are_missing(loaded):
    loaded.purchase("liu", 300, serial=1, when=NOW + MIN)  # never uploaded
    loaded.edit_card("liu", lambda doc: doc["purse"].update(balance=90000))
    tampered = loaded.purchase("liu", 200, serial=2, when=NOW + 2 * MIN)
    result = loaded.upload([tampered])
    assert result.flagged == 1 and "at most" in result.records[0]["reason"]


def test_loads_between_purchases_uploaded_late_raise_no_flag(loaded):
    """Purchases still in terminals when the holder loads again are not an altered balance."""
    a = loaded.purchase("liu", 300, serial=1, when=NOW + MIN)
    assert loaded.load("liu", "20")[0] == 0
    b = loaded.purchase("liu", 400, serial=2, when=NOW + 2 * MIN)
    assert loaded.load("liu", "30")[0] == 0
    c = loaded.purchase("liu", 500, serial=3, when=NOW + 3 * MIN)
    result = loaded.upload([c, a, b])  # out of order too
    assert (result.accepted, result.flagged) == (3, 0)
    [shadow] = loaded.query("bj", "SELECT expected_balance_fen FROM purse_shadow")
    assert shadow["expected_balance_fen"] == loaded.purse("liu") == 10000 - 1200


# ----------------------------------------------------------------------------- blacklist window


def test_a_blacklisted_card_on_a_terminal_with_an_old_list_is_accepted_but_flagged(loaded, clock):
    before = loaded.purchase("liu", 300, serial=1, when=NOW - 30 * MIN, blacklist_version=0)
    card = loaded.cards["liu"].number
    code, _, err, _ = loaded.run("card", "report-lost", card, "--operator", "BJ-C1", "--json")
    assert code == 0, err
    [version] = loaded.query("hub", "SELECT version, published_at FROM blacklist_versions")
    assert version["version"] == 1
    offline = loaded.purchase("liu", 400, serial=2, when=NOW + 2 * dt.timedelta(hours=1), blacklist_version=0)
    result = loaded.upload([before, offline])
    assert (result.accepted, result.flagged) == (2, 1)
    [flagged] = result.records
    [flag] = flagged["flags"]
    assert flag["flag"] == "blacklisted"
    assert (flag["blacklist_version"], flag["terminal_version"], flag["window_seconds"]) == (1, 0, 7200)
    assert flag["published_at"] == dt.datetime.fromisoformat(version["published_at"]).isoformat()
    assert "version 1" in flagged["reason"] and "held version 0" in flagged["reason"]


def test_a_terminal_that_had_the_list_and_still_took_the_card_is_flagged_as_such(loaded):
    card = loaded.cards["liu"].number
    assert loaded.run("card", "report-lost", card, "--operator", "BJ-C1", "--json")[0] == 0
    record = loaded.purchase("liu", 400, serial=2, when=NOW + MIN, blacklist_version=1)
    result = loaded.upload([record])
    assert result.flagged == 1 and "already lists it" in result.records[0]["reason"]


def test_a_card_taken_off_the_list_again_is_not_flagged(loaded):
    card = loaded.cards["liu"].number
    assert loaded.run("card", "report-lost", card, "--operator", "BJ-C1", "--json")[0] == 0
    assert loaded.run("card", "unblock", card, "--operator", "BJ-C1", "--json")[0] == 0
    record = loaded.purchase("liu", 400, serial=2, when=NOW + MIN, blacklist_version=1)
    assert loaded.upload([record]).flagged == 0


def test_a_record_under_another_terminals_number_is_set_aside(loaded):
    other = ("bj-subway-9002", "bj-subway", "bj", "110100900002")
    loaded.register_terminal(other)
    record = loaded.purchase("liu", 300, serial=1, terminal=other)  # genuine, but another terminal's
    result = loaded.upload([record])  # sent as the first terminal's
    assert result.rejected == 1 and "is not terminal bj-subway-9001's" in result.records[0]["reason"]
