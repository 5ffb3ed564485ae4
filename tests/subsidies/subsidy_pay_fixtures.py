"""Fixtures of the payment tests (imported by each ``test_subsidy_pay*`` module, so they do not depend on
what another folder's conftest provides): one template world per session, a copy per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from subsidy_pay_world import HOLDERS, NODE, NOW, STAFF, person_fields, populate
from world_template import make_template

from sbcard.store.world import World, open_world


@pytest.fixture(scope="session")
def pay_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = make_template(tmp_path_factory, "subsidy-pay", seed=5, now=NOW, staff=STAFF,
                         people=[(NODE, person_fields(n)) for n in range(HOLDERS + 5)])
    with open_world(home) as world:
        populate(world.region(NODE))  # holders HOLDERS..HOLDERS+4 are registered without a card
    return home


@pytest.fixture
def home(tmp_path: Path, pay_template: Path) -> Path:
    copy = tmp_path / "world"
    shutil.copytree(pay_template, copy)
    return copy


@pytest.fixture
def world(home: Path) -> Iterator[World]:
    with open_world(home) as opened:
        yield opened


@pytest.fixture
def tj(world: World):
    return world.region(NODE)
