"""Bands and episodes: Beijing's employee outpatient rule above 20,000 yuan, inpatient deductibles, old receipts.

Figures from the fixtures: Beijing employee outpatient deductible 1,800 yuan (retired
1,300), 70 % / 85 % at a 三级 hospital, 60 % / 80 % above 20,000 yuan of the year's eligible
money (the band is illustrative); Beijing employee inpatient 1,300 yuan at every
admission; Tianjin residents' inpatient 500 yuan once a year.
"""

from __future__ import annotations

import json

import pytest

from sbcard.reference import medical as medical_reference
from sbcard.domain import medical

BJ, TJ, HE = "110000", "120000", "130000"
YEAR = 2025
VISIT = "001102000010000"  # 甲类: the whole amount is eligible
BJ_EMPLOYEE = medical_reference.policy(BJ, medical.EMPLOYEE, False)
BJ_RETIRED = medical_reference.policy(BJ, medical.EMPLOYEE, True)


def one(amount_fen: int) -> list[medical.ClaimLine]:
    """One 甲类 line of ``amount_fen`` (each line's fund is floored on its own: one line keeps the edge exact)."""
    return [medical.ClaimLine(VISIT, 1, amount_fen)]


def at(level: int, episode: str = medical.OUTPATIENT) -> medical.Circumstances:
    return medical.Circumstances(level, False, episode=episode)


# --------------------------------------------------------------------------- the 20,000-yuan band

