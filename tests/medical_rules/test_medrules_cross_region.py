"""Cross-region terms (国医保发〔2022〕22号): which kind a treatment counts as, and how many points come off.

The rules are the fixtures' (``cross_region.csv``, ``national.csv``); where a case needs
the Jing-Jin-Ji same-treatment switch off, the test turns it off in a copy of the rules.
Holders and days are real-looking: a Hebei employee treated in Beijing, a retired Tianjin
employee treated in Hebei, a registration's first and last day and their eves.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import attrs
import pytest

from sbcard.reference import medical as medical_reference
from sbcard import reference
from sbcard.domain import medical
from sbcard.domain.errors import InvalidInput, SbcardError

BJ, TJ, HE = "110000", "120000", "130000"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DAY = dt.date(2025, 3, 3)


def without_jjj(province: str) -> medical.CrossRegionRules:
    """The province's rules with the Jing-Jin-Ji switch off (as a region outside the arrangement would be)."""
    rules = medical_reference.cross_region(province)
    kinds = dict(rules.kinds)
    kinds[medical.JJJ_DEEMED] = attrs.evolve(kinds[medical.JJJ_DEEMED], on=False)
    return medical.CrossRegionRules(province, kinds)


def terms(insured: str, treated: str, *, registration: medical.Registration | None = None, visit: str = "",
          day: dt.date = DAY, rules: medical.CrossRegionRules | None = None) -> medical.Terms:
    return medical.cross_region_terms(rules or without_jjj(insured), insured_province=insured, treated_province=treated,
                                day=day, registration=registration, visit=visit)


def registered(kind: str, province: str, first: dt.date = dt.date(2025, 1, 1),
               last: dt.date | None = dt.date(2025, 6, 30)) -> medical.Registration:
    return medical.Registration(kind, province, first, last, id=7)


# --------------------------------------------------------------------------- each kind's cut

KINDS = [
    # a retired Tianjin employee treated in Hebei: Tianjin sets the cuts (other temporary 15, below the 20 cap)
    (TJ, HE, registered(medical.RETIRED_RESETTLED, HE, last=None), "", medical.RETIRED_RESETTLED, 0),
    (TJ, HE, registered(medical.LONG_TERM_RESIDENT, HE, last=None), "", medical.LONG_TERM_RESIDENT, 0),
    (TJ, HE, registered(medical.POSTED_WORKER, HE), "", medical.POSTED_WORKER, 0),
    (TJ, HE, registered(medical.REFERRAL, HE), "", medical.REFERRAL, 10),
    (TJ, HE, registered(medical.OTHER_TEMPORARY, HE), "", medical.OTHER_TEMPORARY, 15),
    (TJ, HE, None, "emergency", medical.EMERGENCY, 10),  # 急诊抢救: 视同已备案, no registration needed
    (TJ, HE, None, "referral", medical.REFERRAL, 10),  # a referral the hospital declares
    (TJ, HE, None, "", medical.UNREGISTERED, 20),
    # a Hebei employee treated in Beijing: Hebei's cuts, at the national caps
    (HE, BJ, registered(medical.OTHER_TEMPORARY, BJ), "", medical.OTHER_TEMPORARY, 20),
    (HE, BJ, None, "", medical.UNREGISTERED, 20),
    # the most favourable applies: a long-term resident's emergency keeps the home rates
    (HE, BJ, registered(medical.LONG_TERM_RESIDENT, BJ, last=None), "emergency", medical.LONG_TERM_RESIDENT, 0),
    (TJ, HE, registered(medical.OTHER_TEMPORARY, HE), "emergency", medical.EMERGENCY, 10),
    # a registration for another province does not count here
    (HE, BJ, registered(medical.LONG_TERM_RESIDENT, TJ, last=None), "", medical.UNREGISTERED, 20),
    # at home: no cut, no kind
    (BJ, BJ, None, "emergency", medical.LOCAL, 0),
]


