"""Fixtures of the payment tests (imported by each ``test_subsidy_pay*`` module, so they do not depend on
what another folder's conftest provides): one template world per session, a copy per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from subsidy_pay_world import HOLDERS, NODE, NOW, STAFF, person_fields, populate
from world_template import home, make_template, world  # noqa: F401  (fixtures built on template_home)

from sbcard.store.world import World, open_world


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = make_template(tmp_path_factory, "subsidy-pay", seed=5, now=NOW, staff=STAFF,
                         people=[(NODE, person_fields(n)) for n in range(HOLDERS + 5)])
    with open_world(home) as world:
        populate(world.region(NODE))  # holders HOLDERS..HOLDERS+4 are registered without a card
    return home


@pytest.fixture
def tj(world: World):
    return world.region(NODE)
