"""A life-event world per test: staff and holders from one session template, a card issued per test.

Cards are issued through the real commands (``card apply``, ``card issue``, ``card
activate``) on blanks received in the test's own copy of the world (card files carry
absolute paths). Time is frozen at ``NOW``; a test moves it with the ``clock`` fixture,
and the CLI's clock follows.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time
from lifecycle_world import BANK, HOLDERS, NOW, OPERATORS, OUTLET, PIN

from sbcard.clock import FixedClock, SystemClock
from sbcard.services import operators, registry, stock
from sbcard.store.world import init_world, open_world
from terminals.emulator.blank import create_blank


@pytest.fixture(scope="session")
def lifecycle_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("lifecycle-template") / "world"
    init_world(home, FixedClock(NOW), rng_seed=7)
    with open_world(home) as world:
        for code, (name, role, region, node) in OPERATORS.items():
            operators.add_operator(world.region(node), code=code, name=name, role=role, region=region, now=NOW)
        for node, fields in HOLDERS.values():
            registry.add_person(world.region(node), now=NOW, **fields)
    return home


@pytest.fixture
def home(tmp_path: Path, lifecycle_template: Path) -> Path:
    copy = tmp_path / "world"
    shutil.copytree(lifecycle_template, copy)
    return copy


@pytest.fixture(autouse=True)
def clock() -> Iterator[object]:
    """The frozen time: ``clock.move_to(datetime)``, ``clock.tick(timedelta)``."""
    with freeze_time(NOW) as frozen:
        yield frozen


@pytest.fixture
def blanks(home: Path) -> Callable[..., list[Path]]:
    """``blanks(outlet=OUTLET, count=1)`` → paths of new blanks in that outlet's stock."""

    def receive(outlet: str = OUTLET, count: int = 1) -> list[Path]:
        node = outlet[:2].lower()
        staff = next(code for code, (_, role, _, n) in OPERATORS.items() if n == node and role == "counter")
        with open_world(home) as world:
            made = stock.receive_stock(world.region(node), outlet=outlet, count=count, operator=staff,
                                       now=SystemClock().now(),
                                       cards_dir=world.paths.cards_dir, make_blank=create_blank)
        return [Path(p) for p in made["paths"]]

    return receive


@pytest.fixture
def issue(sbcard, blanks) -> Callable[..., str]:
    """``issue("liu", activate=True)`` → the number of a card issued (and activated) the real way."""

    def issue_card(holder: str, *, outlet: str = OUTLET, activate: bool = True) -> str:
        _, fields = HOLDERS[holder]
        staff = next(code for code, (_, role, _, n) in OPERATORS.items()
                     if n == outlet[:2].lower() and role == "counter")
        [blank] = blanks(outlet)
        code, out, err, applied = sbcard("card", "apply", "--citizen-id", fields["citizen_id"], "--outlet", outlet,
                                         "--operator", staff, "--json")
        assert code == 0, err
        code, out, err, issued = sbcard("card", "issue", applied["application_id"], "--reader", f"emulator:{blank}",
                                        "--operator", staff, "--json")
        assert code == 0, err
        if activate:
            code, out, err, _ = sbcard("card", "activate", issued["card_number"], "--pin", PIN, "--operator", staff,
                                       "--json")
            assert code == 0, err
        return issued["card_number"]

    return issue_card


@pytest.fixture
def deposit(sbcard) -> Callable[[str, str], None]:
    """``deposit(card, "50.00")``: cash paid in at the Beijing bank-branch outlet."""

    def pay_in(card: str, yuan: str) -> None:
        code, out, err, _ = sbcard("account", "deposit", card, "--amount", yuan, "--operator", "BJ-C1",
                                   "--outlet", BANK)
        assert code == 0, err

    return pay_in
