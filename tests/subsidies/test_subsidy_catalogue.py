"""The subsidy catalogue and the generation rules: loaded by ``sbcard init`` (once), checked when read."""

from __future__ import annotations

import pytest
from subsidy_fixture_copy import broken, fixtures  # noqa: F401  (fixtures: the fixture)
from world_template import NOW

from sbcard.reference import subsidies as subsidy_reference
from sbcard.clock import FixedClock
from sbcard.store.world import init_world, open_world


def test_subsidy_catalogue_init_loads_it_once_into_every_region(tmp_path, fixtures):
    home = tmp_path / "world"
    first = init_world(home, FixedClock(NOW), rng_seed=1).to_dict()
    assert {n["node"]: n["subsidy_items_loaded"] for n in first["nodes"]} == {"bj": 6, "tj": 6, "he": 6, "hub": 0}
    again = init_world(home, FixedClock(NOW), rng_seed=1)
    assert not again.changed and all(n.subsidy_items_loaded == 0 for n in again.nodes)
    items = fixtures / "subsidies" / "items.csv"
    items.write_text(items.read_text(encoding="utf-8").replace("GLJT,高龄津贴,民政局,monthly,800.00",
                                                               "GLJT,高龄津贴,民政局,monthly,900.00"), encoding="utf-8")
    subsidy_reference.catalogue.cache_clear()
    changed = init_world(home, FixedClock(NOW), rng_seed=1)
    assert changed.changed and {n.node: n.subsidy_items_loaded for n in changed.nodes}["tj"] == 1
    with open_world(home) as world:
        cap = world.region("he").execute("SELECT cap_fen FROM subsidy_items WHERE code = 'GLJT'").fetchone()[0]
    assert cap == 90000


@pytest.mark.parametrize(("file", "old", "new", "words"), [
    ("items.csv", "monthly,800.00", "weekly,800.00", "line 3"),
    ("items.csv", "monthly,800.00", "monthly,0", "line 3"),
    ("items.csv", "LSJZ,临时救助", "GLJT,临时救助", "listed twice"),
    ("generate_rules.csv", "GLJT,110000,90,99", "GLJT,110000,89,99", "overlap"),
    ("generate_rules.csv", "GLJT,120000,80,89", "XXXX,120000,80,89", "line 5"),
    ("generate_rules.csv", "GLJT,110000,100,,800.00", "GLJT,110000,100,,900.00", "more than the item's cap"),
    ("generate_rules.csv", "GLJT,130000,80,89", "GLJT,140000,80,89", "line 8"),
])
def test_subsidy_catalogue_a_broken_fixture_is_an_internal_error_naming_the_line(fixtures, file, old, new, words):
    error = broken(fixtures, file, old, new)
    assert f"fixtures/subsidies/{file}" in error.message and words in error.message


def test_subsidy_catalogue_the_real_fixtures_read():
    assert {item.code for item in subsidy_reference.catalogue()} == {"GDDLBH", "GLJT", "CJRLXBT", "CXJMJCYLJ", "ZDSHBZJ", "LSJZ"}
    bands = subsidy_reference.generate_rules()
    beijing = [(b.min_age, b.max_age, b.amount_fen, b.illustrative) for b in bands if b.province == "110000"]
    assert beijing == [(80, 89, 10000, False), (90, 99, 50000, False), (100, None, 80000, False)]
    assert all(b.illustrative for b in bands if b.province != "110000")
