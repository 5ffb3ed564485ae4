"""The synthetic population: the same for the same seed, valid, and shaped like the three regions."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.pin import check_new_pin
from sbcard.services.people.imports import parse_row
from sbcard.sim.population import CSV_COLUMNS, csv_rows, make_population

START = dt.date(2025, 3, 3)


def test_same_seed_same_people_other_seed_others() -> None:
    assert make_population(300, 1, START) == make_population(300, 1, START)
    assert make_population(300, 1, START) != make_population(300, 2, START)
    # a bigger population begins with the same people (their guardians drawn from more adults)
    bigger = make_population(400, 1, START)[:300]
    assert [p.citizen_id for p in bigger] == [p.citizen_id for p in make_population(300, 1, START)]


def test_people_are_valid_and_unique() -> None:
    people = make_population(2000, 9, START)
    ids = [p.citizen_id for p in people]
    assert len(set(ids)) == len(ids)
    for p in people:
        cid = CitizenId.parse(p.citizen_id)
        assert cid.birth_date == p.birth_date and cid.sex == p.sex and cid.region_code == p.district
        assert check_new_pin(p.pin, birth_date=p.birth_date) == p.pin
        assert p.name.encode("gbk") and len(p.name.encode("gbk")) <= 30
        assert p.retired == (p.role == "retiree")
        assert (p.insurance == "employee") == (p.role in ("worker", "retiree"))
        if p.age_on(START) < 16 and p.has_card:
            assert p.guardian_id is not None
            guardian = CitizenId.parse(p.guardian_id)
            assert guardian.age_on(START) >= 18


def test_shape_regions_ages_commuters() -> None:
    people = make_population(5000, 3, START)
    nodes = Counter(p.node for p in people)
    assert 0.35 < nodes["bj"] / 5000 < 0.45 and 0.2 < nodes["tj"] / 5000 < 0.3 and 0.3 < nodes["he"] / 5000 < 0.4
    ages = [p.age_on(START) for p in people]
    assert min(ages) == 0 and max(ages) >= 90
    assert 0.1 < sum(a >= 65 for a in ages) / 5000 < 0.2
    roles = Counter(p.role for p in people)
    assert {"child", "student", "worker", "retiree", "resident"} == set(roles)
    commuters = Counter(p.commuter for p in people if p.commuter)
    assert commuters["lf→bj"] and commuters["tj→bj"]
    for p in people:
        if p.commuter == "lf→bj":
            assert p.home[0].network == "he-lf-bus" and p.work[0].network == "bj-subway"
    assert 0.85 < sum(p.has_card for p in people) / 5000 < 0.95


def test_rows_are_what_the_registry_import_accepts() -> None:
    people = make_population(500, 4, START)
    for node, region in (("bj", "110000"), ("tj", "120000"), ("he", "130000")):
        rows = list(csv_rows(people, node))
        assert rows and all(set(r) == set(CSV_COLUMNS) for r in rows)
        for row in rows:
            full = {"ethnicity": "", "phone": "", "address": "", "photo_ref": "", **row}
            record = parse_row(full, region, START)
            assert record.node == node


def test_every_simulated_person_has_a_residence_status() -> None:
    people = make_population(500, 4, START)
    rows = [row for node in ("bj", "tj", "he") for row in csv_rows(people, node)]
    assert "residence" in CSV_COLUMNS and rows
    assert {row["residence"] for row in rows} <= {"hukou", "permit"}  # 户籍 where the ID was registered
