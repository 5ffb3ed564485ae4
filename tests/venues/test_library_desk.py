"""``sbcard library borrow | return | pay | loans``: the card as reader's card, fines from the purse."""

from __future__ import annotations

import datetime as dt

from venue_world import clock, venue_template, venues  # noqa: F401

from sbcard.clock import BEIJING

CAPITAL = "BJ-LB-001"  # 首都图书馆: 10 at once, 30 days, ¥0.20 a day, at most ¥30 an item
QIAOXI = "HE-LB-002"   # 石家庄市桥西区图书馆: 2 at once, no fines
LOAN_KEYS = {"loan_id", "library", "library_name", "card_number", "item", "borrowed_at", "due_date", "returned_at",
             "returned_with", "overdue", "overdue_days", "fine_fen", "fine_id", "fine_status"}


def _ok(result):
    code, done = result
    assert code == 0, done
    return done


def test_the_first_loan_registers_the_reader_and_sets_the_due_date(venues):
    first = _ok(venues.library("borrow", "liu", CAPITAL, "--item", "I0001"))
    assert (first["registered"], first["due_date"], first["loans_open"], first["loan_limit"]) == (
        True, "2025-04-03", 1, 10)
    second = _ok(venues.library("borrow", "liu", CAPITAL, "--item", "I0002"))
    assert (second["registered"], second["loans_open"]) == (False, 2)
    loans = venues.ok("library", "loans", "--card", venues.cards["liu"].number)
    assert all(set(loan) == LOAN_KEYS for loan in loans)
    assert [(loan["item"], loan["due_date"], loan["returned_at"]) for loan in loans] == [
        ("I0001", "2025-04-03", None), ("I0002", "2025-04-03", None)]
    assert venues.purse("liu") == 20000


def test_the_loan_limit_and_an_item_already_out(venues):
    _ok(venues.library("borrow", "wang", QIAOXI, "--item", "B1"))
    _ok(venues.library("borrow", "wang", QIAOXI, "--item", "B2"))
    code, err = venues.library("borrow", "wang", QIAOXI, "--item", "B3")
    assert code == 1 and "at most 2 at once" in err
    code, err = venues.library("borrow", "chen", QIAOXI, "--item", "B1")
    assert code == 1 and "on loan already" in err
    code, err = venues.library("borrow", "wang", "HE-MU-001", "--item", "B3")
    assert code == 2 and "not a library" in err
    paid = _ok(venues.library("pay", "wang", QIAOXI))
    assert (paid["paid_fen"], paid["confidence"], paid["illustrative"]) == (0, "secondary", False)  # senbk-qiaoxi


def test_a_late_return_pays_its_fine_from_the_purse(venues, clock):
    _ok(venues.library("borrow", "liu", CAPITAL, "--item", "I0001"))
    clock.move_to(dt.datetime(2025, 4, 13, 15, 0, tzinfo=BEIJING))  # 10 days late
    back = _ok(venues.library("return", "liu", CAPITAL, "--item", "I0001"))
    assert (back["overdue_days"], back["fine_fen"], back["fine_status"], back["owed_fen"]) == (10, 200, "paid", 0)
    assert back["payment"]["result"] == "ok" and back["payment"]["balance_fen"] == 19800
    assert (back["confidence"], back["illustrative"]) == ("illustrative", True)  # 10 items at once: the project's
    assert {s["id"] for s in back["source"]} == {"xslib-fines", "jizhaowk-loans"}
    assert venues.purse("liu") == 19800
    [loan] = venues.ok("library", "loans", "--library", CAPITAL)
    assert (loan["returned_at"][:10], loan["fine_status"]) == ("2025-04-13", "paid")
    [record] = venues.gate_log(back["terminal"])["records"]
    assert (record["kind"], record["purpose"], record["fine_ids"], record["amount_fen"]) == (
        "ride", "fine", [back["fine_id"]], 200)
    sent = venues.ok("transit", "upload", "--terminal", back["terminal"])
    assert (sent["accepted"], sent["rejected"]) == (1, 0)


