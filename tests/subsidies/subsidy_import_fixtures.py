"""Fixtures of the import tests (imported by each ``test_subsidy_import*`` / ``test_subsidy_files*`` module that
needs a world, so they do not depend on another folder's conftest): one template world per session, a copy per
test, and time frozen at ``NOW`` (the CLI's clock reads it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time
from subsidy_import_world import NOW, STAFF, populate, registry_people
from world_template import home, make_template, world  # noqa: F401  (fixtures built on template_home)

from sbcard.store.world import open_world


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = make_template(tmp_path_factory, "subsidy-import", seed=9, now=NOW, staff=STAFF, people=registry_people())
    with open_world(home) as world:
        populate(world)
    return home


@pytest.fixture
def frozen() -> Iterator[object]:
    """Time frozen at NOW for the CLI (``frozen.move_to(datetime)`` moves it)."""
    with freeze_time(NOW) as clock:
        yield clock
