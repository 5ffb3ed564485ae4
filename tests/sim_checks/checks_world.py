"""A small world for the invariant tests: three holders (北京, 天津, 河北), loads, taps across
regions, some records uploaded and some not, the day cleared — made once per session through
the real commands, copied for each test (``checks_home``).

Violations are planted through test-only paths (``plant_*``): direct SQL on a region's
ledger or clearing tables, a card file edited behind the card's back, a purchase made on
the chip with no terminal to log it, a terminal that claims a list version it does not hold.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest
from freezegun import freeze_time
from world_template import COUNTER_OUTLETS, COUNTERS, Card, issue_card, make_template, ok
from world_template import cli as run_cli

from sbcard.clock import BEIJING
from sbcard.store.world import open_world

DAY = dt.date(2025, 3, 3)
NOW = dt.datetime(2025, 3, 3, 7, 0, tzinfo=BEIJING)
PIN = "135790"
STAFF = COUNTERS
OUTLETS = COUNTER_OUTLETS
BANKS = {"bj": "BJ-110105-02", "tj": "TJ-120103-02", "he": "HE-130102-02"}
HOLDERS = {
    "liu": ("bj", {"citizen_id": "110105198506151236", "name": "刘洋", "region": "110105", "insurance": "employee"}),
    "chen": ("tj", {"citizen_id": "120103197803024561", "name": "陈静", "region": "120103", "insurance": "resident"}),
}


def cli(home: Path, *args: str) -> Any:
    """The parsed JSON of a command that must succeed."""
    return ok(run_cli(home, *args))


@attrs.frozen
class ChecksWorld:
    home: Path
    holders: dict[str, Card]
    terminals: dict[str, str]  # label -> terminal id

    def card_path(self, holder: str) -> Path:
        return self.home / self.holders[holder].relative_path


def _issue(home: Path, holder: str) -> Card:
    node, fields = HOLDERS[holder]
    return issue_card(home, STAFF, holder, node, fields, outlet=OUTLETS[node], bank=BANKS[node], now=NOW, pin=PIN,
                      deposit_yuan=200, load_yuan="50")


def tap(world: ChecksWorld, holder: str, terminal: str, spec: str = "") -> Any:
    return cli(world.home, "transit", "tap", "--reader", f"emulator:{world.card_path(holder)}{spec}", "--terminal",
               world.terminals[terminal], "--json")


def build(factory: pytest.TempPathFactory) -> ChecksWorld:
    with freeze_time(NOW) as clock:
        home = make_template(factory, "sim-checks", seed=71, now=NOW, staff=STAFF, people=HOLDERS.values())
        holders = {h: _issue(home, h) for h in HOLDERS}
        terminals = {
            "tj_bus": cli(home, "terminal", "add", "--operator", "tj-bus", "--line", "13", "--json")["terminal"],
            "bj_bus": cli(home, "terminal", "add", "--operator", "bj-bus", "--line", "1", "--json")["terminal"],
        }
        world = ChecksWorld(home, holders, terminals)
        for hour in range(3):
            clock.tick(dt.timedelta(hours=1))
            tap(world, "liu", "tj_bus")  # a Beijing card in Tianjin
            tap(world, "chen", "bj_bus")  # a Tianjin card in Beijing
            clock.tick(dt.timedelta(minutes=10))
            tap(world, "liu", "bj_bus")
        cli(home, "transit", "upload", "--terminal", terminals["tj_bus"], "--json")
        clock.tick(dt.timedelta(minutes=10))
        tap(world, "chen", "tj_bus")  # logged, not uploaded
        settle(world, "chen", "BJH003", factory)  # a Tianjin patient in a Beijing hospital
        settle(world, "liu", "BJH001", factory)  # a Beijing patient at home
        clear_day(home)
    return world


MEDICAL_LINES = [{"code": "XJ01CAA040", "quantity": 40, "price": "12.50"},
                 {"code": "002103000010000", "quantity": 2, "price": "220.00"}]


def settle(world: ChecksWorld, holder: str, hospital: str, factory: Any = None) -> Any:
    items = world.home.parent / "items.json"
    items.write_text(json.dumps(MEDICAL_LINES), encoding="utf-8")
    return cli(world.home, "medical", "settle", "--reader", f"emulator:{world.card_path(holder)}", "--hospital",
               hospital, "--items", str(items), "--json")


def clear_day(home: Path, day: dt.date = DAY) -> None:
    """The nightly clearing of ``day``, when clearing exists (helper S1's service)."""
    try:
        from sbcard.services.clearing import purse_records as clearing, settlement  # noqa: F401 - both, or no clearing yet
    except ImportError:
        return
    with open_world(home) as world:
        clearing.run_clearing(world, day, now=dt.datetime.combine(day, dt.time(23, 30), tzinfo=BEIJING))


def copy_world(template: ChecksWorld, tmp_path: Path) -> ChecksWorld:
    home = tmp_path / "world"
    shutil.copytree(template.home, home)
    return attrs.evolve(template, home=home)


# ----------------------------------------------------------------------------- looking and planting


def check(world: ChecksWorld, name: str | None = None) -> Any:
    """Every invariant's Result (``{name: Result}``), or one by name."""
    from sbcard.sim import invariants

    with open_world(world.home) as opened:
        if name is None:
            return invariants.check_day(opened, world.home, DAY)
        return invariants.check(name, opened, world.home, DAY)


def sql(world: ChecksWorld, node: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    """A test-only write straight into a node's database (what no service would do)."""
    import sqlite3

    conn = sqlite3.connect(world.home / f"{node}.db", isolation_level=None)
    try:
        conn.execute(statement, params)
    finally:
        conn.close()


def rows(world: ChecksWorld, node: str, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with open_world(world.home) as opened:
        db = opened.hub() if node == "hub" else opened.region(node)
        return [dict(r) for r in db.query(query, params)]


def edit_card(world: ChecksWorld, holder: str, change: Any) -> None:
    """Edit the card's image behind the card's back (its new current bank)."""
    from terminals.emulator import card_file, image_codec

    path = world.card_path(holder)
    doc = card_file.read_state(path)
    change(doc)
    card_file.save(image_codec.from_json(doc), path)


def chip_purchase(world: ChecksWorld, holder: str, amount: int, when: dt.datetime) -> None:
    """A purchase made on the chip with its real commands, the PSAM's part played with the issuer's
    keys — and no terminal to log it."""
    from sbcard.services.cards import keys
    from terminals.emulator import testing
    from terminals.emulator.card import VirtualCard

    h = world.holders[holder]
    with open_world(world.home) as opened:
        db = opened.region(h.node)
        [card] = db.query("SELECT * FROM cards WHERE card_number = ?", [h.number])
        card_keys = keys.keys_for_card(db, card)
    with VirtualCard.load(world.card_path(holder)) as chip:
        chip.power_on()
        testing.purchase(chip, amount, bytes.fromhex("110000999999"), (999).to_bytes(4, "big"),
                         when.replace(tzinfo=None), keys=card_keys)
