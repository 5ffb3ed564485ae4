"""A card torn during the purse debit at a gate: recovered at its next entry as a transit tap recovers it.

EP purchase at a gate: the card's 4th persistent write of the session is DEBIT's commit
(``tear=4``: the card keeps the purchase, the gate gets no answer); an earlier one is a
journal write (the card keeps nothing).
"""

from __future__ import annotations

import datetime as dt

from venue_world import clock, venue_template, venues  # noqa: F401

PARK = "BJ-SC-001"  # 颐和园, ¥20 off-peak for 刘洋
GATE = "BJ-SC-001-0001"


def _torn(venues, tear: int, kept: bool) -> None:
    code, err = venues.enter("liu", PARK, tear=tear)
    assert code == 3 and ("(commit)" if kept else "(journal)") in err
    assert venues.purse("liu") == (18000 if kept else 20000)
    assert len(venues.gate_log(GATE)["pending"]) == 1


def test_a_debit_the_card_kept_is_the_ticket_at_the_retry(venues, clock):
    _torn(venues, 4, kept=True)
    clock.tick(dt.timedelta(seconds=30))
    code, done = venues.enter("liu", PARK)
    assert code == 0 and (done["recovered"], done["price_fen"], done["entry_no"]) == ("prove", 2000, 1)
    assert venues.purse("liu") == 18000  # debited once
    log = venues.gate_log(GATE)
    assert log["pending"] == [] and [(r["recovered"], r["tac"] is not None) for r in log["records"]] == [("prove", True)]
    assert [e["kind"] for e in log["events"]] == []
    [visit] = venues.ok("venue", "visits", "--venue", PARK)
    assert (visit["result"], visit["recovered"], visit["price_fen"]) == ("ok", "prove", 2000)
    sent = venues.ok("transit", "upload", "--terminal", GATE)
    assert (sent["accepted"], sent["rejected"]) == (1, 0)


def test_a_ticket_paid_before_a_tear_is_good_all_day(venues, clock):
    _torn(venues, 4, kept=True)
    clock.tick(dt.timedelta(hours=3))  # no retry: the holder came back later
    code, done = venues.enter("liu", PARK)
    assert code == 0 and done["recovered"] == "prove" and venues.purse("liu") == 18000
    code, next_entry = venues.enter("liu", PARK)  # a second entry the same day is a new ticket
    assert code == 0 and next_entry["recovered"] is None and next_entry["entry_no"] == 2
    assert venues.purse("liu") == 16000


def test_a_debit_recovered_the_next_day_is_that_days_visit_and_today_pays(venues, clock):
    _torn(venues, 4, kept=True)
    clock.tick(dt.timedelta(days=1))
    code, done = venues.enter("liu", PARK)
    assert code == 0 and done["recovered"] is None and done["price_fen"] == 2000
    assert venues.purse("liu") == 16000
    visits = venues.ok("venue", "visits", "--venue", PARK)
    assert [(v["day"], v["recovered"]) for v in visits] == [("2025-03-04", "prove"), ("2025-03-05", None)]


def test_a_debit_the_card_never_committed_is_made_again(venues, clock):
    _torn(venues, 2, kept=False)
    clock.tick(dt.timedelta(seconds=30))
    code, done = venues.enter("liu", PARK)
    assert code == 0 and done["recovered"] is None and venues.purse("liu") == 18000
    log = venues.gate_log(GATE)
    assert len(log["records"]) == 1 and [e["kind"] for e in log["events"]] == ["purchase_abandoned"]