@pytest.mark.parametrize(("insured", "treated", "registration", "visit", "kind", "cut"), KINDS)
def test_each_kind_has_its_cut(insured, treated, registration, visit, kind, cut):
    t = terms(insured, treated, registration=registration, visit=visit)
    assert (t.kind, t.cut_points) == (kind, cut)
    if registration is not None and t.kind == registration.kind:
        assert t.registration_id == 7


@pytest.mark.parametrize("kind", medical.LONG_TERM_KINDS)
def test_long_term_residents_get_the_insured_regions_own_rates_in_every_region(kind):
    for insured in medical.PROVINCES:
        assert medical_reference.cross_region(insured).kinds[kind].cut_points == 0


def test_a_region_may_cut_less_than_the_national_cap():
    tianjin, caps = medical_reference.cross_region(TJ), medical_reference.national_caps()
    assert tianjin.kinds[medical.OTHER_TEMPORARY].cut_points == 15 < caps.of_kind(medical.OTHER_TEMPORARY) == 20


def test_the_national_caps_are_the_22_notices_and_the_fallback_constants():
    caps = medical_reference.national_caps()
    assert dict(caps.points) == {"long_term": 0, "referral": 10, "emergency": 10, "other_temporary": 20}
    assert (caps.of_kind(medical.REFERRAL), caps.of_kind(medical.OTHER_TEMPORARY)) == (
        medical.UNREGISTERED_REFERRAL_POINTS, medical.UNREGISTERED_OTHER_POINTS)
    assert "nhsa-2022-22" in {s.id for s in caps.provenance.sources}


# --------------------------------------------------------------------------- a registration's days

FIRST, LAST = dt.date(2025, 3, 10), dt.date(2025, 9, 9)
DAYS = [
    (FIRST - dt.timedelta(days=1), medical.UNREGISTERED, 20),  # the eve of the first day
    (FIRST, medical.OTHER_TEMPORARY, 15),  # the first day counts
    (LAST, medical.OTHER_TEMPORARY, 15),  # the last day counts
    (LAST + dt.timedelta(days=1), medical.UNREGISTERED, 20),  # the day after
]


@pytest.mark.parametrize(("day", "kind", "cut"), DAYS, ids=["eve", "first day", "last day", "day after"])
def test_a_registration_counts_from_its_first_to_its_last_day(day, kind, cut):
    reg = registered(medical.OTHER_TEMPORARY, HE, FIRST, LAST)
    t = terms(TJ, HE, registration=reg, day=day)
    assert (t.kind, t.cut_points) == (kind, cut)


def test_an_open_ended_registration_has_no_last_day():
    reg = registered(medical.RETIRED_RESETTLED, HE, FIRST, None)
    assert terms(TJ, HE, registration=reg, day=dt.date(2040, 1, 1)).kind == medical.RETIRED_RESETTLED


def test_a_registration_cannot_end_before_it_starts():
    with pytest.raises(ValueError):
        medical.Registration(medical.REFERRAL, HE, FIRST, FIRST - dt.timedelta(days=1))


def test_an_emergency_is_not_a_kind_one_registers():
    with pytest.raises(ValueError):
        medical.Registration(medical.EMERGENCY, HE, FIRST, LAST)


def test_an_unknown_visit_is_refused():
    with pytest.raises(InvalidInput):
        terms(TJ, HE, visit="walk-in")


# --------------------------------------------------------------------------- Jing-Jin-Ji 视同备案


def test_inside_jing_jin_ji_treatment_is_deemed_registered_by_the_data():
    """The fixtures turn 视同备案 on (a secondary source, no known start date): no points off."""
    t = terms(HE, BJ, rules=medical_reference.cross_region(HE))
    assert (t.kind, t.cut_points, t.provenance.confidence) == (medical.JJJ_DEEMED, 0, "secondary")


@pytest.mark.parametrize(("day", "kind"), [(dt.date(2023, 3, 31), medical.UNREGISTERED), (dt.date(2023, 4, 1), medical.JJJ_DEEMED)],
                         ids=["eve of the start", "start day"])
