"""Region codes (GB/T 2260) of Beijing, Tianjin and Hebei, and which node owns each."""

import csv

import pytest

from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.regions import Region, RegionDirectory, node_of, province_code_of, validate_region_code
from sbcard.reference import fixtures_dir, load_regions

SMALL = [
    Region("110000", "北京市", "province", None),
    Region("110105", "朝阳区", "county", "110000"),
    Region("120000", "天津市", "province", None),
    Region("120103", "河西区", "county", "120000"),
    Region("130000", "河北省", "province", None),
    Region("131000", "廊坊市", "prefecture", "130000"),
    Region("131082", "三河市", "county", "131000"),
    Region("131002", "安次区", "county", "131000"),
]


@pytest.fixture
def small():
    return RegionDirectory(SMALL)


# --- codes and nodes ---------------------------------------------------------


@pytest.mark.parametrize(("text", "code"), [("120103", "120103"), (" 120103 ", "120103")])
def test_validate_region_code_returns_the_stripped_code(text, code):
    assert validate_region_code(text) == code


@pytest.mark.parametrize("bad", ["", "12010", "1201033", "12010A", "１２０１０３", "120-03"])
def test_validate_region_code_refuses_anything_but_6_digits(bad):
    with pytest.raises(InvalidInput) as exc:
        validate_region_code(bad)
    assert exc.value.field == "region"
    assert "6 digits" in exc.value.message


@pytest.mark.parametrize(
    ("code", "node"),
    [("110000", "bj"), ("110105", "bj"), ("120000", "tj"), ("120116", "tj"), ("130000", "he"), ("131082", "he"),
     ("120221", "tj")],  # 120221 (old 宁河县) is no longer listed but still in Tianjin
)
def test_node_of_follows_the_province_prefix(code, node):
    assert node_of(code) == node


def test_node_of_refuses_a_code_outside_the_three_provinces():
    with pytest.raises(InvalidInput) as exc:
        node_of("310101")
    assert exc.value.message == "region 310101 is outside Beijing, Tianjin and Hebei"
    assert exc.value.field == "region"


def test_province_code_of_keeps_the_first_two_digits():
    assert province_code_of("131082") == "130000"


# --- the directory -----------------------------------------------------------


def test_get_returns_the_region(small):
    assert small.get("131082") == Region("131082", "三河市", "county", "131000")


def test_get_refuses_an_unknown_code_naming_the_field(small):
    with pytest.raises(NotFound) as exc:
        small.get("110103")
    assert exc.value.field == "region"
    assert exc.value.message == "unknown region code 110103"


def test_get_refuses_a_malformed_code_as_invalid_input(small):
    with pytest.raises(InvalidInput):
        small.get("11010")


def test_is_known(small):
    assert small.is_known("120103")
    assert not small.is_known("110103")
    assert not small.is_known("garbage")


@pytest.mark.parametrize(("code", "province"), [("131082", "130000"), ("130000", "130000"), ("110999", "110000")])
def test_province_of_any_code_with_a_known_prefix(small, code, province):
    assert small.province_of(code).code == province


def test_province_of_a_code_outside_the_three_provinces_is_refused(small):
    with pytest.raises(InvalidInput, match="outside Beijing, Tianjin and Hebei"):
        small.province_of("310101")


def test_children_are_the_regions_directly_below_in_code_order(small):
    assert [r.code for r in small.children("131000")] == ["131002", "131082"]
    assert [r.code for r in small.children("130000")] == ["131000"]
    assert small.children("131082") == ()


def test_provinces_are_the_three_in_code_order(small):
    assert [r.name for r in small.provinces()] == ["北京市", "天津市", "河北省"]


@pytest.mark.parametrize(
    ("code", "name"), [("120103", "天津市河西区"), ("131082", "河北省廊坊市三河市"), ("130000", "河北省")]
)
def test_full_name_joins_the_ancestors_names(small, code, name):
    assert small.full_name(code) == name


def test_the_directory_refuses_a_duplicate_code():
    with pytest.raises(InvalidInput, match="listed twice"):
        RegionDirectory(SMALL + [Region("120103", "河西", "county", "120000")])


def test_the_directory_refuses_a_region_whose_parent_is_missing():
    with pytest.raises(InvalidInput, match="parent 131000 is not listed"):
        RegionDirectory([Region("130000", "河北省", "province", None), Region("131082", "三河市", "county", "131000")])


