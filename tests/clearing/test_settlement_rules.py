"""Settlement arithmetic (sbcard.domain.settlement): matrix, bilateral nets, nets per region, gaps, reasons."""

from __future__ import annotations

import pytest

from sbcard.domain import settlement


def L(payer: str, payee: str, fen: int, party: str = "op", kind: str = "transit", count: int = 1) -> settlement.Line:
    return settlement.Line(kind=kind, payer=payer, payee=payee, party=party, count=count, amount_fen=fen)


CASES = [
    # lines, bilateral net positions, net per region
    ([], {}, {"bj": 0, "tj": 0, "he": 0}),
    ([L("bj", "bj", 700)], {}, {"bj": 0, "tj": 0, "he": 0}),  # a region's own: no position
    ([L("tj", "bj", 1100)], {("tj", "bj"): 1100}, {"bj": 1100, "tj": -1100, "he": 0}),
    ([L("tj", "bj", 1100), L("bj", "tj", 400)], {("tj", "bj"): 700}, {"bj": 700, "tj": -700, "he": 0}),
    ([L("tj", "bj", 400), L("bj", "tj", 400)], {}, {"bj": 0, "tj": 0, "he": 0}),  # they balance
    ([L("he", "bj", 300), L("bj", "he", 900), L("tj", "he", 50)], {("bj", "he"): 600, ("tj", "he"): 50},
     {"bj": -600, "tj": -50, "he": 650}),
    ([L("he", "bj", 500, "BJH003", "medical"), L("he", "bj", -500, "BJH003", "medical")], {},
     {"bj": 0, "tj": 0, "he": 0}),  # a refund cancels its claim
    ([L("he", "bj", 300, "a"), L("he", "bj", 200, "b"), L("bj", "he", 100)], {("he", "bj"): 400},
     {"bj": 400, "tj": 0, "he": -400}),
    ([L("bj", "tj", 1), L("tj", "he", 1), L("he", "bj", 1)], {("bj", "tj"): 1, ("he", "bj"): 1, ("tj", "he"): 1},
     {"bj": 0, "tj": 0, "he": 0}),  # a ring: every pair owes, nobody is owed net
]


@pytest.mark.parametrize(("lines", "positions", "net"), CASES)
def test_net_positions_and_net_by_region(lines, positions, net):
    assert settlement.net_positions(lines) == positions
    assert settlement.net_by_region(positions) == net
    assert settlement.net_by_region(settlement.matrix(lines)) == net  # from the gross matrix: the same
    assert settlement.balanced(net)


def test_matrix_has_every_region_on_both_axes():
    m = settlement.matrix([L("tj", "bj", 1100), L("tj", "bj", 100), L("bj", "bj", 7)])
    assert m == {"bj": {"bj": 7, "tj": 0, "he": 0}, "tj": {"bj": 1200, "tj": 0, "he": 0},
                 "he": {"bj": 0, "tj": 0, "he": 0}}


def test_counterparties_and_parties():
    lines = [L("he", "bj", 300, "BJH003", "medical"), L("bj", "he", 900, "he-sjz-bus"), L("tj", "he", 50, "he-sjz-bus")]
    positions = settlement.net_positions(lines)
    assert settlement.counterparties(positions, "he") == {"bj": 600, "tj": 50}
    assert settlement.counterparties(positions, "bj") == {"he": -600}
    assert settlement.parties(lines) == {
        "BJH003": {"kind": "medical", "node": "bj", "count": 1, "amount_fen": 300, "from": {"he": 300}},
        "he-sjz-bus": {"kind": "transit", "node": "he", "count": 2, "amount_fen": 950, "from": {"bj": 900, "tj": 50}},
    }


@pytest.mark.parametrize(("next_counter", "cleared", "gaps"), [
    (0, [], []),
    (2, [0, 1], []),  # everything under next is cleared
    (2, [0, 1, 3], [2]),
    (2, [4, 7], [2, 3, 5, 6]),
    (5, [1, 2, 3], []),  # only the recent ones below next: no gap
])
def test_counter_gaps(next_counter, cleared, gaps):
    assert settlement.counter_gaps(next_counter, cleared) == gaps


def test_gap_ranges():
    assert settlement.gap_ranges([9, 3, 4, 5]) == [(3, 5), (9, 9)]
    assert settlement.gap_ranges([]) == []


@pytest.mark.parametrize(("reason", "category"), [
    ("bad TAC 0BADBEEF: the card did not make this record (forged or altered)", "forged_tac"),
    ("no TAC: the terminal never received the card's proof of the purchase", "forged_tac"),
    ("malformed record: non-hexadecimal number", "forged_tac"),
    ("no card with application serial 03103000999999999999 in Tianjin", "unknown_card"),
    ("transaction type 02 is not a purchase", "not_a_purchase"),
    ("terminal number 110100900009 is not terminal bj-subway-9001's (110100900001)", "wrong_terminal"),
    ("the card's issuer is outside Beijing, Tianjin and Hebei: no issuer to clear it with", "no_issuer"),
    ("something new", "other"),
    (None, "other"),
])
def test_rejection_categories(reason, category):
    assert settlement.rejection_category(reason) == category


def test_flag_categories_once_each_in_order():
    flags = [{"flag": "blacklisted"}, {"flag": "counter_back"}, {"flag": "blacklisted"}, {"flag": "new"}]
    assert settlement.flag_categories(flags) == ["blacklisted", "counter_repeat", "other"]


@pytest.mark.parametrize("bad", [
    {"kind": "bus"}, {"payer": "sh"}, {"payee": "xx"}, {"party": ""}, {"count": -1}, {"amount_fen": 1.5},
    {"count": True},
])
def test_a_line_that_exists_is_valid(bad):
    fields = {"kind": "transit", "payer": "bj", "payee": "tj", "party": "op", "count": 1, "amount_fen": 1, **bad}
    with pytest.raises(ValueError):
        settlement.Line(**fields)


@pytest.mark.parametrize(("stamp", "before"), [
    ("2025-03-03T23:59:59.999999+08:00", True),
    ("2025-03-04T00:00:00+08:00", False),
    ("2025-03-04T00:00:00.5+08:00", False),
    ("2025-03-03T15:59:59+00:00", True),  # the same instants at other offsets
    ("2025-03-03T16:00:00+00:00", False),
    ("2025-03-03T10:59:59-05:00", True),
    ("2025-03-03T11:00:00-05:00", False),
    ("2025-03-02T09:00:00+08:00", True),
])
def test_before_the_end_of_a_beijing_day(stamp, before):
    import datetime as dt
    import sqlite3

    from sbcard.store.repositories.clearing import before_end

    sql, args = before_end("t", dt.date(2025, 3, 3))
    db = sqlite3.connect(":memory:")
    assert bool(db.execute(f"SELECT {sql} FROM (SELECT ? AS t)", [*args, stamp]).fetchone()[0]) is before
