"""An issuance world per test: a copy of one session template with staff and people in it.

The template holds the three regions' operators and a handful of persons; blank stock is
received per test (card files carry absolute paths, so they are made in the copy). Time
is frozen at ``NOW`` for every test but the PC/SC ones, so the CLI's clock and the
services' agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time
from issuance_world import NOW, OPERATORS, PEOPLE, WorldState
from world_template import home, make_template, receive_blanks  # noqa: F401  (home: fixture)


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory, "issuance", seed=3, now=NOW, staff=OPERATORS,
                         people=[(person.node, person.fields) for person in PEOPLE.values()])


@pytest.fixture(autouse=True)
def frozen_now(request: pytest.FixtureRequest) -> Iterator[None]:
    """Frozen at NOW, except through the real PC/SC stack: its waits need real time to pass."""
    if request.node.get_closest_marker("pcsc"):
        yield
        return
    with freeze_time(NOW):
        yield


@pytest.fixture
def receive(home: Path) -> Callable[..., list[Path]]:
    """``receive(outlet, count=1)`` → the paths of that many new blanks in the outlet's stock."""
    return lambda outlet, count=1: receive_blanks(home, OPERATORS, outlet, count, NOW)


@pytest.fixture
def state(home: Path) -> Callable[..., WorldState]:
    """``state(*card_files)`` → every database's digest and the card files' bytes, to compare."""
    return lambda *cards: WorldState.take(home, cards)
