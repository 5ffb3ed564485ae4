"""fixtures/venues/venues.csv and ``sbcard venue list``: a realistic subset of all three regions."""

from __future__ import annotations

from collections import Counter

import pytest

from sbcard.domain.regions import node_of
from sbcard.reference import load_regions
from sbcard.venue_reference import in_region, library, venue, venues

LIST_KEYS = {"code", "name", "region", "node", "kind", "price_fen", "off_peak_price_fen", "peak_months", "open_days",
             "open_from", "open_to", "free_from_age", "half_from_age", "student_half", "card_discount_pct",
             "daily_limit", "loan_limit", "loan_days", "fine_fen_per_day", "fine_cap_fen", "illustrative", "source"}


def test_every_region_has_museums_scenic_spots_and_libraries():
    kinds = Counter((v.node, v.kind) for v in venues().values())
    for node in ("bj", "tj", "he"):
        assert all(kinds[(node, kind)] >= 1 for kind in ("museum", "scenic", "library")), node
        assert sum(n for (where, _), n in kinds.items() if where == node) >= 6


def test_every_venue_is_in_a_known_region_with_a_code_of_its_node_and_a_source():
    regions = load_regions()
    for v in venues().values():
        regions.get(v.region)
        assert v.code.startswith(node_of(v.region).upper() + "-")
        assert v.source, v.code
        assert v.illustrative or "illustrative" not in v.source.lower(), v.code


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
    palace = next(i for i in items if i["code"] == "BJ-MU-001")
    assert (palace["open_days"], palace["open_from"], palace["daily_limit"]) == ([2, 3, 4, 5, 6, 7], "08:30", 1)
    code, out, _, _ = sbcard("venue", "list", "--kind", "library")
    assert code == 0 and "首都图书馆" in out and "故宫" not in out
    code, _, err, _ = sbcard("venue", "list", "--region", "11000")
    assert code == 2 and "region" in err
