"""The simulator's own database connections (``tuning.tune``): big caches, a long WAL, no fsync;
other connections to the same world keep the store's defaults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sbcard.clock import BEIJING, SimClock
from sbcard.sim.tuning import CACHE_KIB, WAL_PAGES, tune
from sbcard.store.world import REGION_NODES, init_world, open_world


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_world(tmp_path / "world", SimClock(dt.datetime(2025, 3, 2, 7, tzinfo=BEIJING)), rng_seed=1)
    return tmp_path / "world"


@pytest.mark.parametrize("pragma, tuned, default", [
    ("cache_size", -CACHE_KIB, -2000),
    ("wal_autocheckpoint", WAL_PAGES, 1000),
    ("synchronous", 0, 1),  # OFF; the store's NORMAL
])
def test_tuned_connections_differ_from_the_stores_defaults_only_in_these(home: Path, pragma, tuned, default) -> None:
    with open_world(home) as world, open_world(home) as other:
        tune(world)
        dbs = [*(world.region(n) for n in REGION_NODES), world.hub()]
        others = [*(other.region(n) for n in REGION_NODES), other.hub()]
        assert [db.execute(f"PRAGMA {pragma}").fetchone()[0] for db in dbs] == [tuned] * 4
        assert [db.execute(f"PRAGMA {pragma}").fetchone()[0] for db in others] == [default] * 4