def test_a_start_date_in_the_data_starts_the_arrangement(day, kind):
    rules = medical_reference.cross_region(HE)
    kinds = dict(rules.kinds)
    kinds[medical.JJJ_DEEMED] = attrs.evolve(kinds[medical.JJJ_DEEMED], valid_from=dt.date(2023, 4, 1))
    assert terms(HE, BJ, rules=medical.CrossRegionRules(HE, kinds), day=day).kind == kind


def test_the_switch_off_leaves_the_registration_rules():
    assert terms(HE, BJ).kind == medical.UNREGISTERED


# --------------------------------------------------------------------------- the cut on the ratio


@pytest.mark.parametrize(("kind_terms", "ratio"), [(medical.Terms(medical.LONG_TERM_RESIDENT, 0), 60),
                                                   (medical.Terms(medical.REFERRAL, 10), 50),
                                                   (medical.Terms(medical.OTHER_TEMPORARY, 15), 45),
                                                   (medical.Terms(medical.UNREGISTERED, 20), 40)])
def test_the_cut_comes_off_the_level_ratio_and_the_receipt_says_so(kind_terms, ratio):
    policy = medical_reference.policy(HE, medical.EMPLOYEE, False)  # 60 % at level 3
    c = medical.Circumstances(3, True, terms=kind_terms)
    s = medical.settle([medical.ClaimLine("001102000010000", 1, 10_000)], medical_reference.catalogue(BJ), policy,
                 medical.YearToDate(2025, 60_000, 0), c)
    assert (s.ratio_pct, s.fund_fen, s.registration_kind, s.cut_points) == (
        ratio, 100 * ratio, kind_terms.kind, kind_terms.cut_points)
    data = s.to_json()
    assert {"source", "confidence", "illustrative", "registration_kind", "cut_points"} <= set(data)


# --------------------------------------------------------------------------- the data is checked


@pytest.fixture
def rules_copy(tmp_path, monkeypatch):
    """A copy of fixtures/ under SBCARD_FIXTURES, the caches emptied before and after."""
    shutil.copytree(FIXTURES, tmp_path / "fixtures")
    monkeypatch.setenv(reference.ENV_VAR, str(tmp_path / "fixtures"))
    medical_reference.clear_caches()
    yield tmp_path / "fixtures" / "medical"
    monkeypatch.undo()
    medical_reference.clear_caches()


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(("file", "old", "new", "says"), [
    ("cross_region.csv", "120000,other_temporary,15,", "120000,other_temporary,25,", "exceeds the national cap"),
    ("cross_region.csv", "130000,referral,10,", "130000,referral,11,", "exceeds the national cap"),
    ("cross_region.csv", "110000,posted_worker,0,", "110000,posted_worker,5,", "exceeds the national cap"),
    ("cross_region.csv", "110000,referral,10,on", "110000,referral,10,off", "only the jjj_deemed"),
    ("cross_region.csv", "110000,referral,10,on", "110000,referral,10,maybe", "switch"),
    ("national.csv", "other_temporary,20,", "other_temporary,120,", "0…100"),
    ("cross_region.csv", "130000,jjj_deemed,0,on,,city-policy-digest,secondary",
     "130000,jjj_deemed,0,on,,no-such-source,secondary", "unknown source"),
])
def test_rules_beyond_the_national_caps_are_refused_as_broken_fixtures(rules_copy, file, old, new, says):
    _replace(rules_copy / file, old, new)
    with pytest.raises(SbcardError) as e:
        medical_reference.cross_region(HE)
    assert e.value.code == "fixture.invalid" and e.value.exit_code == 3 and says in e.value.message


def test_a_missing_kind_is_refused(rules_copy):
    path = rules_copy / "cross_region.csv"
    path.write_text("".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                            if not line.startswith("120000,unregistered")), encoding="utf-8")
    with pytest.raises(SbcardError) as e:
        medical_reference.cross_region(TJ)
    assert "unregistered" in e.value.message
