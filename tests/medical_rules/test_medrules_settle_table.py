"""Settlement rules, table-driven over the fixtures' catalogues and policies.

Each case writes out the receipt it expects item by item as
``(self_first, deductible, fund, account, self)`` in fen, so a change of rule or of a
sourced fixture figure shows up here as a plain difference.
"""

from __future__ import annotations

import pytest

from sbcard.reference import medical as medical_reference
from sbcard.domain import medical
from sbcard.domain.errors import InvalidInput

BJ, TJ, HE = "110000", "120000", "130000"
YEAR = 2025

BJ_EMPLOYEE = medical_reference.policy(BJ, medical.EMPLOYEE, False)  # 起付 1800 元; 90 / 70 / 70 %; 2 万元
BJ_RETIRED = medical_reference.policy(BJ, medical.EMPLOYEE, True)  # 起付 1300 元; 90 / 85 / 85 %
BJ_RESIDENT = medical_reference.policy(BJ, medical.RESIDENT, False)  # 起付 100 / 550 / 550 元; 55 / 50 / 50 %; 3000 元
HE_EMPLOYEE = medical_reference.policy(HE, medical.EMPLOYEE, False)  # ratio 80 / 70 / 60 % (illustrative)
TJ_EMPLOYEE = medical_reference.policy(TJ, medical.EMPLOYEE, False)  # 起付 800 元; 75 / 70 / 65 %; 9,000 元 (illustrative)

# Codes of the fixtures' catalogues (the place of treatment's).
AMOXICILLIN = "XJ01CAA040"  # 甲类 everywhere
VISIT = "001102000010000"  # 普通门诊诊查费 / 医事服务费, 甲类
ATORVASTATIN = "XC10AAA050"  # 乙类: 10 % self-first in Tianjin and Hebei, 0 in Beijing
MRI = "002105000010000"  # 乙类: 20 % self-first in Hebei
CETIRIZINE = "XR06AEX070"  # 乙类 in Beijing and Tianjin, 丙类 in Hebei
DENTAL_IMPLANT = "003101000010000"  # 丙类 everywhere


def line(code: str, quantity: int, unit_price_fen: int) -> medical.ClaimLine:
    return medical.ClaimLine(code, quantity, unit_price_fen)


def split(s: medical.Settlement) -> list[tuple[int, int, int, int, int]]:
    return [(i.self_first_fen, i.deductible_fen, i.fund_fen, i.account_fen, i.self_fen) for i in s.items]


def here(level: int) -> medical.Circumstances:
    return medical.Circumstances(hospital_level=level, cross_region=False)


# --------------------------------------------------------------------------- the table

