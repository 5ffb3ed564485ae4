"""The venue and library commands' human output: readable lines, no JSON, nothing personal."""

from __future__ import annotations

import datetime as dt

from venue_world import HOLDERS, clock, venue_template, venues  # noqa: F401


def _out(venues, *args: str) -> str:
    code, out, err, _ = venues.run(*args)
    assert code == 0, err
    return out


def test_every_command_prints_a_readable_summary(venues, clock):
    assert "颐和园" in _out(venues, "venue", "list", "--region", "110108")
    entered = _out(venues, "venue", "enter", "--reader", venues.reader("liu"), "--venue", "BJ-SC-001")
    assert "welcome to 颐和园: ¥20.00 paid, balance ¥180.00" in entered and "full price" in entered
    assert "BJ-SC-001-0001" in _out(venues, "venue", "gate", "list")
    assert "颐和园" in _out(venues, "venue", "visits")
    borrowed = _out(venues, "library", "borrow", "--reader", venues.reader("liu"), "--library", "BJ-LB-001",
                    "--item", "I0001")
    assert "2025-04-03" in borrowed and "registered now" in borrowed
    assert "illustrative: 首都图书馆's loan rules" in borrowed
    assert "on loan" in _out(venues, "library", "loans")
    clock.tick(dt.timedelta(days=40))
    returned = _out(venues, "library", "return", "--reader", venues.reader("liu"), "--library", "BJ-LB-001",
                    "--item", "I0001")
    assert "¥2.00 paid" in returned and "10 day(s)" in returned
    assert "Nothing owed" in _out(venues, "library", "pay", "--reader", venues.reader("liu"), "--library",
                                  "BJ-LB-001")
    everything = "".join(_out(venues, *cmd) for cmd in (("venue", "visits"), ("library", "loans")))
    assert not any(fields["citizen_id"] in everything or fields["name"] in everything
                   for _, fields in HOLDERS.values())
    code, out, err, _ = venues.run("venue", "enter", "--reader", venues.reader("wang"), "--venue", "TJ-SC-001")
    assert code == 1 and out.startswith("refused: insufficient balance")


def test_the_human_output_says_where_a_price_comes_from_and_when_it_is_illustrative(venues):
    sourced = _out(venues, "venue", "enter", "--reader", venues.reader("wang"), "--venue", "HE-SC-001")
    assert "aged 70 or more: free" in sourced and "secondary: " in sourced and "illustrative" not in sourced
    own = _out(venues, "venue", "enter", "--reader", venues.reader("liu"), "--venue", "TJ-SC-001")
    assert "cardholders: 20% off" in own and "illustrative: this price rests on" in own
    listed = _out(venues, "venue", "list", "--region", "120000")
    assert "illustrative rows" in listed
