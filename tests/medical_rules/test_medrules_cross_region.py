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

from sbcard.reference import medical as R
from sbcard import reference
from sbcard.domain import medical as M
from sbcard.domain.errors import InvalidInput, SbcardError

BJ, TJ, HE = "110000", "120000", "130000"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DAY = dt.date(2025, 3, 3)


def without_jjj(province: str) -> M.CrossRegionRules:
    """The province's rules with the Jing-Jin-Ji switch off (as a region outside the arrangement would be)."""
    rules = R.cross_region(province)
    kinds = dict(rules.kinds)
    kinds[M.JJJ_DEEMED] = attrs.evolve(kinds[M.JJJ_DEEMED], on=False)
    return M.CrossRegionRules(province, kinds)


def terms(insured: str, treated: str, *, registration: M.Registration | None = None, visit: str = "",
          day: dt.date = DAY, rules: M.CrossRegionRules | None = None) -> M.Terms:
    return M.cross_region_terms(rules or without_jjj(insured), insured_province=insured, treated_province=treated,
                                day=day, registration=registration, visit=visit)


def registered(kind: str, province: str, first: dt.date = dt.date(2025, 1, 1),
               last: dt.date | None = dt.date(2025, 6, 30)) -> M.Registration:
    return M.Registration(kind, province, first, last, id=7)


# --------------------------------------------------------------------------- each kind's cut

KINDS = [
    # a retired Tianjin employee treated in Hebei: Tianjin sets the cuts (other temporary 15, below the 20 cap)
    (TJ, HE, registered(M.RETIRED_RESETTLED, HE, last=None), "", M.RETIRED_RESETTLED, 0),
    (TJ, HE, registered(M.LONG_TERM_RESIDENT, HE, last=None), "", M.LONG_TERM_RESIDENT, 0),
    (TJ, HE, registered(M.POSTED_WORKER, HE), "", M.POSTED_WORKER, 0),
    (TJ, HE, registered(M.REFERRAL, HE), "", M.REFERRAL, 10),
    (TJ, HE, registered(M.OTHER_TEMPORARY, HE), "", M.OTHER_TEMPORARY, 15),
    (TJ, HE, None, "emergency", M.EMERGENCY, 10),  # 急诊抢救: 视同已备案, no registration needed
    (TJ, HE, None, "referral", M.REFERRAL, 10),  # a referral the hospital declares
    (TJ, HE, None, "", M.UNREGISTERED, 20),
    # a Hebei employee treated in Beijing: Hebei's cuts, at the national caps
    (HE, BJ, registered(M.OTHER_TEMPORARY, BJ), "", M.OTHER_TEMPORARY, 20),
    (HE, BJ, None, "", M.UNREGISTERED, 20),
    # the most favourable applies: a long-term resident's emergency keeps the home rates
    (HE, BJ, registered(M.LONG_TERM_RESIDENT, BJ, last=None), "emergency", M.LONG_TERM_RESIDENT, 0),
    (TJ, HE, registered(M.OTHER_TEMPORARY, HE), "emergency", M.EMERGENCY, 10),
    # a registration for another province does not count here
    (HE, BJ, registered(M.LONG_TERM_RESIDENT, TJ, last=None), "", M.UNREGISTERED, 20),
    # at home: no cut, no kind
    (BJ, BJ, None, "emergency", M.LOCAL, 0),
]


@pytest.mark.parametrize(("insured", "treated", "registration", "visit", "kind", "cut"), KINDS)
def test_each_kind_has_its_cut(insured, treated, registration, visit, kind, cut):
    t = terms(insured, treated, registration=registration, visit=visit)
    assert (t.kind, t.cut_points) == (kind, cut)
    if registration is not None and t.kind == registration.kind:
        assert t.registration_id == 7


@pytest.mark.parametrize("kind", M.LONG_TERM_KINDS)
def test_long_term_residents_get_the_insured_regions_own_rates_in_every_region(kind):
    for insured in M.PROVINCES:
        assert R.cross_region(insured).kinds[kind].cut_points == 0


def test_a_region_may_cut_less_than_the_national_cap():
    tianjin, caps = R.cross_region(TJ), R.national_caps()
    assert tianjin.kinds[M.OTHER_TEMPORARY].cut_points == 15 < caps.of_kind(M.OTHER_TEMPORARY) == 20


def test_the_national_caps_are_the_22_notices_and_the_fallback_constants():
    caps = R.national_caps()
    assert dict(caps.points) == {"long_term": 0, "referral": 10, "emergency": 10, "other_temporary": 20}
    assert (caps.of_kind(M.REFERRAL), caps.of_kind(M.OTHER_TEMPORARY)) == (
        M.UNREGISTERED_REFERRAL_POINTS, M.UNREGISTERED_OTHER_POINTS)
    assert "nhsa-2022-22" in {s.id for s in caps.provenance.sources}