CASES = [
    pytest.param(
        BJ, BJ_EMPLOYEE, medical.YearToDate(YEAR, 170_000, 0), here(3), 0,
        [line(AMOXICILLIN, 4, 5_000), line(VISIT, 1, 10_000)],
        [(0, 10_000, 7_000, 0, 13_000), (0, 0, 7_000, 0, 3_000)],
        id="deductible crossed in the middle of the first item, 70 % after it",
    ),
    pytest.param(
        BJ, BJ_EMPLOYEE, medical.YearToDate(YEAR, 175_000, 0), here(3), 0,
        [line(VISIT, 1, 4_000), line(AMOXICILLIN, 1, 3_000)],
        [(0, 4_000, 0, 0, 4_000), (0, 1_000, 1_400, 0, 1_600)],
        id="deductible crossed between items: the second item finishes it",
    ),
    pytest.param(
        TJ, TJ_EMPLOYEE, medical.YearToDate(YEAR, 80_000, 895_000), here(1), 0,
        [line(AMOXICILLIN, 1, 5_000), line(VISIT, 1, 10_000), line(AMOXICILLIN, 1, 1_000)],
        [(0, 0, 3_750, 0, 1_250), (0, 0, 1_250, 0, 8_750), (0, 0, 0, 0, 1_000)],
        id="cap reached in the middle of the claim: 5,000 fen of cap left",
    ),
    pytest.param(
        TJ, HE_EMPLOYEE, medical.YearToDate(YEAR, 60_000, 0), medical.Circumstances(3, True, registered=True), 0,
        [line(ATORVASTATIN, 1, 2_235)],
        [(223, 0, 1_207, 0, 1_028)],
        id="乙类 self-first 10 % floored (223.5 → 223), a registered Hebei patient in Tianjin",
    ),
    pytest.param(
        HE, HE_EMPLOYEE, medical.YearToDate(YEAR, 60_000, 0), here(3), 0,
        [line(MRI, 1, 51_000)],
        [(10_200, 0, 24_480, 0, 26_520)],
        id="乙类 self-first 20 % (Hebei MRI), then 60 % of the rest",
    ),
    pytest.param(
        HE, HE_EMPLOYEE, medical.YearToDate(YEAR, 0, 0), here(1), 50_000,
        [line(CETIRIZINE, 2, 2_000), line(DENTAL_IMPLANT, 1, 600_000)],
        [(4_000, 0, 0, 0, 4_000), (600_000, 0, 0, 0, 600_000)],
        id="丙类: the holder pays all, the account never pays it, the deductible is not touched",
    ),
    pytest.param(
        BJ, BJ_EMPLOYEE, medical.YearToDate(YEAR, 0, 0), here(3), 163_704,
        [line(AMOXICILLIN, 2, 1_250), line(DENTAL_IMPLANT, 1, 10_000)],
        [(0, 2_500, 0, 2_500, 0), (10_000, 0, 0, 0, 10_000)],
        id="the account pays the deductible, not the 丙类 item",
    ),
    pytest.param(
        TJ, HE_EMPLOYEE, medical.YearToDate(YEAR, 60_000, 0), medical.Circumstances(2, True, registered=True), 100_000,
        [line(ATORVASTATIN, 1, 10_000)],
        [(1_000, 0, 6_300, 3_700, 0)],
        id="the account pays 乙类 self-first and the co-pay",
    ),
    pytest.param(
        BJ, BJ_EMPLOYEE, medical.YearToDate(YEAR, 0, 0), here(3), 3_000,
        [line(VISIT, 1, 2_000), line(DENTAL_IMPLANT, 1, 1_000), line(AMOXICILLIN, 1, 5_000)],
        [(0, 2_000, 0, 2_000, 0), (1_000, 0, 0, 0, 1_000), (0, 5_000, 0, 1_000, 4_000)],
        id="the account exhausted on the third item (the 丙类 one in between takes none)",
    ),
    pytest.param(
        TJ, TJ_EMPLOYEE, medical.YearToDate(YEAR, 80_000, 900_000), here(2), 5_000,
        [line(VISIT, 1, 10_000)],
        [(0, 0, 0, 5_000, 5_000)],
        id="cap already reached: the fund pays nothing, the account pays the in-catalogue share",
    ),
]


@pytest.mark.parametrize(("province", "policy", "ytd", "c", "account", "lines", "expected"), CASES)
def test_settlement_splits_item_by_item(province, policy, ytd, c, account, lines, expected):
    s = medical.settle(lines, medical_reference.catalogue(province), policy, ytd, c, account_available_fen=account)
    assert split(s) == expected
    assert s.total_fen == sum(x.amount_fen for x in lines)
    assert (s.fund_fen, s.account_fen, s.deductible_fen) == tuple(
        sum(row[k] for row in expected) for k in (2, 3, 1))
    assert s.after == medical.YearToDate(YEAR, ytd.deductible_paid_fen + s.deductible_fen,
                                   ytd.fund_paid_fen + s.fund_fen, ytd.eligible_fen + s.eligible_fen)
    assert s.before == ytd


