"""An issuance world per test: a copy of one session template with staff and people in it.

The template holds the three regions' operators and a handful of persons; blank stock is
received per test (card files carry absolute paths, so they are made in the copy). Time
is frozen at ``NOW`` for every test but the PC/SC ones, so the CLI's clock and the
services' agree.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time
from issuance_world import NOW, OPERATORS, PEOPLE, WorldState

from sbcard.clock import FixedClock
from sbcard.services import operators, registry, stock
from sbcard.store.world import init_world, open_world
from terminals.emulator.blank import create_blank


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("issuance-template") / "world"
    init_world(home, FixedClock(NOW), rng_seed=3)
    with open_world(home) as world:
        for code, (name, role, region, node) in OPERATORS.items():
            operators.add_operator(world.region(node), code=code, name=name, role=role, region=region, now=NOW)
        for person in PEOPLE.values():
            registry.add_person(world.region(person.node), now=NOW, **person.fields)
    return home


@pytest.fixture
def home(tmp_path: Path, template_home: Path) -> Path:
    copy = tmp_path / "world"
    shutil.copytree(template_home, copy)
    return copy


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

    def receive_blanks(outlet: str, count: int = 1) -> list[Path]:
        node = outlet[:2].lower()
        with open_world(home) as world:
            operator = next(code for code, (_, role, _, n) in OPERATORS.items() if n == node and role == "counter")
            made = stock.receive_stock(world.region(node), outlet=outlet, count=count, operator=operator, now=NOW,
                                       cards_dir=world.paths.cards_dir, make_blank=create_blank)
        return [Path(p) for p in made["paths"]]

    return receive_blanks


@pytest.fixture
def state(home: Path) -> Callable[..., WorldState]:
    """``state(*card_files)`` → every database's digest and the card files' bytes, to compare."""
    return lambda *cards: WorldState.take(home, cards)
