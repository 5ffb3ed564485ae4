"""`clearing run`: accepted purchases cleared once, forged and unknown ones reported, counters, an issuer down."""

from __future__ import annotations

import datetime as dt
import json

import attrs
from clearing_helpers import DAY, NIGHT, balances, loaded, report, run, set_link, settle_day, taps  # noqa: F401
from purse_world import NOW, clock, purse_template, purse_world  # noqa: F401

NEXT_DAY, NEXT_NIGHT = DAY + dt.timedelta(days=1), NIGHT + dt.timedelta(days=1)


def _cleared(pw, node: str) -> list[tuple[int, str | None]]:
    return [(r["counter"], r["clearing_day"]) for r in pw.query(
        node, "SELECT counter, clearing_day FROM purse_purchases ORDER BY counter, terminal_serial")]


def _line(result, kind, payer, payee, party):
    return next(x for x in result["lines"] if (x["kind"], x["payer"], x["payee"], x["party"]) == (kind, payer, payee,
                                                                                                  party))


def test_accepted_purchases_become_lines_and_ledgers_of_both_regions(loaded):
    loaded.upload(taps(loaded, "liu", [300, 400]) + taps(loaded, "chen", [500, 600], first_serial=3), now=NOW)
    result = run(loaded)
    assert result["changed"] and result["regions"]["bj"]["status"] == "cleared"
    assert [(x["payer"], x["payee"], x["party"], x["count"], x["amount_fen"]) for x in result["lines"]] == [
        ("bj", "bj", "bj-subway", 2, 700), ("tj", "bj", "bj-subway", 2, 1100)]
    assert result["delivered"] == 1 and result["undelivered"] == 0
    # Beijing pays its own operator from the float; Tianjin owes Beijing, which owes its operator.
    assert balances(loaded, "bj") == {"CASH-BJ-110105-02": -200000, "FLOAT-PURSE": 10000 - 700,
                                      "OPERATOR-bj-subway": 1800, "CLEARING-tj": -1100}
    assert balances(loaded, "tj") == {"CASH-TJ-120103-02": -200000, "FLOAT-PURSE": 10000 - 1100, "CLEARING-bj": 1100}
    assert _cleared(loaded, "tj") == [(0, "2025-03-03"), (1, "2025-03-03")]
    s = result["settlement"]
    assert s["matrix"]["tj"]["bj"] == 1100 and s["matrix"]["bj"]["bj"] == 700
    assert s["net"] == {"bj": 1100, "tj": -1100, "he": 0} and sum(s["net"].values()) == 0
    assert s["operators"]["bj-subway"] == {"kind": "transit", "node": "bj", "count": 4, "amount_fen": 1800,
                                           "from": {"bj": 700, "tj": 1100}}
    assert all(r["ok"] for r in s["reconciliation"].values())
    # Both ledgers' transactions sum to zero.
    for node in ("bj", "tj"):
        assert loaded.query(node, "SELECT txn_id FROM ledger_entries GROUP BY txn_id HAVING sum(amount_fen) != 0") == []


def test_a_second_run_changes_nothing_and_says_so(loaded):
    loaded.upload(taps(loaded, "chen", [500]), now=NOW)
    first = run(loaded)
    files = {p: (loaded.home / p).read_bytes() for p in first["files"]}
    state = {n: balances(loaded, n) for n in ("bj", "tj", "hub") if n != "hub"}
    loaded.upload(taps(loaded, "chen", [200], first_serial=2, start=NOW + dt.timedelta(hours=1)), now=NOW)
    again = run(loaded, now=NIGHT + dt.timedelta(minutes=5))
    assert again["changed"] is False and "nothing changed" in again["message"]
    assert {k: v for k, v in again.items() if k not in ("changed", "message")} == {
        k: v for k, v in first.items() if k not in ("changed", "message")}
    assert {n: balances(loaded, n) for n in ("bj", "tj")} == state
    assert {p: (loaded.home / p).read_bytes() for p in first["files"]} == files
    assert len(loaded.query("hub", "SELECT * FROM messages WHERE kind = 'settlement'")) == 1
    # The purchase that came after the run is the next day's.
    nxt = run(loaded, NEXT_DAY, NEXT_NIGHT)
    assert [(x["count"], x["amount_fen"]) for x in nxt["lines"]] == [(1, 200)]
    assert _cleared(loaded, "tj") == [(0, "2025-03-03"), (1, "2025-03-04")]


