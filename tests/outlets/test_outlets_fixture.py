"""The outlets fixture: each region loads its own outlets at `sbcard init`, once."""

from __future__ import annotations

import csv

import pytest

from sbcard.domain.outlets import KINDS, OutletCode
from sbcard.reference import fixtures_dir, read_csv_rows
from sbcard.store.db import content_digest, open_db
from sbcard.store.world import NODES, init_world, open_world


def test_each_region_holds_only_its_own_outlets(world):
    expected = {"bj": 12, "tj": 15, "he": 15}
    for node, at_least in expected.items():
        codes = [row["code"] for row in world.region(node)["outlets"].rows]
        assert len(codes) >= at_least
        assert {OutletCode.parse(code).node for code in codes} == {node}


def test_the_fixture_has_every_kind_and_several_hebei_prefectures():
    rows = read_csv_rows("outlets.csv")
    assert {row["kind"] for row in rows} == set(KINDS)
    hebei_prefectures = {row["region"][:4] for row in rows if row["code"].startswith("HE-")}
    assert len(hebei_prefectures) >= 8
    assert len({row["code"] for row in rows}) == len(rows)


def test_init_again_changes_nothing(home, clock):
    before = {n: content_digest(open_db(home / f"{n}.db")) for n in NODES}
    report = init_world(home, clock)
    assert not report.changed and all(n.outlets_loaded == 0 for n in report.nodes)
    assert {n: content_digest(open_db(home / f"{n}.db")) for n in NODES} == before


def test_a_changed_fixture_row_is_corrected_and_nothing_else(home, clock, tmp_path, monkeypatch):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    for name in ("regions.csv", "ethnicities.csv"):
        (fixtures / name).write_bytes((fixtures_dir() / name).read_bytes())
    rows = read_csv_rows("outlets.csv")
    rows[0]["name"] = rows[0]["name"] + "（新址）"
    with (fixtures / "outlets.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setenv("SBCARD_FIXTURES", str(fixtures))

    report = init_world(home, clock)

    assert [n.outlets_loaded for n in report.nodes] == [1, 0, 0, 0] and report.changed
    with open_world(home) as world:
        assert world.region("bj")["outlets"].get(rows[0]["code"])["name"].endswith("（新址）")


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("TJ-120103-09,网点,120104,outlet,,20", "lies in district 120103"),
        ("TJ-120103-09,网点,120103,kiosk,,20", "kind 'kiosk'"),
        ("TJ-120199-09,网点,120199,outlet,,20", "not in regions.csv"),
        ("XX-120103-09,网点,120103,outlet,,20", "not an outlet code"),
        ("TJ-120103-09,网点,120103,outlet,,-1", "low_stock"),
        ("TJ-120103-09,网点,120103,outlet,,1\ntj-120103-09,网点二,120103,outlet,,1", "listed twice"),
    ],
)
def test_a_malformed_fixture_is_refused_with_its_line(home, clock, tmp_path, monkeypatch, row, words):
    from sbcard.domain.errors import SbcardError

    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "regions.csv").write_bytes((fixtures_dir() / "regions.csv").read_bytes())
    (fixtures / "outlets.csv").write_text("code,name,region,kind,address,low_stock\n" + row + "\n", encoding="utf-8")
    monkeypatch.setenv("SBCARD_FIXTURES", str(fixtures))
    with pytest.raises(SbcardError) as exc:
        init_world(home, clock)
    assert exc.value.code == "fixture.invalid" and words in str(exc.value)
    assert f"line {2 + row.count(chr(10))}" in str(exc.value)


def test_the_world_summary_counts_outlets_and_persons(world):
    from sbcard.store.world import world_summary

    summary = world_summary(world)
    assert summary["tj"]["outlets"] == world.region("tj")["outlets"].count >= 15
    assert summary["bj"]["persons"] == 0 and "outlets" not in summary["hub"]