# --------------------------------------------------------------------------- a registration's days

FIRST, LAST = dt.date(2025, 3, 10), dt.date(2025, 9, 9)
DAYS = [
    (FIRST - dt.timedelta(days=1), M.UNREGISTERED, 20),  # the eve of the first day
    (FIRST, M.OTHER_TEMPORARY, 15),  # the first day counts
    (LAST, M.OTHER_TEMPORARY, 15),  # the last day counts
    (LAST + dt.timedelta(days=1), M.UNREGISTERED, 20),  # the day after
]


@pytest.mark.parametrize(("day", "kind", "cut"), DAYS, ids=["eve", "first day", "last day", "day after"])
def test_a_registration_counts_from_its_first_to_its_last_day(day, kind, cut):
    reg = registered(M.OTHER_TEMPORARY, HE, FIRST, LAST)
    t = terms(TJ, HE, registration=reg, day=day)
    assert (t.kind, t.cut_points) == (kind, cut)


def test_an_open_ended_registration_has_no_last_day():
    reg = registered(M.RETIRED_RESETTLED, HE, FIRST, None)
    assert terms(TJ, HE, registration=reg, day=dt.date(2040, 1, 1)).kind == M.RETIRED_RESETTLED


def test_a_registration_cannot_end_before_it_starts():
    with pytest.raises(ValueError):
        M.Registration(M.REFERRAL, HE, FIRST, FIRST - dt.timedelta(days=1))


def test_an_emergency_is_not_a_kind_one_registers():
    with pytest.raises(ValueError):
        M.Registration(M.EMERGENCY, HE, FIRST, LAST)


def test_an_unknown_visit_is_refused():
    with pytest.raises(InvalidInput):
        terms(TJ, HE, visit="walk-in")


# --------------------------------------------------------------------------- Jing-Jin-Ji 视同备案


def test_inside_jing_jin_ji_treatment_is_deemed_registered_by_the_data():
    """The fixtures turn 视同备案 on (a secondary source, no known start date): no points off."""
    t = terms(HE, BJ, rules=R.cross_region(HE))
    assert (t.kind, t.cut_points, t.provenance.confidence) == (M.JJJ_DEEMED, 0, "secondary")


@pytest.mark.parametrize(("day", "kind"), [(dt.date(2023, 3, 31), M.UNREGISTERED), (dt.date(2023, 4, 1), M.JJJ_DEEMED)],
                         ids=["eve of the start", "start day"])
def test_a_start_date_in_the_data_starts_the_arrangement(day, kind):
    rules = R.cross_region(HE)
    kinds = dict(rules.kinds)
    kinds[M.JJJ_DEEMED] = attrs.evolve(kinds[M.JJJ_DEEMED], valid_from=dt.date(2023, 4, 1))
    assert terms(HE, BJ, rules=M.CrossRegionRules(HE, kinds), day=day).kind == kind


def test_the_switch_off_leaves_the_registration_rules():
    assert terms(HE, BJ).kind == M.UNREGISTERED


# --------------------------------------------------------------------------- the cut on the ratio


@pytest.mark.parametrize(("kind_terms", "ratio"), [(M.Terms(M.LONG_TERM_RESIDENT, 0), 60),
                                                   (M.Terms(M.REFERRAL, 10), 50),
                                                   (M.Terms(M.OTHER_TEMPORARY, 15), 45),
                                                   (M.Terms(M.UNREGISTERED, 20), 40)])
def test_the_cut_comes_off_the_level_ratio_and_the_receipt_says_so(kind_terms, ratio):
    policy = R.policy(HE, M.EMPLOYEE, False)  # 60 % at level 3
    c = M.Circumstances(3, True, terms=kind_terms)
    s = M.settle([M.ClaimLine("001102000010000", 1, 10_000)], R.catalogue(BJ), policy,
                 M.YearToDate(2025, 60_000, 0), c)
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
    R.clear_caches()
    yield tmp_path / "fixtures" / "medical"
    monkeypatch.undo()
    R.clear_caches()


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
        R.cross_region(HE)
    assert e.value.code == "fixture.invalid" and e.value.exit_code == 3 and says in e.value.message


def test_a_missing_kind_is_refused(rules_copy):
    path = rules_copy / "cross_region.csv"
    path.write_text("".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                            if not line.startswith("120000,unregistered")), encoding="utf-8")
    with pytest.raises(SbcardError) as e:
        R.cross_region(TJ)
    assert "unregistered" in e.value.message