def test_a_forged_tac_and_an_unknown_card_are_rejected_and_reported(loaded):
    good = taps(loaded, "liu", [300])
    forged = attrs.evolve(taps(loaded, "liu", [400], first_serial=2, start=NOW + dt.timedelta(hours=1))[0],
                          tac="0BADBEEF")
    unknown = attrs.evolve(taps(loaded, "chen", [500], first_serial=3)[0], app_serial="03103000999999999999",
                           card_number=None)
    result = loaded.upload(good + [forged, unknown], now=NOW)
    assert (result.accepted, result.rejected) == (1, 2)
    cleared = run(loaded)
    assert [(x["payer"], x["count"], x["amount_fen"]) for x in cleared["lines"]] == [("bj", 1, 300)]
    rep = report(loaded)
    assert [(r["category"], r["counter"], r["amount_fen"]) for r in rep["rejected"]] == [
        ("unknown_card", 0, 500), ("forged_tac", 1, 400)]
    assert "bad TAC 0BADBEEF" in rep["rejected"][1]["reason"]
    entry = next(e for e in rep["transit"] if e["issuer"] == "bj")
    assert (entry["accepted"], entry["amount_fen"], entry["rejected"], entry["reasons"]) == (1, 300, 1,
                                                                                           {"forged_tac": 1})
    assert rep["totals"]["rejected"] == 2
    # The forged record never reaches a clearing; the issuer's float pays only the real one.
    assert loaded.query("bj", "SELECT count(*) AS n FROM purse_purchases WHERE status = 'rejected' "
                              "AND clearing_day IS NULL") == [{"n": 1}]
    assert all(r["ok"] for r in settle_day(loaded)["reconciliation"].values())


def test_a_duplicated_upload_is_cleared_once(loaded):
    records = taps(loaded, "chen", [300, 400])
    loaded.upload(records, now=NOW)
    again = loaded.upload(records + records[:1], now=NOW)
    assert (again.duplicates, again.accepted) == (3, 0)
    result = run(loaded)
    assert [(x["count"], x["amount_fen"]) for x in result["lines"]] == [(2, 700)]
    assert report(loaded)["duplicates"] == {"bj": 3, "tj": 0, "he": 0}
    loaded.upload(records, now=NEXT_NIGHT - dt.timedelta(hours=1))  # the terminal sends its log again tomorrow
    assert run(loaded, NEXT_DAY, NEXT_NIGHT)["lines"] == []
    assert balances(loaded, "tj")["CLEARING-bj"] == 700


def test_out_of_order_counters_leave_a_gap_until_the_missing_record_arrives(loaded):
    c0, c1, c2, c3 = taps(loaded, "liu", [300, 300, 300, 300])
    loaded.upload([c0, c1, c3], now=NOW)  # counter 3 before 2: 2 is in a terminal that has not uploaded
    first = run(loaded)
    [gap] = first["gaps"]
    assert (gap["card_number"], gap["missing"], gap["highest_cleared"], gap["issuer"]) == (
        loaded.cards["liu"].number, [2], 3, "bj")
    assert first["regions"]["bj"]["gaps"] == 1 and report(loaded)["gaps"] == first["gaps"]
    assert [(x["count"], x["amount_fen"]) for x in first["lines"]] == [(3, 900)]
    loaded.upload([c2], now=NOW + dt.timedelta(days=1))
    second = run(loaded, NEXT_DAY, NEXT_NIGHT)
    assert second["gaps"] == [] and report(loaded, NEXT_DAY)["totals"]["gaps"] == 0
    assert [(x["count"], x["amount_fen"], x["flagged"]) for x in second["lines"]] == [(1, 300, 0)]
    assert _cleared(loaded, "bj") == [(0, "2025-03-03"), (1, "2025-03-03"), (2, "2025-03-04"), (3, "2025-03-03")]
    assert loaded.query("bj", "SELECT count(*) AS n FROM purse_purchases WHERE flags IS NOT NULL") == [{"n": 0}]


