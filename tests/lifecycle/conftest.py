"""A life-event world per test: staff and holders from one session template, a card issued per test.

Cards are issued through the real commands (``card apply``, ``card issue``, ``card
activate``) on blanks received in the test's own copy of the world (card files are
recorded relative to its home). Time is frozen at ``NOW``; a test moves it with the ``clock`` fixture,
and the CLI's clock follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time
from lifecycle_world import BANK, HOLDERS, NOW, OPERATORS, OUTLET, PIN
from world_template import counter_of, home, make_template, receive_blanks  # noqa: F401  (home: fixture)

from sbcard.clock import SystemClock


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory, "lifecycle", seed=7, now=NOW, staff=OPERATORS, people=HOLDERS.values())


@pytest.fixture(autouse=True)
def clock() -> Iterator[object]:
    """The frozen time: ``clock.move_to(datetime)``, ``clock.tick(timedelta)``."""
    with freeze_time(NOW) as frozen:
        yield frozen


@pytest.fixture
def blanks(home: Path) -> Callable[..., list[Path]]:
    """``blanks(outlet=OUTLET, count=1)`` → paths of new blanks in that outlet's stock."""
    return lambda outlet=OUTLET, count=1: receive_blanks(home, OPERATORS, outlet, count, SystemClock().now())


@pytest.fixture
def issue(sbcard, blanks) -> Callable[..., str]:
    """``issue("liu", activate=True)`` → the number of a card issued (and activated) the real way."""

    def issue_card(holder: str, *, outlet: str = OUTLET, activate: bool = True) -> str:
        _, fields = HOLDERS[holder]
        staff = counter_of(OPERATORS, outlet[:2].lower())
        [blank] = blanks(outlet)
        guardian = ("--guardian-id", fields["guardian_id"]) if fields.get("guardian_id") else ()
        code, out, err, applied = sbcard("card", "apply", "--citizen-id", fields["citizen_id"], "--outlet", outlet,
                                         "--operator", staff, *guardian, "--json")
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
