"""Refunds' arithmetic: ``reverse`` takes a settlement's deductible and fund back off the year."""

from __future__ import annotations

import pytest

from sbcard.reference import medical as medical_reference
from sbcard.domain import medical
from sbcard.domain.errors import RuleRefused

POLICY = medical_reference.policy("110000", medical.EMPLOYEE, False)
CATALOGUE = medical_reference.catalogue("110000")
HERE = medical.Circumstances(3, cross_region=False)


def claim(ytd: medical.YearToDate, price: int) -> medical.Settlement:
    return medical.settle([medical.ClaimLine("001102000010000", 1, price)], CATALOGUE, POLICY, ytd, HERE)


@pytest.mark.parametrize("before", [
    medical.YearToDate(2025), medical.YearToDate(2025, 170_000, 0), medical.YearToDate(2025, 180_000, 1_990_000),
])
def test_reversing_the_last_claim_gives_the_year_before_it(before):
    s = claim(before, 50_000)
    assert medical.reverse(s.after, s) == before


def test_reversing_an_earlier_claim_keeps_the_later_ones():
    first = claim(medical.YearToDate(2025), 200_000)  # 1,800 deductible, 140 fund
    second = claim(first.after, 10_000)  # 70 fund
    assert medical.reverse(second.after, first) == medical.YearToDate(2025, 0, 7_000, 10_000)  # the later claim's eligible money stays


def test_another_years_accumulators_are_refused():
    s = claim(medical.YearToDate(2025), 10_000)
    with pytest.raises(RuleRefused) as e:
        medical.reverse(medical.YearToDate(2026), s)
    assert e.value.code == "medical.refund.year"


def test_a_refund_larger_than_the_year_is_refused():
    s = claim(medical.YearToDate(2025), 300_000)
    with pytest.raises(RuleRefused) as e:
        medical.reverse(medical.YearToDate(2025, 180_000, 1), s)
    assert e.value.code == "medical.refund.larger"
