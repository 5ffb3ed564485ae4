"""fixtures/venues (venues.csv, prices.csv, sources.csv) and ``sbcard venue list | show``."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from sbcard import reference
from sbcard.reference import venues as venue_reference
from sbcard.domain.regions import node_of
from sbcard.reference import load_regions, load_sources
from sbcard.reference.venues import in_region, library, venue, venues

LIST_KEYS = {"code", "name", "region", "node", "kind", "price_fen", "off_peak_price_fen", "peak_months", "open_days",
             "open_from", "open_to", "daily_limit", "loan_limit", "loan_days", "fine_fen_per_day", "fine_cap_fen",
             "rules", "source", "confidence", "illustrative", "provenance"}
RULE_KEYS = {"rule", "category", "age_from", "age_to", "status", "price_fen", "percent", "starts", "ends",
             "description", "note", "source", "confidence", "illustrative"}
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_every_region_has_museums_scenic_spots_and_libraries():
    kinds = Counter((v.node, v.kind) for v in venues().values())
    for node in ("bj", "tj", "he"):
        assert all(kinds[(node, kind)] >= 1 for kind in ("museum", "scenic", "library")), node
        assert sum(n for (where, _), n in kinds.items() if where == node) >= 6


def test_every_venue_is_in_a_known_region_with_a_code_of_its_node():
    regions = load_regions()
    for v in venues().values():
        regions.get(v.region)
        assert v.code.startswith(node_of(v.region).upper() + "-")


def test_every_figure_names_its_source_or_says_it_is_illustrative():
    cited: set[str] = set()
    for v in venues().values():
        for p in (v.price_provenance, v.rules_provenance, *(r.provenance for r in v.rules)):
            assert p.illustrative or p.sources, v.code
            cited |= {s.id for s in p.sources}
        assert v.illustrative is any(p.illustrative for p in (v.price_provenance, v.rules_provenance,
                                                               *(r.provenance for r in v.rules)))
    assert cited == set(load_sources("venues")), "every source listed is cited, and only those"


@pytest.mark.parametrize(("code", "confidence"), [
    ("BJ-MU-002", "secondary"), ("HE-MU-001", "secondary"), ("HE-SC-001", "secondary"),
    ("BJ-MU-001", "illustrative"),   # its one entry a day per card is the project's own
    ("TJ-SC-002", "illustrative"),
])
def test_a_venue_is_as_trusted_as_its_weakest_figure(code, confidence):
    assert venue(code).provenance.confidence == confidence


def test_every_senior_band_of_the_beijing_city_parks_has_the_elderly_card_rule():
    for code in ("BJ-SC-001", "BJ-SC-002", "BJ-SC-003"):
        card = venue(code).rule("elderly-card")
        assert card is not None and (card.status, card.age_from, card.price_fen) == ("elderly_card", 60, 0)
        assert card.provenance.confidence == "official"


@pytest.mark.parametrize(("code", "peak", "off"), [("BJ-MU-001", 6000, 4000), ("BJ-SC-001", 3000, 2000),
                                                   ("HE-SC-001", 13000, 9000)])
def test_public_prices_by_season(code, peak, off):
    place = venue(code)
    assert (place.price_fen, place.off_peak_price_fen, sorted(place.peak_months)) == (peak, off, list(range(4, 11)))


def test_lookups_name_the_option():
    assert venue("bj-mu-001").name == "故宫博物院"
    with pytest.raises(Exception) as unknown:
        venue("BJ-MU-999")
    assert unknown.value.code == "venue.unknown" and unknown.value.exit_code == 2
    with pytest.raises(Exception) as museum:
        library("BJ-MU-001")
    assert museum.value.code == "library.not_a_library"


@pytest.mark.parametrize(("region", "kind", "expected"), [
    ("130100", None, {"HE-MU-001", "HE-SC-003", "HE-SC-004", "HE-LB-001", "HE-LB-002"}),   # 石家庄市
    ("120119", None, {"TJ-SC-002", "TJ-SC-003"}),                                          # 蓟州区
    ("110000", "library", {"BJ-LB-001"}),
])
def test_venues_by_region_and_kind(region, kind, expected):
    assert {v.code for v in in_region(region, kind)} == expected


def test_venue_list_on_the_command_line(sbcard):
    code, _, err, items = sbcard("venue", "list", "--region", "110000", "--json")
    assert code == 0, err
    assert {i["code"] for i in items} == {v.code for v in in_region("110000")}
    assert all(set(i) == LIST_KEYS for i in items)
    assert all(set(r) == RULE_KEYS for i in items for r in i["rules"])
    palace = next(i for i in items if i["code"] == "BJ-MU-001")
    assert (palace["open_days"], palace["open_from"], palace["daily_limit"]) == ([2, 3, 4, 5, 6, 7], "08:30", 1)
    assert (palace["confidence"], palace["illustrative"]) == ("illustrative", True)
    assert palace["provenance"]["price"]["confidence"] == "secondary"
    student = next(r for r in palace["rules"] if r["rule"] == "student")
    assert (student["status"], student["price_fen"], student["percent"], student["confidence"]) == (
        "student", 2000, None, "secondary")
    minors = next(r for r in palace["rules"] if r["rule"] == "minor-free")
    assert (minors["age_from"], minors["age_to"], minors["starts"]) == (None, 17, "2021-12-10")
    assert {s["id"] for s in minors["source"]} == {"dpm-minors-free-2021", "studyofnet-dpm-2023"}
    code, out, _, _ = sbcard("venue", "list", "--kind", "library")
    assert code == 0 and "首都图书馆" in out and "故宫" not in out
    code, _, err, _ = sbcard("venue", "list", "--region", "11000")
    assert code == 2 and "region" in err


def test_venue_show_on_the_command_line(sbcard):
    code, out, err, _ = sbcard("venue", "show", "BJ-SC-001")
    assert code == 0, err
    assert "elderly-card" in out and "official" in out and "illustrative" in out
    code, _, _, shown = sbcard("venue", "show", "he-sc-001", "--json")
    assert code == 0 and set(shown) == LIST_KEYS and shown["confidence"] == "secondary" and not shown["illustrative"]
    code, _, err, _ = sbcard("venue", "show", "XX-MU-001")
    assert code == 2 and "no venue" in err


# --------------------------------------------------------------------------- broken fixtures


@pytest.fixture
def broken_copy(tmp_path, monkeypatch):
    """A copy of fixtures/ under SBCARD_FIXTURES, with the caches emptied before and after."""
    shutil.copytree(FIXTURES, tmp_path / "fixtures")
    monkeypatch.setenv(reference.ENV_VAR, str(tmp_path / "fixtures"))
    caches = (venue_reference._venues, reference.load_sources, reference.load_regions)
    for f in caches:
        f.cache_clear()
    yield tmp_path / "fixtures" / "venues"
    monkeypatch.undo()
    for f in caches:
        f.cache_clear()


@pytest.mark.parametrize(("name", "bad_row", "message"), [
    ("prices.csv", "XX-SC-009,child-free,child,,6,,0,,,,ndrc-youth-2012,secondary,", "venue XX-SC-009 is not in"),
    ("prices.csv", "BJ-SC-001,veteran,senior,,,,0,,,,no-such-page,secondary,", "unknown source no-such-page"),
    ("prices.csv", "BJ-SC-001,child-free,child,,5,,0,,,,,illustrative,", "listed twice"),
    ("prices.csv", "BJ-SC-001,half,senior,60,,,,50,,,,official,", "official figure names its source"),
    ("prices.csv", "BJ-SC-001,half,senior,60,,,,50,2025-13-01,,,illustrative,", "not a date"),
    ("prices.csv", "BJ-SC-001,half,senior,60,,,100,50,,,,illustrative,", "one of them"),
    ("venues.csv", "BJ-SC-009,园,110108,scenic,1-7,08:00,17:00,100,,,,,,,,no-such-page,secondary,,illustrative",
     "unknown source no-such-page"),
    ("venues.csv", "BJ-SC-009,园,110108,scenic,1-7,08:00,17:00,100,,,,,,,,,sure,,illustrative", "confidence 'sure'"),
])
def test_a_broken_venue_fixture_is_refused_with_its_file_and_row(broken_copy, sbcard, name, bad_row, message):
    path = broken_copy / name
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, bad_row]) + "\n", encoding="utf-8")
    code, _, err, _ = sbcard("venue", "list", "--json")
    assert code == 3, err
    assert f"fixtures/venues/{name}" in err and f"row {len(lines) + 1}" in err and message in err
