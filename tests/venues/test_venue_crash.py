"""A gate that dies between the purse debit (committed in its log) and the host's record of what it paid for.

The crash is injected exactly there: the host's write raises an exception that is not an
``SbcardError`` (as a killed process, nothing of the host's transaction is written; the
debit is already in the gate's log). At the gate's next start the host rebuilds the
visit, or marks the fines paid, from the log: once, however often the gate starts again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from venue_world import clock, venue_template, venues  # noqa: F401

from sbcard.clock import BEIJING
from sbcard.services.venues import gates as venue_gates

PARK = "BJ-SC-001"  # 颐和园, ¥20 off-peak for 刘洋
GATE = "BJ-SC-001-0001"
CAPITAL = "BJ-LB-001"  # 首都图书馆: ¥0.20 a day late


class Crash(BaseException):
    """The process dies here (not an error sbcard would report)."""


def _crash(*_args, **_kwargs):
    raise Crash


def test_an_admission_debited_before_the_gate_died_is_rebuilt_as_its_visit_once(venues, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(venue_gates.GateHost, "record_visit", _crash)
        with pytest.raises(Crash):
            venues.enter("liu", PARK)
    assert venues.purse("liu") == 18000  # debited…
    assert venues.ok("venue", "visits", "--venue", PARK) == []  # …and no visit: half-written
    [record] = venues.gate_log(GATE)["records"]

    code, done = venues.enter("liu", PARK)  # the gate's next start
    assert code == 0 and done["entry_no"] == 2
    visits = venues.ok("venue", "visits", "--venue", PARK)
    assert [(v["terminal_serial"], v["price_fen"], v["entry_no"]) for v in visits] == [
        (record["terminal_serial"], 2000, 1), (done["terminal_serial"], 2000, 2)]
    events = venues.gate_log(GATE)["events"]
    assert [(e["kind"], e["details"]["terminal_serial"]) for e in events] == [("rebuilt", record["terminal_serial"])]

    venues.enter("liu", PARK)  # started once more: nothing rebuilt twice
    assert len([v for v in venues.ok("venue", "visits", "--venue", PARK) if v["terminal_serial"] ==
                record["terminal_serial"]]) == 1
    sent = venues.ok("transit", "upload", "--terminal", GATE)
    assert (sent["accepted"], sent["rejected"]) == (3, 0)


def test_the_daily_limit_counts_a_rebuilt_visit(venues, monkeypatch, clock):
    """The visit is rebuilt before the card is judged: a lost visit never buys a second entry over the limit."""
    from sbcard.reference.venues import venues as all_venues

    limited = next(v for v in all_venues().values() if v.node == "bj" and v.daily_limit == 1 and v.price_fen)
    with monkeypatch.context() as m:
        m.setattr(venue_gates.GateHost, "record_visit", _crash)
        with pytest.raises(Crash):
            venues.enter("liu", limited.code)
    code, done = venues.enter("liu", limited.code)
    assert code == 1 and done["code"] == "daily_limit", done


def test_a_fine_taken_before_the_desk_died_is_marked_paid_at_its_next_start(venues, monkeypatch, clock):
    _ok = lambda result: result[1] if result[0] == 0 else pytest.fail(str(result[1]))  # noqa: E731
    _ok(venues.library("borrow", "liu", CAPITAL, "--item", "I0001"))
    clock.move_to(dt.datetime(2025, 4, 13, 15, 0, tzinfo=BEIJING))  # 10 days late: ¥2.00
    with monkeypatch.context() as m:
        m.setattr(venue_gates, "fines_paid", _crash)
        with pytest.raises(Crash):
            venues.library("return", "liu", CAPITAL, "--item", "I0001")
    assert venues.purse("liu") == 19800
    [loan] = venues.ok("library", "loans", "--library", CAPITAL)
    assert loan["fine_status"] == "owed"  # paid from the purse, not recorded

    paid = _ok(venues.library("pay", "liu", CAPITAL))  # the desk's next start
    assert (paid["paid_fen"], paid["owed_fen"]) == (0, 0)  # nothing taken twice
    assert venues.purse("liu") == 19800
    [loan] = venues.ok("library", "loans", "--library", CAPITAL)
    assert loan["fine_status"] == "paid"
