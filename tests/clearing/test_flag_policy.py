"""Flags act (issue 15, item 3): the clearing run blocks a card by the policy of
``sbcard.domain.purse_policy`` — an altered balance at once; counter anomalies (a counter used
again, a skipped counter whose record is overdue) once there are ``COUNTER_ANOMALY_LIMIT`` —
on the hub's blacklist, with the evidence in the card's history; the report lists the
float the blocked purses leave.
"""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest
from clearing_helpers import DAY, NIGHT, loaded, report, run, taps  # noqa: F401
from purse_world import NOW, clock, purse_template, purse_world  # noqa: F401

from sbcard.domain import purse_policy
from sbcard.services.terminals import register as terminals
from sbcard.store.world import open_world

MIN = dt.timedelta(minutes=1)


def repeats(pw, n: int) -> list:
    """The card's image put back ``n`` times: the same offline counter spent n + 1 times."""
    image = pw.path("liu").read_bytes()
    out = []
    for i in range(n + 1):
        pw.path("liu").write_bytes(image)
        out.append(pw.purchase("liu", 300, serial=i + 1, when=NOW + (i + 1) * MIN))
    return out


def altered(pw) -> list:
    honest = pw.purchase("liu", 300, serial=1, when=NOW + MIN)
    pw.edit_card("liu", lambda doc: doc["purse"].update(balance=90000))
    return [honest, pw.purchase("liu", 200, serial=2, when=NOW + 2 * MIN)]


def gaps(pw, missing: int) -> list:
    """``missing`` purchases that never reach the host, then one that does."""
    made = taps(pw, "liu", [100] * (missing + 1))
    return made[-1:]


def mac2_failed(pw) -> list:
    return [attrs.evolve(r, status="mac2_failed") for r in taps(pw, "liu", [300, 300, 300])]


LATE = DAY + dt.timedelta(days=purse_policy.GAP_GRACE_DAYS + 1)  # a gap's record is overdue by then


@pytest.mark.parametrize("make, day, rule, evidence_flags", [
    pytest.param(altered, DAY, "balance_altered", [["balance_altered"]], id="balance_altered-at-once"),
    pytest.param(lambda pw: repeats(pw, 1), DAY, None, None, id="counter_back-once-counted"),
    pytest.param(lambda pw: repeats(pw, 2), DAY, None, None, id="counter_back-twice-counted"),
    pytest.param(lambda pw: repeats(pw, 3), DAY, "counter_anomalies", [["counter_back"]] * 3,
                 id="counter_back-three-times-blocked"),
    pytest.param(lambda pw: gaps(pw, 3), DAY, None, None, id="counter_gap-within-grace"),
    pytest.param(lambda pw: gaps(pw, 2), LATE, None, None, id="counter_gap-overdue-twice-counted"),
    pytest.param(lambda pw: gaps(pw, 3), LATE, "counter_anomalies", [["counter_gap"]], id="counter_gap-overdue-x3"),
    pytest.param(mac2_failed, DAY, None, None, id="mac2_failed-not-counted"),
])
def test_each_flag_kind_blocks_or_is_counted_by_the_policy(loaded, make, day, rule, evidence_flags):
    records = make(loaded)
    loaded.upload(records, now=NOW)
    now = dt.datetime.combine(day, NIGHT.timetz())
    if day != DAY:
        run(loaded)  # the first night: the gap is young
    result = run(loaded, day, now)
    card = loaded.cards["liu"].number
    events = loaded.query("bj", "SELECT * FROM card_events WHERE event = 'purse_blocked'")
    listed = loaded.query("hub", "SELECT card_number, action, reason FROM blacklist_entries")
    if rule is None:
        assert events == [] and listed == [] and result["blocks"] == []
        return
    [event] = events
    details = json.loads(event["details"])
    assert (event["card_number"], details["rule"]) == (card, rule)
    assert [e["flags"] for e in details["evidence"]] == evidence_flags
    assert listed == [{"card_number": card, "action": "add", "reason": f"purse_blocked: {rule}"}]
    [block] = result["blocks"]
    assert (block["card_number"], block["rule"], block["issuer"]) == (card, rule, "bj")