def test_a_repeated_counter_is_cleared_flagged_and_reported(loaded):
    keep = loaded.snapshot("before")
    [first] = taps(loaded, "liu", [300])
    loaded.restore(keep)  # the card's image put back: the same counter is spent again on another serial
    [repeat] = taps(loaded, "liu", [300], first_serial=9, start=NOW + dt.timedelta(minutes=5))
    assert first.counter == repeat.counter
    loaded.upload([first, repeat], now=NOW)
    result = run(loaded)
    assert [(x["count"], x["amount_fen"], x["flagged"]) for x in result["lines"]] == [(2, 600, 1)]
    rep = report(loaded)
    [flagged] = rep["flagged"]
    assert flagged["categories"] == ["counter_repeat"] and flagged["terminal_serial"] == 9
    assert rep["transit"][0]["flags"] == {"counter_repeat": 1}


def test_an_issuer_out_of_reach_leaves_records_awaiting_until_the_clearing_routes_them(loaded):
    set_link(loaded, "tj", up=False)
    records = taps(loaded, "chen", [500, 600]) + taps(loaded, "liu", [300], first_serial=3)
    result = loaded.upload(records, now=NOW)
    assert (result.sent, result.accepted, result.awaiting, result.rejected) == (3, 1, 2, 0)
    assert loaded.query("bj", "SELECT sent, accepted, awaiting FROM transit_uploads") == [
        {"sent": 3, "accepted": 1, "awaiting": 2}]
    assert loaded.query("tj", "SELECT * FROM purse_purchases") == []
    again = loaded.upload(records, now=NOW)  # sent again while waiting: duplicates
    assert (again.duplicates, again.awaiting) == (3, 0)
    down = run(loaded)  # Tianjin is still down: its part waits
    assert down["regions"]["tj"]["status"] == "unreachable" and down["routed"] == {}
    assert [(x["payer"], x["count"]) for x in down["lines"]] == [("bj", 1)]
    assert report(loaded)["awaiting"] == {"bj": 2, "tj": 0, "he": 0}
    set_link(loaded, "tj", up=True)
    up = run(loaded, NEXT_DAY, NEXT_NIGHT)
    assert up["routed"] == {"bj": {"tj": 2}}
    assert [(x["payer"], x["payee"], x["count"], x["amount_fen"]) for x in up["lines"]] == [("tj", "bj", 2, 1100)]
    rows = loaded.transit_records("bj")
    assert sorted((r["card_number"], r["counter"], r["status"]) for r in rows) == sorted(
        [(loaded.cards["chen"].number, 0, "accepted"), (loaded.cards["chen"].number, 1, "accepted"),
         (loaded.cards["liu"].number, 0, "accepted")])
    assert loaded.query("bj", "SELECT issuer_node, from_seq, to_seq, records FROM transit_routings") == [
        {"issuer_node": "tj", "from_seq": 1, "to_seq": 2, "records": 2}]
    assert report(loaded)["awaiting"] == {"bj": 0, "tj": 0, "he": 0}
    assert all(r["ok"] for r in up["settlement"]["reconciliation"].values())


