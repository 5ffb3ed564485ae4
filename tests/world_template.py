"""Initialised worlds for tests: one template per session, a fresh copy per test.

Initialising a world (every region's keys, regions and outlets) is the slow part, so a
folder makes one template per session and each test works on its own copy of it.

The fixtures below serve a folder whose tests want a plain initialised world at ``NOW``;
its conftest imports them (``from world_template import clock, home, template_home,
world``). A folder that wants staff or people in its template defines its own
``template_home`` with ``make_template`` and imports only ``home``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from sbcard.clock import BEIJING, FixedClock
from sbcard.store.world import World, init_world, open_world

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)

# code → (name, role, region, node), as the folders' tables of staff give them
Staff = Mapping[str, tuple[str, str, str, str]]

# A counter operator in each region, and the outlet each works at (node → outlet).
COUNTERS: Staff = {
    "BJ-C1": ("王芳", "counter", "110105", "bj"),
    "TJ-C1": ("李娜", "counter", "120103", "tj"),
    "HE-C1": ("赵磊", "counter", "130102", "he"),
}
COUNTER_OUTLETS = {"bj": "BJ-110105-01", "tj": "TJ-120103-01", "he": "HE-130102-01"}


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
    from sbcard.services.outlets import operators
    from sbcard.services.people import registry

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
    from sbcard.services.outlets import stock
    from terminals.emulator.blank import create_blank

    node = outlet[:2].lower()
    with open_world(home) as world:
        made = stock.receive_stock(world.region(node), outlet=outlet, count=count, operator=counter_of(staff, node),
                                   now=now, cards_dir=world.paths.cards_dir, make_blank=create_blank)
    return [Path(p) for p in made["paths"]]


def cli(home: Path, *args: str, input: str | None = None) -> tuple[int, str, str, Any]:
    """Run ``sbcard --home HOME …`` in-process: (exit code, stdout, stderr, parsed JSON or None)."""
    from sbcard.cli.main import cli as main

    result = CliRunner().invoke(main, ["--home", str(home), *args], input=input, catch_exceptions=False)
    parsed = None
    if "--json" in args and result.stdout.strip():
        try:
            parsed = json.loads(result.stdout)
        except json.JSONDecodeError:
            parsed = None
    return result.exit_code, result.stdout, result.stderr, parsed


def error_line(err: str) -> str:
    """stderr as a person reads it: a ``--json`` error (``{"error": {"code", "field", "message"}}``) given back as
    the line ``error: <field>: <message>`` the same command prints without ``--json``; any other text as it is."""
    try:
        error = json.loads(err)["error"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return err
    return f"error: {error['field']}: {error['message']}\n" if error["field"] else f"error: {error['message']}\n"


def ok(result: tuple[int, str, str, Any]) -> Any:
    """The parsed JSON of a command that must have succeeded."""
    code, _, err, data = result
    assert code == 0, err
    return data


@attrs.frozen
class Card:
    """A card issued in a template world; its file is found in a copy by the relative path."""

    holder: str
    node: str
    number: str
    citizen_id: str
    app_serial: str
    relative_path: str  # the card file, relative to the world's home


def issue_card(home: Path, staff: Staff, holder: str, node: str, fields: Mapping[str, Any], *, outlet: str,
               bank: str, now: datetime, pin: str, deposit_yuan: int | str, load_yuan: str | None = None) -> Card:
    """Apply, issue on a new blank, activate, pay cash into the account (and load the purse) through the CLI."""
    operator = counter_of(staff, node)
    [blank] = receive_blanks(home, staff, outlet, 1, now)
    applied = ok(cli(home, "card", "apply", "--citizen-id", fields["citizen_id"], "--outlet", outlet,
                     "--operator", operator, "--json"))
    number = ok(cli(home, "card", "issue", applied["application_id"], "--reader", f"emulator:{blank}",
                    "--operator", operator, "--json"))["card_number"]
    ok(cli(home, "card", "activate", number, "--pin", pin, "--operator", operator, "--json"))
    ok(cli(home, "account", "deposit", number, "--amount", str(deposit_yuan), "--operator", operator,
           "--outlet", bank, "--json"))
    if load_yuan is not None:
        ok(cli(home, "transit", "load", "--reader", f"emulator:{blank}", "--amount", load_yuan, "--operator",
               operator, "--outlet", outlet, "--json"))
    with open_world(home) as world:
        [row] = world.region(node).query("SELECT app_serial FROM cards WHERE card_number = ?", [number])
    return Card(holder, node, number, fields["citizen_id"], row["app_serial"], str(Path(blank).relative_to(home)))


@attrs.define
class CardWorld:
    """One test's copy of a template world with issued cards: paths, readers, the CLI, queries."""

    home: Path
    cards: dict[str, Card]

    def path(self, holder: str) -> Path:
        return self.home / self.cards[holder].relative_path

    def reader(self, holder: str, **options: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"emulator:{self.path(holder)}" + (f"?{query}" if query else "")

    def run(self, *args: str) -> tuple[int, str, str, Any]:
        return cli(self.home, *args)

    def query(self, node: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        from sbcard.store.db import open_db
        from sbcard.store.world import WorldPaths

        db = open_db(WorldPaths(self.home).db(node))
        try:
            return [dict(r) for r in db.query(sql, params)]
        finally:
            db.close()


def card_template(factory: pytest.TempPathFactory, label: str, *, seed: int, now: datetime, staff: Staff,
                  holders: Mapping[str, tuple[str, dict[str, Any]]],
                  issue: Callable[[Path, str], Card]) -> tuple[Path, dict[str, Card]]:
    """A template world at ``now`` with ``staff``, ``holders`` registered and a card issued to each."""
    from freezegun import freeze_time

    with freeze_time(now):
        home = make_template(factory, label, seed=seed, now=now, staff=staff, people=holders.values())
        cards = {holder: issue(home, holder) for holder in holders}
    return home, cards


def copy_world(template: Path, tmp_path: Path) -> Path:
    """A test's own copy of a template world."""
    copy = tmp_path / "world"
    shutil.copytree(template, copy)
    return copy


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory, "world", seed=11)


@pytest.fixture
def home(tmp_path: Path, template_home: Path) -> Path:
    """A copy of the folder's ``template_home``, this test's own."""
    return copy_world(template_home, tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def world(home: Path) -> Iterator[World]:
    with open_world(home) as opened:
        yield opened
