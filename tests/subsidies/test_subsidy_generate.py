"""免申即享: ``subsidy generate`` builds a batch from the registry by the item's age bands, ages and periods taken
on the (frozen) day; its rows go through the same checks as a file's."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from subsidy_import_fixtures import frozen, home, template_home, world  # noqa: F401  (fixtures)
from subsidy_import_world import CHECKER, DISTRICT, MAKER, NOW, SAMPLE_PEOPLE

from sbcard.clock import BEIJING
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.services.subsidies import batch_import

ELDERS = ["刘德明", "张桂兰", "王秀英", "李国华"]  # by citizen ID: born 1925, 1930, 1938, 1944
AMOUNTS = {"刘德明": 60000, "张桂兰": 30000, "王秀英": 10000, "李国华": 10000}  # Tianjin's bands: 100+, 90-99, 80-89
TURNS_80 = "陈淑珍"  # born 1946-12-30


def _generate(sbcard, *args: str):
    return sbcard("subsidy", "generate", "--item", "高龄津贴", "--region", DISTRICT, "--operator", MAKER, *args,
                  "--json")


def _rows(world, batch_id: str) -> list[dict]:
    return list(world.region("tj").query("SELECT * FROM subsidy_rows WHERE batch_id = ? ORDER BY seq", [batch_id]))


def test_subsidy_generate_pays_the_residents_aged_80_and_over_by_band(sbcard, world, frozen):
    code, _, err, data = _generate(sbcard)
    assert code == 0, err
    assert (data["item"], data["period"], data["as_of"], data["source"]) == ("GLJT", "202611", "2026-11-22",
                                                                             "generated")
    assert (data["rows"], data["valid"], data["total_fen"]) == (4, 4, 110000)
    rows = _rows(world, data["batch_id"])
    assert [r["name"] for r in rows] == ELDERS
    assert [r["amount_fen"] for r in rows] == [AMOUNTS[n] for n in ELDERS]
    assert [r["citizen_id"] for r in rows] == [SAMPLE_PEOPLE[n]["citizen_id"] for n in ELDERS]
    assert {(r["item"], r["period"], r["status"], r["remark"]) for r in rows} == {
        ("GLJT", "202611", "valid", "免申即享 2026-11-22")}
    batch = next(world.region("tj").query("SELECT * FROM subsidy_batches WHERE id = ?", [data["batch_id"]]))
    assert (batch["source"], batch["file_name"], batch["file_sha256"], batch["maker"]) == (
        "generated", None, None, MAKER)
    assert (batch["declared_count"], batch["declared_total_fen"]) == (4, 110000)


@pytest.mark.parametrize(("day", "included"), [
    (datetime(2026, 12, 29, 23, 59), False),  # 79 the day before the birthday
    (datetime(2026, 12, 30, 0, 1), True),  # 80 on it
])
def test_subsidy_generate_ages_are_taken_on_the_day(sbcard, world, frozen, day, included):
    frozen.move_to(day.replace(tzinfo=BEIJING))
    code, _, err, data = _generate(sbcard)
    assert code == 0, err
    assert data["period"] == "202612" and data["as_of"] == day.date().isoformat()
    names = [r["name"] for r in _rows(world, data["batch_id"])]
    assert (TURNS_80 in names) is included and len(names) == 4 + included


def test_subsidy_generate_the_period_follows_the_as_of_day(sbcard, world, frozen):
    frozen.move_to(datetime(2027, 1, 3, 9, 0, tzinfo=BEIJING))
    code, _, err, data = _generate(sbcard, "--as-of", "2026-10-31")
    assert code == 0, err
    assert (data["period"], data["rows"]) == ("202610", 4)
    code, _, err, data = _generate(sbcard)
    assert code == 0, err
    assert (data["period"], data["rows"]) == ("202701", 5)  # 陈淑珍 is 80 by then


def test_subsidy_generate_a_day_to_come_is_refused(sbcard, frozen):
    code, _, err, _ = _generate(sbcard, "--as-of", "2026-11-23")
    assert code == 2 and "--as-of" in err and "after today" in err


def test_subsidy_generate_the_same_item_and_period_once(sbcard, world, frozen):
    code, _, _, first = _generate(sbcard)
    assert code == 0
    code, _, err, _ = _generate(sbcard, "--as-of", "2026-11-01")
    assert code == 1 and first["batch_id"] in err and "reject that batch first" in err
    tj = world.region("tj")
    with tj.conn:
        tj.execute("UPDATE subsidy_batches SET status = 'rejected', checker = ?, approved_at = ?, "
                   "reject_reason = 'wrong month' WHERE id = ?", [CHECKER, NOW.isoformat(), first["batch_id"]])
    code, _, err, again = _generate(sbcard)
    assert code == 0, err
    assert again["batch_id"] != first["batch_id"] and again["rows"] == 4


def test_subsidy_generate_rows_are_checked_like_a_files(world):
    tj = world.region("tj")
    with tj.conn:
        tj.execute("UPDATE cards SET status = 'lost', loss_kind = 'formal' WHERE citizen_id = ?",
                   [SAMPLE_PEOPLE["刘德明"]["citizen_id"]])
    data = batch_import.generate_batch(world, item="GLJT", as_of=date(2026, 11, 22), region=DISTRICT, operator=MAKER, now=NOW)
    assert (data["valid"], data["invalid"], data["reasons"]) == (3, 1, {"card_lost": 1})
    assert data["valid_fen"] == 50000 and data["invalid_fen"] == 60000


def test_subsidy_generate_refusals(world):
    with pytest.raises(RuleRefused) as no_rules:
        batch_import.generate_batch(world, item="临时救助", as_of=date(2026, 11, 22), region=DISTRICT, operator=MAKER, now=NOW)
    assert no_rules.value.code == "subsidy.no_rules" and "generate_rules.csv" in no_rules.value.message
    with pytest.raises(NotFound) as unknown:
        batch_import.generate_batch(world, item="养老", as_of=date(2026, 11, 22), region=DISTRICT, operator=MAKER, now=NOW)
    assert unknown.value.field == "--item"
    with pytest.raises(RuleRefused) as nobody:
        batch_import.generate_batch(world, item="GLJT", as_of=date(2026, 11, 22), region="120104", operator="tj-fin-city",
                         now=NOW)
    assert nobody.value.code == "subsidy.nobody"
    with pytest.raises(InvalidInput):
        batch_import.generate_batch(world, item="GLJT", as_of=date(2026, 11, 23), region=DISTRICT, operator=MAKER, now=NOW)


@pytest.mark.parametrize("as_of", [date(1, 1, 1), date(1899, 12, 31)])
def test_subsidy_generate_a_day_before_1900_is_bad_input_not_a_crash(world, as_of):
    with pytest.raises(InvalidInput) as early:
        batch_import.generate_batch(world, item="GLJT", as_of=as_of, region=DISTRICT, operator=MAKER, now=NOW)
    assert early.value.code == "subsidy.as_of" and early.value.field == "--as-of"


def test_subsidy_generate_tianjins_amounts_are_said_to_be_illustrative(sbcard, frozen):
    code, _, err, data = _generate(sbcard)
    assert code == 0, err
    assert (data["confidence"], data["illustrative"]) == ("illustrative", True)
    assert [(r["min_age"], r["amount_fen"], r["rows"], r["illustrative"]) for r in data["rules"]] == [
        (80, 10000, 2, True), (90, 30000, 1, True), (100, 60000, 1, True)]
    code, out, err, _ = sbcard("subsidy", "generate", "--item", "GLJT", "--region", DISTRICT, "--operator", MAKER,
                               "--as-of", "2026-10-31")
    assert code == 0, err
    assert "Illustrative amounts are the project's own, not the region's published rule" in out
