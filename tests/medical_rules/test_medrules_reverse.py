"""Refunds' arithmetic: ``reverse`` takes a settlement's deductible and fund back off the year."""

from __future__ import annotations

import pytest

from sbcard.reference import medical as R
from sbcard.domain import medical as M
from sbcard.domain.errors import RuleRefused

POLICY = R.policy("110000", M.EMPLOYEE, False)
CATALOGUE = R.catalogue("110000")
HERE = M.Circumstances(3, cross_region=False)


def claim(ytd: M.YearToDate, price: int) -> M.Settlement:
    return M.settle([M.ClaimLine("001102000010000", 1, price)], CATALOGUE, POLICY, ytd, HERE)


@pytest.mark.parametrize("before", [
    M.YearToDate(2025), M.YearToDate(2025, 170_000, 0), M.YearToDate(2025, 180_000, 1_990_000),
])
def test_reversing_the_last_claim_gives_the_year_before_it(before):
    s = claim(before, 50_000)
    assert M.reverse(s.after, s) == before


def test_reversing_an_earlier_claim_keeps_the_later_ones():
    first = claim(M.YearToDate(2025), 200_000)  # 1,800 deductible, 140 fund
    second = claim(first.after, 10_000)  # 70 fund
    assert M.reverse(second.after, first) == M.YearToDate(2025, 0, 7_000, 10_000)  # the later claim's eligible money stays


def test_another_years_accumulators_are_refused():
    s = claim(M.YearToDate(2025), 10_000)
    with pytest.raises(RuleRefused) as e:
        M.reverse(M.YearToDate(2026), s)
    assert e.value.code == "medical.refund.year"


def test_a_refund_larger_than_the_year_is_refused():
    s = claim(M.YearToDate(2025), 300_000)
    with pytest.raises(RuleRefused) as e:
        M.reverse(M.YearToDate(2025, 180_000, 1), s)
    assert e.value.code == "medical.refund.larger"