def test_the_evidence_names_the_records(loaded):
    records = repeats(loaded, 3)
    loaded.upload(records, now=NOW)
    run(loaded)
    [event] = loaded.query("bj", "SELECT details FROM card_events WHERE event = 'purse_blocked'")
    evidence = json.loads(event["details"])["evidence"]
    assert [(e["counter"], e["terminal_serial"], e["clearing_day"]) for e in evidence] == [
        (0, 2, "2025-03-03"), (0, 3, "2025-03-03"), (0, 4, "2025-03-03")]
    assert all(e["terminal_no"] == "110100900001" for e in evidence)


def test_anomalies_add_up_over_clearing_days(loaded):
    first = repeats(loaded, 2)
    loaded.upload(first, now=NOW)
    run(loaded)
    assert loaded.query("bj", "SELECT * FROM card_events WHERE event = 'purse_blocked'") == []
    [again] = repeats_from(loaded, serial=10, when=NOW + dt.timedelta(days=1))
    loaded.upload([again], now=NOW + dt.timedelta(days=1))
    result = run(loaded, DAY + dt.timedelta(days=1), NIGHT + dt.timedelta(days=1))
    [block] = result["blocks"]
    assert block["rule"] == "counter_anomalies" and block["evidence_count"] == 3


def repeats_from(pw, *, serial: int, when: dt.datetime) -> list:
    """One more purchase at a counter already spent: the oldest image kept by ``repeats`` is gone, so roll the
    card's offline counter back by one in its file."""
    pw.edit_card("liu", lambda doc: doc["purse"].update(offline_counter=doc["purse"]["offline_counter"] - 1))
    return [pw.purchase("liu", 300, serial=serial, when=when)]


def test_a_blocked_card_reaches_the_terminals_copy_of_the_blacklist_and_loads_are_refused(loaded):
    loaded.upload(altered(loaded), now=NOW)
    run(loaded)
    with open_world(loaded.home) as world:
        copy = terminals.blacklist_copy(world)
    assert loaded.cards["liu"].number in copy.cards
    code, _, err, _ = loaded.load("liu", "10")
    assert code == 1 and "blocked" in err


def test_a_card_found_again_after_a_loss_stays_blocked(loaded):
    loaded.upload(altered(loaded), now=NOW)
    run(loaded)
    card = loaded.cards["liu"].number
    for command in (("card", "report-lost", card), ("card", "unblock", card)):
        code, _, err, _ = loaded.run(*command, "--operator", "BJ-C1", "--json")
        assert code == 0, err
    with open_world(loaded.home) as world:
        assert card in terminals.blacklist_copy(world).cards


def test_a_second_clearing_does_not_block_twice(loaded):
    loaded.upload(altered(loaded), now=NOW)
    run(loaded)
    loaded.upload([loaded.purchase("liu", 100, serial=3, when=NOW + dt.timedelta(days=1))],
                  now=NOW + dt.timedelta(days=1))
    result = run(loaded, DAY + dt.timedelta(days=1), NIGHT + dt.timedelta(days=1))
    assert result["blocks"] == []
    assert len(loaded.query("bj", "SELECT * FROM card_events WHERE event = 'purse_blocked'")) == 1
    assert len(loaded.query("hub", "SELECT * FROM blacklist_entries")) == 1


def test_the_report_lists_the_float_no_purse_backs(loaded):
    """¥100.00 loaded, ¥3.00 and ¥2.00 spent: the issuer holds ¥95.00 for a purse that is blocked."""
    loaded.upload(altered(loaded), now=NOW)
    run(loaded)
    rep = report(loaded)
    [block] = rep["blocks"]
    assert (block["float_fen"], block["overspent_fen"]) == (9500, 0)
    assert (rep["totals"]["blocked"], rep["totals"]["blocked_float_fen"]) == (1, 9500)
    code, out, err, _ = loaded.run("clearing", "report", "--date", DAY.isoformat())
    assert code == 0, err
    assert "cards blocked" in out and "balance_altered" in out and "¥95.00" in out


def test_the_float_still_reconciles_after_blocks(loaded):
    loaded.upload(altered(loaded), now=NOW)
    run(loaded)
    cleared = sum(r["amount_fen"] for r in loaded.query("bj", "SELECT amount_fen FROM purse_purchases"))
    assert loaded.float_balance("bj") == 10000 - cleared