def test_the_cap_reached_mid_claim_is_flagged_and_the_year_stops_at_the_cap():
    s = medical.settle([line(AMOXICILLIN, 1, 5_000), line(VISIT, 1, 10_000)], medical_reference.catalogue(TJ), TJ_EMPLOYEE,
                 medical.YearToDate(YEAR, 80_000, 895_000), here(1))
    assert s.cap_reached
    assert s.after.fund_paid_fen == TJ_EMPLOYEE.cap_fen == 900_000


def test_beijings_employee_outpatient_has_no_cap_but_a_band():
    """Since 2023 Beijing sets no outpatient cap (secondary source); above 20,000 yuan the band's ratio applies."""
    assert BJ_EMPLOYEE.cap_fen is None and BJ_EMPLOYEE.band_fen == 2_000_000
    s = medical.settle([line(VISIT, 1, 10_000)], medical_reference.catalogue(BJ), BJ_EMPLOYEE,
                 medical.YearToDate(YEAR, 180_000, 50_000_000, 3_000_000), here(2))
    assert not s.cap_reached and s.fund_fen == 6_000  # 60 % above the band, however much was paid


def test_a_claim_well_within_the_cap_is_not_flagged():
    s = medical.settle([line(VISIT, 1, 10_000)], medical_reference.catalogue(BJ), BJ_EMPLOYEE, medical.YearToDate(YEAR, 180_000, 0), here(2))
    assert not s.cap_reached


# --------------------------------------------------------------------------- each insurance type

# A fresh year, 2,000 yuan of 甲类 at a 三级 hospital; then the same with the deductible met at a 二级 one.
TYPES = [
    (BJ_EMPLOYEE, (180_000, 14_000, 186_000), 7_000),
    (BJ_RETIRED, (130_000, 59_500, 140_500), 8_500),
    (BJ_RESIDENT, (55_000, 72_500, 127_500), 5_000),
    (medical_reference.policy(BJ, medical.RESIDENT, True), (55_000, 72_500, 127_500), 5_000),
]


@pytest.mark.parametrize(("policy", "fresh", "met"), TYPES,
                         ids=["employee", "employee retired", "resident", "resident elderly"])
def test_each_insurance_type_has_its_deductible_and_ratio(policy, fresh, met):
    catalogue = medical_reference.catalogue(BJ)
    s = medical.settle([line(VISIT, 1, 200_000)], catalogue, policy, medical.YearToDate(YEAR), here(3))
    assert (s.deductible_fen, s.fund_fen, s.self_fen) == fresh
    met_ytd = medical.YearToDate(YEAR, policy.deductible_fen[2], 0)
    assert medical.settle([line(VISIT, 1, 10_000)], catalogue, policy, met_ytd, here(2)).fund_fen == met


@pytest.mark.parametrize(("province", "insurance_type"),
                         [(p, t) for p in (BJ, TJ, HE) for t in medical.INSURANCE_TYPES])
def test_every_fixture_policy_pays_its_level_ratio_once_the_deductible_is_met(province, insurance_type):
    for retired in (False, True):
        policy = medical_reference.policy(province, insurance_type, retired)
        for level in medical.LEVELS:
            ytd = medical.YearToDate(YEAR, max(policy.deductible_fen.values()), 0)
            s = medical.settle([line(VISIT, 1, 10_000)], medical_reference.catalogue(province), policy, ytd, here(level))
            assert s.fund_fen == 100 * policy.ratio_pct[level]


def test_residents_deductible_depends_on_the_level():
    low = medical.settle([line(VISIT, 1, 20_000)], medical_reference.catalogue(BJ), BJ_RESIDENT, medical.YearToDate(YEAR), here(1))
    high = medical.settle([line(VISIT, 1, 20_000)], medical_reference.catalogue(BJ), BJ_RESIDENT, medical.YearToDate(YEAR), here(2))
    assert (low.deductible_fen, low.fund_fen) == (10_000, 5_500)
    assert (high.deductible_fen, high.fund_fen) == (20_000, 0)


# --------------------------------------------------------------------------- cross-region

