"""The medical fixtures load, are complete, and a broken one is an internal error, not bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from sbcard.reference import medical as medical_reference
from sbcard import reference
from sbcard.domain import medical
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_every_hospital_is_in_a_region_of_regions_csv():
    regions = reference.load_regions()
    hospitals = medical_reference.hospitals()
    assert hospitals
    for h in hospitals.values():
        assert h.region in regions, h
        assert h.province in medical.PROVINCES


def test_each_province_has_about_eight_hospitals_of_every_level():
    by_province = Counter(h.province for h in medical_reference.hospitals().values())
    assert all(by_province[p] >= 8 for p in medical.PROVINCES), by_province
    for p in medical.PROVINCES:
        assert {h.level for h in medical_reference.hospitals().values() if h.province == p} == set(medical.LEVELS)


def test_hospital_codes_say_their_province():
    prefix = {"110000": "BJH", "120000": "TJH", "130000": "HEH"}
    assert all(code.startswith(prefix[h.province]) for code, h in medical_reference.hospitals().items())


@pytest.mark.parametrize(("code", "name"), [
    ("BJH001", "北京协和医院"), ("bjh001", "北京协和医院"), ("TJH001", "天津医科大学总医院"), ("HEH004", "廊坊市人民医院"),
])
def test_a_hospital_is_found_by_its_code(code, name):
    assert medical_reference.hospital(code).name == name


def test_an_unknown_hospital_is_not_found():
    with pytest.raises(NotFound):
        medical_reference.hospital("BJH999")


def test_every_catalogue_item_says_its_figures_are_illustrative():
    for province in medical.PROVINCES:
        for item in medical_reference.catalogue(province).values():
            data = item.to_json()
            assert (data["confidence"], data["illustrative"], data["source"]) == ("illustrative", True, [])


def test_hospitals_json_keys_are_the_interface_ones():
    assert set(medical_reference.hospital("BJH001").to_json()) == {"code", "name", "region", "level"}


@pytest.mark.parametrize("province", medical.PROVINCES)
def test_each_catalogue_has_every_class_and_about_25_items(province):
    catalogue = medical_reference.catalogue(province)
    assert len(catalogue) >= 25
    assert {i.cls for i in catalogue.values()} == set(medical.CLASSES)
    assert all(i.region == province and i.price_fen > 0 for i in catalogue.values())
    assert all(code == item.code for code, item in catalogue.items())


def test_catalogues_share_codes_with_regional_differences():
    bj, tj, he = (medical_reference.catalogue(p) for p in medical.PROVINCES)
    shared = set(bj) & set(tj) & set(he)
    assert len(shared) >= 20
    assert any(len({c[code].cls for c in (bj, tj, he)}) > 1 for code in shared)
    assert any(len({c[code].self_first_pct for c in (bj, tj, he)}) > 1 for code in shared)


def test_catalogue_json_has_the_interface_keys():
    item = next(iter(medical_reference.catalogue("110000").values()))
    assert {"code", "name", "class", "price_fen"} <= set(item.to_json())


def test_the_catalogue_copy_cannot_change_the_cache():
    medical_reference.catalogue("110000").clear()
    assert medical_reference.catalogue("110000")


@pytest.mark.parametrize("province", ["110101", "990000", "", "11"])
def test_a_catalogue_of_something_but_a_province_is_refused(province):
    with pytest.raises(InvalidInput):
        medical_reference.catalogue(province)


def test_every_policy_row_is_there_and_complete():
    keys = {(p.region, p.insurance_type, p.retired, p.episode) for p in medical_reference.policies()}
    assert keys == {(r, t, x, e) for r in medical.PROVINCES for t in medical.INSURANCE_TYPES for x in (False, True)
                    for e in medical.EPISODES}
    for p in medical_reference.policies():
        assert set(p.deductible_fen) == set(p.ratio_pct) == set(medical.LEVELS)
        assert (p.cap_fen is None or p.cap_fen > 0) and p.offline_limit_fen > 0 and p.source
        if p.insurance_type == medical.EMPLOYEE:
            assert p.personal_account_annual_fen > 0
        else:
            assert p.personal_account_annual_fen == 0
        assert p.illustrative == p.provenance.illustrative
        if p.illustrative:
            assert p.source.startswith("illustrative"), p
        else:
            assert p.provenance.sources, p


def test_a_policy_cannot_be_changed_in_place():
    p = medical_reference.policy("110000", medical.EMPLOYEE, False)
    with pytest.raises(TypeError):
        p.ratio_pct[1] = 100  # type: ignore[index]


@pytest.mark.parametrize(("province", "kind"), [("110101", medical.EMPLOYEE), ("110000", "commercial")])
def test_a_policy_for_an_unknown_province_or_type_is_refused(province, kind):
    with pytest.raises(InvalidInput):
        medical_reference.policy(province, kind, False)


def test_the_readme_names_every_file_and_marks_illustrative_figures():
    text = (FIXTURES / "medical" / "README.md").read_text(encoding="utf-8")
    for name in ("hospitals.csv", "catalogue.csv", "policies.csv"):
        assert name in text
    assert "illustrative" in text.lower()


# --------------------------------------------------------------------------- broken fixtures


@pytest.fixture
def broken_copy(tmp_path, monkeypatch):
    """A copy of fixtures/ under SBCARD_FIXTURES, with the caches emptied before and after."""
    shutil.copytree(FIXTURES, tmp_path / "fixtures")
    monkeypatch.setenv(reference.ENV_VAR, str(tmp_path / "fixtures"))
    medical_reference.clear_caches()
    reference.load_regions.cache_clear()
    yield tmp_path / "fixtures" / "medical"
    monkeypatch.undo()
    medical_reference.clear_caches()
    reference.load_regions.cache_clear()


@pytest.mark.parametrize(("name", "bad_row", "call"), [
    ("hospitals.csv", "BJH900,某医院,990101,3,1", medical_reference.hospitals),
    ("hospitals.csv", "BJH901,某医院,110101,4,1", medical_reference.hospitals),
    ("hospitals.csv", "BJH001,北京协和医院,110101,3,0", medical_reference.hospitals),
    ("catalogue.csv", "110000,XJ01CAA040,dup,A,100,0,,illustrative", lambda: medical_reference.catalogue("110000")),
    ("catalogue.csv", "110000,XZZ,甲类但先行自付,A,100,10,,illustrative", lambda: medical_reference.catalogue("110000")),
    ("catalogue.csv", "110000,XZY,丙类,C,100,50,,illustrative", lambda: medical_reference.catalogue("110000")),
    ("catalogue.csv", "110000,XZX,坏价格,A,abc,0,,illustrative", lambda: medical_reference.catalogue("110000")),
    ("catalogue.csv", "110000,XZW,无出处,A,100,0,,guessed", lambda: medical_reference.catalogue("110000")),
    ("policies.csv", "110000,employee,0,outpatient,year,1,1,1,90,70,70,1,,,1,1,,illustrative,,",
     lambda: medical_reference.policy("110000", "employee", False)),
    ("policies.csv", "110000,resident,0,outpatient,year,1,1,1,90,70,170,1,,,0,1,,illustrative,,",
     lambda: medical_reference.policy("110000", "resident", False)),
    ("policies.csv", "110000,resident,0,inpatient,week,1,1,1,90,70,70,1,,,,,,illustrative,,",
     lambda: medical_reference.policy("110000", "resident", False)),
    ("policies.csv", "110000,resident,0,outpatient,year,1,1,1,90,70,70,1,100,,0,1,,illustrative,,",
     lambda: medical_reference.policy("110000", "resident", False)),
    ("policies.csv", "110000,resident,0,outpatient,year,1,1,1,90,70,70,1,,,0,1,bj-resident-2018,official,,",
     lambda: medical_reference.policy("110000", "resident", False)),
    ("policies.csv", "110000,resident,0,outpatient,year,1,1,1,90,70,70,1,,,0,1,,,,",
     lambda: medical_reference.policy("110000", "resident", False)),
])
def test_a_broken_fixture_is_an_internal_error(broken_copy, name, bad_row, call):
    with (broken_copy / name).open("a", encoding="utf-8") as f:
        f.write(bad_row + "\n")
    with pytest.raises(SbcardError) as e:
        call()
    assert e.value.code == "fixture.invalid" and e.value.exit_code == 3
    assert name in e.value.message


def test_a_missing_policy_row_is_an_internal_error(broken_copy):
    path = broken_copy / "policies.csv"
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    with pytest.raises(SbcardError) as e:
        medical_reference.policies()
    assert e.value.code == "fixture.invalid" and "missing" in e.value.message
