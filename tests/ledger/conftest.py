"""A fresh copy of one initialised world per test (initialising once per session keeps this fast)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from sbcard.clock import BEIJING, FixedClock
from sbcard.store.world import init_world, open_world

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ledger-template") / "world"
    init_world(home, FixedClock(NOW), rng_seed=11)
    return home


@pytest.fixture
def home(tmp_path: Path, template_home: Path) -> Path:
    copy = tmp_path / "world"
    shutil.copytree(template_home, copy)
    return copy


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def world(home: Path):
    with open_world(home) as opened:
        yield opened