def test_a_return_on_the_due_date_is_on_time(venues, clock):
    _ok(venues.library("borrow", "chen", CAPITAL, "--item", "I0009"))
    clock.tick(dt.timedelta(days=30))
    back = _ok(venues.library("return", "chen", CAPITAL, "--item", "I0009"))
    assert (back["overdue_days"], back["fine_fen"], back["fine_status"], back["payment"]) == (0, 0, None, None)


def test_an_unpaid_fine_blocks_borrowing_until_it_is_paid(venues, clock):
    _ok(venues.library("borrow", "wang", CAPITAL, "--item", "I0100"))  # a Hebei card at a Beijing library
    clock.tick(dt.timedelta(days=200))
    back = _ok(venues.library("return", "wang", CAPITAL, "--item", "I0100"))  # capped at ¥30: more than the purse
    assert (back["fine_fen"], back["fine_status"], back["owed_fen"]) == (3000, "owed", 3000)
    assert back["payment"]["code"] == "insufficient_balance" and venues.purse("wang") == 2000
    code, err = venues.library("borrow", "wang", CAPITAL, "--item", "I0101")
    assert code == 1 and "¥30.00 of overdue fines unpaid" in err
    code, refused = venues.library("pay", "wang", CAPITAL)
    assert code == 1 and (refused["result"], refused["code"], refused["owed_fen"]) == (
        "refused", "insufficient_balance", 3000)
    venues.load("wang", "20")
    paid = _ok(venues.library("pay", "wang", CAPITAL))
    assert (paid["paid_fen"], paid["owed_fen"], paid["balance_fen"]) == (3000, 0, 1000)
    _ok(venues.library("borrow", "wang", CAPITAL, "--item", "I0101"))
    assert _ok(venues.library("pay", "wang", CAPITAL))["paid_fen"] == 0  # nothing owed now


def test_an_item_kept_past_its_due_date_blocks_borrowing(venues, clock):
    _ok(venues.library("borrow", "chen", "TJ-LB-001", "--item", "T1"))
    clock.tick(dt.timedelta(days=31))
    code, err = venues.library("borrow", "chen", "TJ-LB-001", "--item", "T2")
    assert code == 1 and "past the due date" in err
    [loan] = venues.ok("library", "loans", "--library", "TJ-LB-001", "--open")
    assert loan["overdue"] is True


def test_only_the_borrower_returns_an_item_and_an_unknown_one_is_not_on_loan(venues):
    _ok(venues.library("borrow", "liu", CAPITAL, "--item", "I0001"))
    code, err = venues.library("return", "chen", CAPITAL, "--item", "I0001")
    assert code == 1 and "another reader" in err
    code, err = venues.library("return", "liu", CAPITAL, "--item", "NOPE")
    assert code == 2 and "not on loan" in err


def test_a_fine_payment_torn_on_the_card_is_completed_at_the_next_tap(venues, clock):
    _ok(venues.library("borrow", "liu", CAPITAL, "--item", "I0001"))
    clock.tick(dt.timedelta(days=40))  # 10 days late
    code, err = venues.library("return", "liu", CAPITAL, "--item", "I0001", tear=4)
    assert code == 3 and "(commit)" in err and venues.purse("liu") == 19800
    [loan] = venues.ok("library", "loans", "--library", CAPITAL)
    assert (loan["returned_at"] is not None, loan["fine_status"]) == (True, "owed")
    clock.tick(dt.timedelta(minutes=1))
    paid = _ok(venues.library("pay", "liu", CAPITAL))
    assert (paid["paid_fen"], paid["owed_fen"]) == (0, 0)
    assert [(r["purpose"], r["amount_fen"], r["how"]) for r in paid["recovered"]] == [("fine", 200, "prove")]
    assert venues.purse("liu") == 19800  # taken once
    [loan] = venues.ok("library", "loans", "--library", CAPITAL)
    assert loan["fine_status"] == "paid"