def test_the_directory_refuses_a_parent_of_a_lower_or_equal_level():
    with pytest.raises(InvalidInput, match="cannot sit under"):
        RegionDirectory([Region("130000", "河北省", "province", None), Region("131000", "廊坊市", "county", "130000"),
                         Region("131082", "三河市", "county", "131000")])


# --- a region that exists is valid ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("12010", "河西区", "county", "120000"), "code must be 6 digits"),
        (("120103", "", "county", "120000"), "needs a name"),
        (("120103", "河西区", "district", "120000"), "level must be one of"),
        (("120103", "河西区", "county", None), "a province has no parent"),
        (("120000", "天津市", "province", "100000"), "a province has no parent"),
        (("120100", "天津市", "province", None), "must end in 0000"),
        (("120103", "河西区", "county", "12000"), "parent must be 6 digits"),
    ],
)
def test_a_region_refuses_inconsistent_fields(args, reason):
    with pytest.raises(InvalidInput, match=reason):
        Region(*args)


# --- the shipped fixture -------------------------------------------------------


@pytest.fixture(scope="module")
def directory():
    return load_regions()


def test_the_fixture_has_a_header_and_utf8_names():
    with (fixtures_dir() / "regions.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["code", "name", "level", "parent"]
        assert next(reader) == {"code": "110000", "name": "北京市", "level": "province", "parent": ""}


def test_the_fixture_lists_all_16_beijing_districts(directory):
    assert [r.code for r in directory.children("110000")] == [
        "110101", "110102", "110105", "110106", "110107", "110108", "110109", "110111",
        "110112", "110113", "110114", "110115", "110116", "110117", "110118", "110119",
    ]


def test_the_fixture_lists_all_16_tianjin_districts(directory):
    districts = directory.children("120000")
    assert [r.code for r in districts] == [
        "120101", "120102", "120103", "120104", "120105", "120106", "120110", "120111",
        "120112", "120113", "120114", "120115", "120116", "120117", "120118", "120119",
    ]
    assert directory.get("120116").name == "滨海新区"
    assert directory.get("120119").name == "蓟州区"


def test_the_fixture_lists_all_11_hebei_prefectures_with_at_least_5_counties_each(directory):
    prefectures = directory.children("130000")
    assert [r.code for r in prefectures] == [f"13{n:02d}00" for n in range(1, 12)]
    assert all(r.level == "prefecture" for r in prefectures)
    assert all(len(directory.children(p.code)) >= 5 for p in prefectures)


@pytest.mark.parametrize(
    ("code", "full_name"),
    [
        ("110105", "北京市朝阳区"),
        ("120103", "天津市河西区"),
        ("130102", "河北省石家庄市长安区"),
        ("131082", "河北省廊坊市三河市"),
        ("131002", "河北省廊坊市安次区"),
        ("131003", "河北省廊坊市广阳区"),
        ("130602", "河北省保定市竞秀区"),
        ("130681", "河北省保定市涿州市"),
        ("131100", "河北省衡水市"),
    ],
)
def test_the_fixture_names_real_regions(directory, code, full_name):
    assert directory.full_name(code) == full_name


def test_every_fixture_code_sits_under_its_own_province(directory):
    for region in directory:
        assert node_of(region.code) in ("bj", "tj", "he")
        if region.parent is not None:
            assert region.code[:2] == region.parent[:2]
        if region.level == "county" and region.code[:2] == "13":
            assert region.code[:4] == region.parent[:4]


# --- where the fixtures are found ------------------------------------------------


def test_fixtures_dir_is_the_checkouts_fixtures_by_default(monkeypatch):
    monkeypatch.delenv("SBCARD_FIXTURES", raising=False)
    assert (fixtures_dir() / "regions.csv").is_file()


def test_fixtures_dir_honours_sbcard_fixtures(monkeypatch, tmp_path):
    monkeypatch.setenv("SBCARD_FIXTURES", str(tmp_path))
    assert fixtures_dir() == tmp_path


def test_a_missing_fixture_is_an_internal_error_naming_the_file(monkeypatch, tmp_path):
    from sbcard.domain.errors import SbcardError
    from sbcard.reference import read_csv_rows

    monkeypatch.setenv("SBCARD_FIXTURES", str(tmp_path))
    with pytest.raises(SbcardError) as exc:
        read_csv_rows("regions.csv")
    assert exc.value.exit_code == 3
    assert str(tmp_path / "regions.csv") in exc.value.message