def test_the_next_upload_routes_what_waited(loaded):
    set_link(loaded, "tj", up=False)
    loaded.upload(taps(loaded, "chen", [500]), now=NOW)
    set_link(loaded, "tj", up=True)
    result = loaded.upload(taps(loaded, "liu", [300], first_serial=2), now=NOW)
    assert result.accepted == 1
    assert len(loaded.query("tj", "SELECT * FROM purse_purchases")) == 1
    assert loaded.query("bj", "SELECT issuer_node, records FROM transit_routings") == [{"issuer_node": "tj",
                                                                                          "records": 1}]


def test_a_payee_out_of_reach_gets_its_lines_at_a_later_run(loaded):
    loaded.upload(taps(loaded, "chen", [500]), now=NOW)
    set_link(loaded, "bj", up=False)
    first = run(loaded)
    assert first["regions"]["bj"]["status"] == "unreachable"
    assert first["undelivered"] == 1 and first["lines"][0]["delivered"] is False
    assert "CLEARING-tj" not in balances(loaded, "bj")
    set_link(loaded, "bj", up=True)
    second = run(loaded, NEXT_DAY, NEXT_NIGHT)
    assert second["delivered"] == 1 and second["undelivered"] == 0
    assert balances(loaded, "bj")["CLEARING-tj"] == -500 and balances(loaded, "tj")["CLEARING-bj"] == 500
    [line] = loaded.query("bj", "SELECT day, payer_node, amount_fen FROM clearing_lines")
    assert line == {"day": "2025-03-03", "payer_node": "tj", "amount_fen": 500}


def test_settlement_files_per_region(loaded):
    loaded.upload(taps(loaded, "chen", [500]) + taps(loaded, "liu", [300], first_serial=2), now=NOW)
    result = run(loaded)
    assert result["files"] == ["settlement/2025-03-03/bj.json", "settlement/2025-03-03/tj.json",
                               "settlement/2025-03-03/he.json"]
    tj = json.loads((loaded.home / "settlement/2025-03-03/tj.json").read_text())
    assert list(tj) == sorted(tj)
    assert (tj["node"], tj["net_fen"], tj["counterparties"], tj["receivable"]) == ("tj", -500, {"bj": -500}, [])
    assert tj["payable"] == [{"amount_fen": 500, "count": 1, "kind": "transit", "party": "bj-subway", "payee": "bj",
                              "payer": "tj"}]
    bj = json.loads((loaded.home / "settlement/2025-03-03/bj.json").read_text())
    assert bj["net_fen"] == 500 and bj["counterparties"] == {"tj": 500} and len(bj["receivable"]) == 2
    assert bj["reconciliation"]["ok"] is True


def test_a_purchase_is_cleared_once_by_construction(loaded):
    loaded.upload(taps(loaded, "liu", [300]), now=NOW)
    run(loaded)
    import sqlite3

    from sbcard.store.world import WorldPaths

    db = sqlite3.connect(WorldPaths(loaded.home).db("bj"))
    try:
        try:
            db.execute("UPDATE purse_purchases SET clearing_day = '2025-03-04'")
        except sqlite3.IntegrityError as e:
            assert "cleared once" in str(e)
        else:
            raise AssertionError("a cleared purchase was cleared again")
    finally:
        db.close()


def test_a_purchase_kept_without_its_operator_is_owed_to_its_terminals_operator(loaded):
    """Purchases the issuer kept before it recorded operators: the operator's register names it."""
    from sbcard.services.transit import host as transit_host
    from sbcard.store.unit_of_work import UnitOfWork
    from sbcard.store.world import open_world

    records = [attrs.evolve(r, operator=None) for r in taps(loaded, "chen", [300, 400])]
    with open_world(loaded.home) as world:
        transit_host.clear_purchases(UnitOfWork(world.region("tj")), records, from_node="bj", now=NOW)
    assert loaded.query("tj", "SELECT DISTINCT operator FROM purse_purchases") == [{"operator": None}]
    result = run(loaded)
    assert [(x["payer"], x["payee"], x["party"], x["count"], x["amount_fen"]) for x in result["lines"]] == [
        ("tj", "bj", "bj-subway", 2, 700)]