EDGE = [
    # eligible money in a fresh year at a 三级 hospital: 1,800 deductible, then 70 % up to 20,000, 60 % above
    (1_999_999, (1_999_999 - 180_000) * 70 // 100, None),
    (2_000_000, (2_000_000 - 180_000) * 70 // 100, None),
    (2_000_001, (2_000_000 - 180_000) * 70 // 100 + 1 * 60 // 100, 60),
    (2_000_100, (2_000_000 - 180_000) * 70 // 100 + 100 * 60 // 100, 60),
]


@pytest.mark.parametrize(("eligible", "fund", "band"), EDGE, ids=["19,999.99", "20,000.00", "20,000.01", "20,001.00"])
def test_the_band_edge_at_20000_yuan(eligible, fund, band):
    s = medical.settle(one(eligible), medical_reference.catalogue(BJ), BJ_EMPLOYEE, medical.YearToDate(YEAR), at(3))
    assert (s.deductible_fen, s.fund_fen, s.band_ratio_pct) == (180_000, fund, band)
    assert s.after.eligible_fen == eligible
    assert all(i.fund_fen + i.account_fen + i.self_fen == i.amount_fen for i in s.items)
    # the band is illustrative: an answer that used it says so, one that did not keeps the row's confidence
    assert s.provenance.confidence == ("illustrative" if band else "secondary")


@pytest.mark.parametrize(("policy", "level", "below", "above"), [
    (BJ_EMPLOYEE, 3, 70, 60), (BJ_EMPLOYEE, 1, 90, 60), (BJ_RETIRED, 3, 85, 80), (BJ_RETIRED, 1, 90, 80),
], ids=["in service, hospital", "in service, community", "retired, hospital", "retired, community"])
def test_a_claim_across_the_band_pays_each_part_at_its_ratio(policy, level, below, above):
    ytd = medical.YearToDate(YEAR, policy.deductible_fen[level], 5_000_000, 1_990_000)  # 100 yuan short of the band
    s = medical.settle([medical.ClaimLine(VISIT, 1, 20_000)], medical_reference.catalogue(BJ), policy, ytd, at(level))
    assert s.fund_fen == 10_000 * below // 100 + 10_000 * above // 100
    assert s.after.eligible_fen == 2_010_000 and not s.cap_reached


def test_the_cross_region_cut_comes_off_the_band_too():
    ytd = medical.YearToDate(YEAR, 180_000, 0, 2_000_000)
    c = medical.Circumstances(3, True, terms=medical.Terms(medical.OTHER_TEMPORARY, 20))
    s = medical.settle([medical.ClaimLine(VISIT, 1, 10_000)], medical_reference.catalogue(HE), BJ_EMPLOYEE, ytd, c)
    assert (s.ratio_pct, s.band_ratio_pct, s.fund_fen) == (50, 40, 4_000)


def test_a_refund_takes_the_eligible_money_back_off_the_band():
    ytd = medical.YearToDate(YEAR, 180_000, 0, 1_990_000)
    s = medical.settle([medical.ClaimLine(VISIT, 1, 20_000)], medical_reference.catalogue(BJ), BJ_EMPLOYEE, ytd, at(3))
    assert medical.reverse(s.after, s) == ytd


# --------------------------------------------------------------------------- inpatient episodes


def test_an_inpatient_deductible_is_paid_at_every_admission_in_beijing():
    policy = medical_reference.policy(BJ, medical.EMPLOYEE, False, medical.INPATIENT)
    assert (policy.deductible_basis, policy.deductible_fen[3], policy.ratio_pct[3]) == ("admission", 130_000, 85)
    first = medical.settle([medical.ClaimLine(VISIT, 1, 1_000_000)], medical_reference.catalogue(BJ), policy, medical.YearToDate(YEAR), at(3, "inpatient"))
    second = medical.settle([medical.ClaimLine(VISIT, 1, 1_000_000)], medical_reference.catalogue(BJ), policy, first.after, at(3, "inpatient"))
    assert first.deductible_fen == second.deductible_fen == 130_000
    assert first.fund_fen == second.fund_fen == (1_000_000 - 130_000) * 85 // 100
    assert second.after.inpatient_deductible_paid_fen == 260_000
    assert second.after.inpatient_fund_paid_fen == first.fund_fen * 2
    assert (second.after.deductible_paid_fen, second.after.fund_paid_fen, second.after.eligible_fen) == (0, 0, 0)


def test_a_per_year_inpatient_deductible_is_paid_once_in_tianjin():
    policy = medical_reference.policy(TJ, medical.RESIDENT, False, medical.INPATIENT)
    assert (policy.deductible_basis, policy.deductible_fen[2]) == ("year", 50_000)
    first = medical.settle([medical.ClaimLine(VISIT, 1, 300_000)], medical_reference.catalogue(TJ), policy, medical.YearToDate(YEAR), at(2, "inpatient"))
    second = medical.settle([medical.ClaimLine(VISIT, 1, 300_000)], medical_reference.catalogue(TJ), policy, first.after, at(2, "inpatient"))
    assert (first.deductible_fen, second.deductible_fen) == (50_000, 0)
    assert second.fund_fen == 300_000 * 70 // 100


def test_inpatient_and_outpatient_years_are_counted_apart():
    ytd = medical.YearToDate(YEAR, deductible_paid_fen=180_000, fund_paid_fen=1_000_000)  # outpatient deductible met
    policy = medical_reference.policy(BJ, medical.EMPLOYEE, False, medical.INPATIENT)
    s = medical.settle([medical.ClaimLine(VISIT, 1, 200_000)], medical_reference.catalogue(BJ), policy, ytd, at(3, "inpatient"))
    assert s.deductible_fen == 130_000 and s.episode == "inpatient"
    assert (s.after.deductible_paid_fen, s.after.fund_paid_fen) == (180_000, 1_000_000)


def test_an_inpatient_cap_is_its_own():
    policy = medical_reference.policy(TJ, medical.EMPLOYEE, False, medical.INPATIENT)
    ytd = medical.YearToDate(YEAR, inpatient_fund_paid_fen=policy.cap_fen - 1_000)
    s = medical.settle([medical.ClaimLine(VISIT, 1, 500_000)], medical_reference.catalogue(TJ), policy, ytd, at(1, "inpatient"))
    assert s.fund_fen == 1_000 and s.cap_reached


def test_a_policy_of_the_other_episode_is_a_programming_error():
    with pytest.raises(ValueError):
        medical.settle([medical.ClaimLine(VISIT, 1, 100)], medical_reference.catalogue(BJ), BJ_EMPLOYEE, medical.YearToDate(YEAR), at(3, "inpatient"))


# --------------------------------------------------------------------------- receipts stored before


OLD_RECEIPT = {  # a settlement's JSON as stored before episodes, bands and cross-region terms existed
    "total_fen": 30_000, "fund_fen": 0, "account_fen": 0, "self_fen": 30_000, "deductible_fen": 30_000,
    "self_first_fen": 0, "ratio_pct": 70, "cap_reached": False,
    "items": [{"code": VISIT, "name": "医事服务费(普通门诊)", "class": "A", "quantity": 1, "unit_price_fen": 30_000,
               "amount_fen": 30_000, "self_first_fen": 0, "deductible_fen": 30_000, "fund_fen": 0, "account_fen": 0,
               "self_fen": 30_000}],
    "before": {"year": YEAR, "deductible_paid_fen": 0, "fund_paid_fen": 0},
    "after": {"year": YEAR, "deductible_paid_fen": 30_000, "fund_paid_fen": 0},
}


def test_an_old_receipt_reads_as_an_outpatient_claim_without_terms_and_is_reversed():
    s = medical.Settlement.from_json(json.loads(json.dumps(OLD_RECEIPT)))
    assert (s.episode, s.registration_kind, s.cut_points, s.provenance) == ("outpatient", None, None, None)
    now = medical.YearToDate(YEAR, 50_000, 7_000, 20_000)  # a later claim, stored with the band, came after it
    assert medical.reverse(now, s) == medical.YearToDate(YEAR, 20_000, 7_000, 20_000)
