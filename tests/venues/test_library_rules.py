"""``sbcard.domain.library``: loan limits, due dates and overdue fines (pure, table-driven)."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.library import LoanRules, check_borrow, due_date, fine_fen, item_code, overdue_days
from sbcard.domain.venues import Venue
from sbcard.reference.venues import venue

CAPITAL = LoanRules.of(venue("BJ-LB-001"))  # 首都图书馆: 10 items, 30 days, ¥0.20 a day, at most ¥30 an item


def test_a_librarys_rules_come_from_its_row_and_the_defaults():
    assert (CAPITAL.limit, CAPITAL.days, CAPITAL.fine_fen_per_day, CAPITAL.fine_cap_fen) == (10, 30, 20, 3000)
    bare = Venue(code="HE-LB-901", name="图书馆", region="131003", kind="library")
    assert LoanRules.of(bare) == LoanRules(10, 30, 20, 3000)
    assert LoanRules.of(venue("HE-LB-002")).limit == 2
    with pytest.raises(InvalidInput):
        LoanRules.of(venue("BJ-MU-001"))


@pytest.mark.parametrize(("borrowed", "due"), [
    ("2025-03-01", "2025-03-31"), ("2025-01-31", "2025-03-02"), ("2024-02-15", "2024-03-16"), ("2025-12-15", "2026-01-14"),
])
def test_an_item_is_due_loan_days_after_the_loan(borrowed, due):
    assert due_date(dt.date.fromisoformat(borrowed), CAPITAL) == dt.date.fromisoformat(due)


@pytest.mark.parametrize(("returned", "late", "fine"), [
    ("2025-03-30", 0, 0),
    ("2025-03-31", 0, 0),        # on the due date: on time
    ("2025-04-01", 1, 20),       # the day after: one day late
    ("2025-04-10", 10, 200),
    ("2025-08-28", 150, 3000),   # 150 days: exactly the cap
    ("2026-03-31", 365, 3000),   # capped per item
])
def test_an_overdue_fine_is_per_day_and_capped(returned, late, fine):
    due, back = dt.date(2025, 3, 31), dt.date.fromisoformat(returned)
    assert (overdue_days(due, back), fine_fen(due, back, CAPITAL)) == (late, fine)


def test_a_library_without_fines_charges_nothing_for_a_late_return():
    rules = LoanRules.of(venue("HE-LB-002"))
    assert fine_fen(dt.date(2025, 3, 1), dt.date(2025, 6, 1), rules) == 0


@pytest.mark.parametrize(("open_loans", "overdue", "owed", "out", "code"), [
    (0, 0, 0, False, None),
    (9, 0, 0, False, None),
    (10, 0, 0, False, "library.limit"),
    (0, 0, 1, False, "library.fine_owed"),
    (10, 1, 20, True, "library.fine_owed"),   # the first reason first
    (3, 1, 0, False, "library.overdue"),
    (0, 0, 0, True, "library.on_loan"),
])
def test_who_may_borrow(open_loans, overdue, owed, out, code):
    def check():
        check_borrow(CAPITAL, open_loans=open_loans, overdue_loans=overdue, owed_fen=owed, item_on_loan=out,
                     library_name="首都图书馆")

    if code is None:
        check()
    else:
        with pytest.raises(RuleRefused) as refused:
            check()
        assert refused.value.code == code and refused.value.exit_code == 1


@pytest.mark.parametrize(("text", "ok"), [("I0001", True), (" 9787020002207 ", True), ("", False), ("a b", False),
                                          ("x" * 33, False), ("x" * 32, True)])
def test_an_item_is_a_barcode(text, ok):
    if ok:
        assert item_code(text) == text.strip()
    else:
        with pytest.raises(InvalidInput):
            item_code(text)