RATIOS = [  # Hebei employee at a 三级 hospital: 60 %
    (False, False, False, 60),
    (False, False, True, 60),  # local: the flags do not matter
    (True, True, False, 60),  # registered: the level's ratio
    (True, True, True, 60),
    (True, False, True, 50),  # not registered, referral or emergency: −10
    (True, False, False, 40),  # not registered otherwise: −20
]


@pytest.mark.parametrize(("cross", "registered", "referral", "ratio"), RATIOS)
def test_cross_region_ratio(cross, registered, referral, ratio):
    c = medical.Circumstances(3, cross_region=cross, registered=registered, referral_or_emergency=referral)
    assert medical.effective_ratio(HE_EMPLOYEE, c) == ratio
    ytd = medical.YearToDate(YEAR, 60_000, 0)
    s = medical.settle([line(VISIT, 1, 10_000)], medical_reference.catalogue(BJ), HE_EMPLOYEE, ytd, c)
    assert (s.ratio_pct, s.fund_fen, s.self_fen) == (ratio, 100 * ratio, 10_000 - 100 * ratio)


def test_the_reduced_ratio_never_goes_below_zero():
    low = medical.Policy(HE, medical.RESIDENT, False, {1: 0, 2: 0, 3: 0}, {1: 25, 2: 15, 3: 5}, 100_000, 0, 0, True, "test")
    assert [medical.effective_ratio(low, medical.Circumstances(lv, True)) for lv in medical.LEVELS] == [5, 0, 0]
    assert [medical.effective_ratio(low, medical.Circumstances(lv, True, referral_or_emergency=True))
            for lv in medical.LEVELS] == [15, 5, 0]


def test_a_hebei_patient_in_beijing_uses_beijings_catalogue_and_hebeis_policy():
    """就医地目录、参保地政策: 西替利嗪 is 乙类 in Beijing (no self-first) though 丙类 at home."""
    ytd = medical.YearToDate(YEAR, 60_000, 0)
    c = medical.Circumstances(3, cross_region=True, registered=True)
    in_beijing = medical.settle([line(CETIRIZINE, 1, 2_000)], medical_reference.catalogue(BJ), HE_EMPLOYEE, ytd, c)
    at_home = medical.settle([line(CETIRIZINE, 1, 2_000)], medical_reference.catalogue(HE), HE_EMPLOYEE, ytd, here(3))
    assert (in_beijing.items[0].cls, in_beijing.fund_fen) == ("B", 1_200)
    assert (at_home.items[0].cls, at_home.fund_fen) == ("C", 0)


# --------------------------------------------------------------------------- refusals


def test_an_unknown_code_names_the_item_and_the_catalogue():
    with pytest.raises(InvalidInput) as e:
        medical.settle([line(VISIT, 1, 100), line("XZ99ZZZ999", 1, 100)], medical_reference.catalogue(TJ), BJ_EMPLOYEE,
                 medical.YearToDate(YEAR), here(1))
    assert e.value.field == "items[1].code"
    assert "120000 catalogue" in e.value.message


@pytest.mark.parametrize(("lines", "account", "field"), [
    ([], 0, "items"),
    ([line(VISIT, 1, 100)], -1, "account_available_fen"),
])
def test_an_empty_claim_or_a_negative_account_is_refused(lines, account, field):
    with pytest.raises(InvalidInput) as e:
        medical.settle(lines, medical_reference.catalogue(BJ), BJ_EMPLOYEE, medical.YearToDate(YEAR), here(1), account_available_fen=account)
    assert e.value.field == field


def test_a_settlement_reads_back_from_its_json():
    s = medical.settle([line(ATORVASTATIN, 3, 2_230), line(DENTAL_IMPLANT, 1, 100)], medical_reference.catalogue(TJ), BJ_RETIRED,
                 medical.YearToDate(YEAR, 120_000, 5), medical.Circumstances(2, True), account_available_fen=1_000)
    assert medical.Settlement.from_json(s.to_json()) == s
    assert s.to_json()["items"][0]["class"] == "B"
