"""Initialised worlds for tests: one template per session, a fresh copy per test.

Initialising a world (every region's keys, regions and outlets) is the slow part, so a
folder makes one template per session and each test works on its own copy of it.

The fixtures below serve a folder whose tests want a plain initialised world at ``NOW``;
its conftest imports them (``from world_template import clock, home, template_home,
world``). A folder that wants staff or people in its template defines its own
``template_home`` with ``make_template`` and imports only ``home``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sbcard.clock import BEIJING, FixedClock
from sbcard.store.world import World, init_world, open_world

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)

# code → (name, role, region, node), as the folders' tables of staff give them
Staff = Mapping[str, tuple[str, str, str, str]]


def make_template(
    factory: pytest.TempPathFactory,
    label: str,
    *,
    seed: int,
    now: datetime = NOW,
    staff: Staff | None = None,
    people: Iterable[tuple[str, dict[str, Any]]] = (),
) -> Path:
    """A world initialised at ``now`` under a new temporary folder, with ``staff`` and ``people`` (node, fields)."""
    from sbcard.services import operators, registry

    home = factory.mktemp(f"{label}-template") / "world"
    init_world(home, FixedClock(now), rng_seed=seed)
    people = list(people)
    if not staff and not people:
        return home
    with open_world(home) as world:
        for code, (name, role, region, node) in (staff or {}).items():
            operators.add_operator(world.region(node), code=code, name=name, role=role, region=region, now=now)
        for node, fields in people:
            registry.add_person(world.region(node), now=now, **fields)
    return home


def counter_of(staff: Staff, node: str) -> str:
    """The first counter operator of ``node`` in ``staff``."""
    return next(code for code, (_, role, _, n) in staff.items() if n == node and role == "counter")


def receive_blanks(home: Path, staff: Staff, outlet: str, count: int, now: datetime) -> list[Path]:
    """The paths of ``count`` new blanks received into ``outlet``'s stock by its region's counter operator."""
    from sbcard.services import stock
    from terminals.emulator.blank import create_blank

    node = outlet[:2].lower()
    with open_world(home) as world:
        made = stock.receive_stock(world.region(node), outlet=outlet, count=count, operator=counter_of(staff, node),
                                   now=now, cards_dir=world.paths.cards_dir, make_blank=create_blank)
    return [Path(p) for p in made["paths"]]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory, "world", seed=11)


@pytest.fixture
def home(tmp_path: Path, template_home: Path) -> Path:
    """A copy of the folder's ``template_home``, this test's own."""
    copy = tmp_path / "world"
    shutil.copytree(template_home, copy)
    return copy


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def world(home: Path) -> Iterator[World]:
    with open_world(home) as opened:
        yield opened
