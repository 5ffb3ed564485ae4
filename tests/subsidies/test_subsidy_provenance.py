"""Where the subsidy figures come from (issue 16, item 7): every cap and every band's amount names its
sources and a confidence, a row that does not is refused, and the answers say how far to trust them.

Beijing's 高龄津贴 bands are the published ones (北京市老年人养老服务补贴津贴管理实施办法, 2019:
¥100 a month from 80 to 89, ¥500 from 90 to 99, ¥800 from 100); the caps, and Tianjin's and
Hebei's bands, are the project's own (illustrative), and the answers say so.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from freezegun import freeze_time
from subsidy_fixture_copy import broken, fixtures  # noqa: F401  (fixtures: the fixture)
from world_template import cli, make_template

from sbcard.reference import subsidies as subsidy_reference
from sbcard.clock import BEIJING
from sbcard.domain import subsidies
from sbcard.domain.citizen_id import CitizenId, compute_check_char
from sbcard.domain.errors import SbcardError

BJ_NOTICE = "bj-gljt-2019"
CHAOYANG = "110105"  # 北京市朝阳区
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=BEIJING)
BJ_MAKER = "bj-fin-cy"


def holder(born: str, seq: int, region: str = CHAOYANG) -> str:
    """A citizen ID of ``region`` born on ``born`` (YYYYMMDD), with its check character."""
    first17 = f"{region}{born}{seq:03d}"
    return first17 + compute_check_char(first17)


# ----------------------------------------------------------------------------- Beijing's bands, edge by edge

# (holder born, day the batch is generated for, age that day, amount in fen or None)
BEIJING_EDGES = [
    ("19461123", date(2026, 11, 22), 79, None),  # the eve of the 80th birthday: not yet
    ("19461122", date(2026, 11, 22), 80, 10000),  # the 80th birthday: ¥100
    ("19361123", date(2026, 11, 22), 89, 10000),  # the eve of the 90th: still ¥100
    ("19361122", date(2026, 11, 22), 90, 50000),  # the 90th birthday: ¥500
    ("19261123", date(2026, 11, 22), 99, 50000),  # the eve of the 100th: still ¥500
    ("19261122", date(2026, 11, 22), 100, 80000),  # the 100th birthday: ¥800
    ("19360229", date(2026, 2, 28), 89, 10000),  # born on 29 February: in a common year 90 from 1 March
    ("19360229", date(2026, 3, 1), 90, 50000),
    ("19160101", date(2026, 11, 22), 110, 80000),  # no upper bound
]


@pytest.mark.parametrize(("born", "day", "age", "amount"), BEIJING_EDGES)
def test_subsidy_provenance_beijing_elderly_allowance_by_band_from_the_2019_notice(born, day, age, amount):
    person = CitizenId(holder(born, 21))
    assert person.age_on(day) == age
    band = subsidies.band_for_age(subsidies.bands_for(subsidy_reference.generate_rules(), "GLJT", "110000"), person.age_on(day))
    if amount is None:
        assert band is None
        return
    assert band.amount_fen == amount
    assert band.provenance.confidence == "official" and not band.illustrative
    assert [s.id for s in band.provenance.sources] == [BJ_NOTICE]


@pytest.mark.parametrize(("province", "ages", "confidence"), [
    ("110000", [(80, 89, 10000), (90, 99, 50000), (100, None, 80000)], "official"),
    ("120000", [(80, 89, 10000), (90, 99, 30000), (100, None, 60000)], "illustrative"),
    ("130000", [(80, 89, 5000), (90, 99, 10000), (100, None, 30000)], "illustrative"),
])
def test_subsidy_provenance_each_provinces_bands_say_how_far_to_trust_them(province, ages, confidence):
    bands = subsidies.bands_for(subsidy_reference.generate_rules(), "GLJT", province)
    assert [(b.min_age, b.max_age, b.amount_fen) for b in bands] == ages
    assert {b.provenance.confidence for b in bands} == {confidence}


def test_subsidy_provenance_the_caps_are_the_simulators_own_and_name_what_they_were_set_against():
    caps = {item.code: item for item in subsidy_reference.catalogue()}
    assert all(item.illustrative and item.cap_provenance.confidence == "illustrative" for item in caps.values())
    assert [s.id for s in caps["GLJT"].cap_provenance.sources] == [BJ_NOTICE]
    assert caps["GLJT"].cap_fen == 80000  # Beijing's top band
    assert [s.id for s in caps["CJRLXBT"].cap_provenance.sources] == ["bj-cjrlxbt-2016", "tj-cjrlxbt-2023"]
    assert subsidy_reference.catalogue_rows()[0]["illustrative"] == 1  # what init stores for the database's column


@pytest.mark.parametrize(("cap_fen", "sourced"), [(80000, True), (90000, False)])
def test_subsidy_provenance_a_database_cap_the_fixture_does_not_hold_is_illustrative(cap_fen, sourced):
    p = subsidy_reference.cap_provenance("GLJT", cap_fen)
    assert p.illustrative and bool(p.sources) is sourced
    assert subsidy_reference.cap_provenance("NOPE", 100).sources == ()


# ----------------------------------------------------------------------------- rows that do not say where from


@pytest.mark.parametrize(("file", "old", "new", "words"), [
    ("items.csv", "FUND-GLJT,bj-gljt-2019,illustrative", "FUND-GLJT,bj-gljt-2091,illustrative",
     "line 3: source/confidence: unknown source bj-gljt-2091"),
    ("items.csv", "FUND-LSJZ,,illustrative", "FUND-LSJZ,,official", "line 7: source/confidence: "
                                                                    "figure names its source"),
    ("items.csv", "FUND-LSJZ,,illustrative", "FUND-LSJZ,,maybe", "line 7: source/confidence: confidence 'maybe'"),
    ("items.csv", "FUND-GLJT,bj-gljt-2019,illustrative", "FUND-GLJT,chinadaily-gljt-2016,official",
     "line 3: source/confidence: an official figure cites at least one official source"),
    ("items.csv", "fund_account,source,confidence", "fund_account,illustrative,source",
     "line 2: no source and confidence columns"),
    ("generate_rules.csv", "GLJT,110000,90,99,500.00,bj-gljt-2019,official",
     "GLJT,110000,90,99,500.00,beijing-2019,official", "line 3: source/confidence: unknown source beijing-2019"),
    ("generate_rules.csv", "GLJT,130000,80,89,50.00,,illustrative", "GLJT,130000,80,89,50.00,,secondary",
     "line 8: source/confidence: a secondary figure names its source"),
])
def test_subsidy_provenance_a_row_without_a_known_source_is_refused(fixtures, file, old, new, words):
    error = broken(fixtures, file, old, new)
    where, _, why = words.rpartition(": ")
    assert f"fixtures/subsidies/{file} {where}: " in error.message and why in error.message


def test_subsidy_provenance_a_broken_sources_file_is_refused(fixtures):
    path = fixtures / "subsidies" / "sources.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("2019-10-25", "Oct 2019", 1), encoding="utf-8")
    with pytest.raises(SbcardError) as refused:
        subsidy_reference.catalogue()
    assert refused.value.code == "fixture.invalid" and "fixtures/subsidies/sources.csv line 2" in refused.value.message


# ----------------------------------------------------------------------------- the answers


ELDERS = {  # name → (born, expected amount on NOW's day, or None when not covered)
    "王淑芬": ("19461123", None),  # 79: 80 tomorrow
    "张德顺": ("19461122", 10000),
    "李秀兰": ("19361123", 10000),
    "赵桂荣": ("19361122", 50000),
    "刘振华": ("19261123", 50000),
    "陈玉珍": ("19261122", 80000),
}


@pytest.fixture(scope="module")
def beijing_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    people = [("bj", {"citizen_id": holder(born, 30 + n), "name": name, "region": CHAOYANG, "insurance": "resident"})
              for n, (name, (born, _)) in enumerate(ELDERS.items())]
    return make_template(tmp_path_factory, "subsidy-provenance", seed=16, now=NOW,
                         staff={BJ_MAKER: ("吴会计", "finance", CHAOYANG, "bj")}, people=people)


@pytest.fixture
def beijing(beijing_template: Path, tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "world"
    shutil.copytree(beijing_template, home)
    with freeze_time(NOW):
        yield home


def test_subsidy_provenance_generate_json_carries_the_bands_sources(beijing):
    code, _, err, data = cli(beijing, "subsidy", "generate", "--item", "GLJT", "--region", CHAOYANG,
                             "--operator", BJ_MAKER, "--json")
    assert code == 0, err
    assert data["source"] == "generated"  # the batch's origin, as before
    assert (data["confidence"], data["illustrative"]) == ("official", False)
    assert [(r["min_age"], r["max_age"], r["amount_fen"], r["rows"]) for r in data["rules"]] == [
        (80, 89, 10000, 2), (90, 99, 50000, 2), (100, None, 80000, 1)]
    for rule in data["rules"]:
        assert (rule["confidence"], rule["illustrative"]) == ("official", False)
        assert [(s["id"], s["kind"]) for s in rule["source"]] == [(BJ_NOTICE, "official")]
        assert rule["source"][0]["url"].startswith("https://www.beijing.gov.cn/")
    from sbcard.store.world import open_world
    with open_world(beijing) as world:
        paid = {r["name"]: r["amount_fen"] for r in world.region("bj").query(
            "SELECT name, amount_fen FROM subsidy_rows WHERE batch_id = ?", [data["batch_id"]])}
    assert paid == {name: amount for name, (_, amount) in ELDERS.items() if amount is not None}


def test_subsidy_provenance_generate_human_output_is_quiet_about_official_amounts(beijing):
    code, out, err, _ = cli(beijing, "subsidy", "generate", "--item", "高龄津贴", "--region", CHAOYANG,
                            "--operator", BJ_MAKER)
    assert code == 0, err
    assert "amount is" in out and "official" in out and "100+" in out
    assert "Illustrative" not in out


def test_subsidy_provenance_items_json_and_table_say_the_caps_are_illustrative(beijing):
    code, _, err, data = cli(beijing, "subsidy", "items", "--json")
    assert code == 0, err
    for item in data:
        assert {"source", "confidence", "illustrative"} <= set(item)
        assert (item["confidence"], item["illustrative"]) == ("illustrative", True)
    gljt = next(i for i in data if i["code"] == "GLJT")
    assert [s["id"] for s in gljt["source"]] == [BJ_NOTICE]
    assert next(i for i in data if i["code"] == "LSJZ")["source"] == []
    code, out, _, _ = cli(beijing, "subsidy", "items")
    assert code == 0 and "cap is" in out and "Illustrative caps are the simulator's own" in out


def test_subsidy_provenance_items_with_a_broken_fixture_is_exit_3(beijing, fixtures):
    path = fixtures / "subsidies" / "items.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",bj-gljt-2019,", ",nowhere,"), encoding="utf-8")
    code, out, err, _ = cli(beijing, "subsidy", "items", "--json")
    assert code == 3 and out == ""
    assert '"code": "fixture.invalid"' in err and "unknown source nowhere" in err
