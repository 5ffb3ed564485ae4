"""The venue tests' world: three holders with issued, activated and loaded cards.

One template per session (cards issued through the real commands, cash paid into the
accounts, purses loaded at a counter); each test works on its own copy (``venues``
fixture) with the time frozen at ``NOW`` (``clock.tick`` / ``clock.move_to`` move it, the
CLI's clock follows). Import the fixtures into a test module:
``from venue_world import clock, venue_template, venues  # noqa: F401``.

The holders: 刘洋 (Beijing, born 1985), 陈静 (Tianjin, 60 on 2025-03-05, the day after
``NOW``) and 王建国 (Hebei, born 1950; a purse of only ¥20).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from freezegun import freeze_time
from world_template import COUNTER_OUTLETS, COUNTERS, Card, CardWorld, card_template, copy_world, issue_card, ok

from sbcard.clock import BEIJING

NOW = dt.datetime(2025, 3, 4, 10, 0, tzinfo=BEIJING)  # a Tuesday, off-peak season
PIN = "135790"
STAFF = COUNTERS
OUTLETS = COUNTER_OUTLETS
BANKS = {"bj": "BJ-110105-02", "tj": "TJ-120103-02", "he": "HE-130108-01"}
HOLDERS = {
    "liu": ("bj", {"citizen_id": "110105198506151236", "name": "刘洋", "region": "110105", "insurance": "employee"}),
    "chen": ("tj", {"citizen_id": "120103196503051248", "name": "陈静", "region": "120103", "insurance": "resident"}),
    "wang": ("he", {"citizen_id": "130102195006012337", "name": "王建国", "region": "130102", "insurance": "employee",
                    "retired": True}),
}
PURSE_YUAN = {"liu": "200", "chen": "200", "wang": "20"}


def _issue(home: Path, holder: str) -> Card:
    node, fields = HOLDERS[holder]
    return issue_card(home, STAFF, holder, node, fields, outlet=OUTLETS[node], bank=BANKS[node], now=NOW, pin=PIN,
                      deposit_yuan=500, load_yuan=PURSE_YUAN[holder])


@attrs.define
class VenueWorld(CardWorld):
    """One test's world and what its tests do with it."""

    def ok(self, *args: str) -> Any:
        return ok(self.run(*args, "--json"))

    def enter(self, holder: str, venue: str, *extra: str, **reader_options: Any) -> tuple[int, Any]:
        code, _, err, done = self.run("venue", "enter", "--reader", self.reader(holder, **reader_options), "--venue",
                                      venue, *extra, "--json")
        return code, done if done is not None else err

    def library(self, verb: str, holder: str, library: str, *extra: str, **reader_options: Any) -> tuple[int, Any]:
        code, _, err, done = self.run("library", verb, "--reader", self.reader(holder, **reader_options), "--library",
                                      library, *extra, "--json")
        return code, done if done is not None else err

    def load(self, holder: str, yuan: str) -> Any:
        node = self.cards[holder].node
        staff = next(code for code, (_, _, _, n) in STAFF.items() if n == node)
        return self.ok("transit", "load", "--reader", self.reader(holder), "--amount", yuan, "--operator", staff,
                       "--outlet", OUTLETS[node])

    def purse(self, holder: str) -> int:
        from terminals.emulator.card_file import read_state

        return read_state(self.path(holder))["purse"]["balance"]

    def locked(self, holder: str) -> bool:
        from terminals.emulator.card import VirtualCard

        with VirtualCard.load(self.path(holder)) as card:
            return "TU" in card.state.locked

    def gate_log(self, terminal: str) -> Any:
        return self.ok("transit", "log", "--terminal", terminal)


@pytest.fixture(scope="session")
def venue_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Card]]:
    return card_template(tmp_path_factory, "venues", seed=61, now=NOW, staff=STAFF, holders=HOLDERS,
                         issue=_issue)


@pytest.fixture
def clock() -> Iterator[Any]:
    """The frozen time (``clock.tick(timedelta)``, ``clock.move_to(datetime)``)."""
    with freeze_time(NOW) as frozen:
        yield frozen


@pytest.fixture
def venues(tmp_path: Path, venue_template: tuple[Path, dict[str, Card]], clock: Any) -> VenueWorld:
    template, cards = venue_template
    return VenueWorld(copy_world(template, tmp_path), dict(cards))
