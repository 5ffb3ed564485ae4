"""The world before day 1, made on the simulated clock (the day before the run's first day).

``build(sim)``:

1. ``init_world`` with the run's seed (the regions' master keys from it);
2. staff: in each region a counter operator (who also takes loads, cash and losses at
   its outlets), a finance maker and a finance checker (subsidy batches, purse refunds);
3. the population, registered through the registry's bulk import (``person import``'s
   service, one CSV per region under ``<home>/.sim/``);
4. blank stock at every outlet (what the outlets issue from, as ``outlet stock receive``);
5. terminals: a gate at each metro station the population uses and a validator on each
   bus line (``terminal add``), a gate at every museum, scenic spot and library
   (``venue gate add``);
6. the cards most people already hold, made as most cards are: in production batches
   (批量制卡, ``services.cards.batch_production``) — each holder checked as an application, the
   data prepared as a counter prepares it, the chip personalised by the factory machine
   with the counter's script (``terminals.apps.factory``) — and handed over at the outlet
   near the holder's home, where the holder set a PIN and the card started. Cards issued
   during the run take the counter's path (``card apply``, ``card issue``, ``card activate``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from sbcard.chip.crypto import Algorithm
from sbcard.clock import BEIJING, SimClock
from sbcard.domain.csv_safety import safe_cell
from sbcard.domain.errors import SbcardError
from sbcard.reference.venues import venues
from sbcard.services.cards import batch_production
from sbcard.services.exchange import outbox
from sbcard.services.outlets import operators, stock
from sbcard.services.people.imports import import_persons
from sbcard.services.terminals import register
from sbcard.services.venues import gates as venue_gates
from sbcard.sim import processes
from sbcard.sim.checkpoint import worker_lock
from sbcard.sim.population import BUS_LINES, CSV_COLUMNS, METRO, Person, csv_rows
from sbcard.sim.tally import Tally
from sbcard.sim.tuning import tune
from sbcard.store.world import REGION_NODES, World, init_world, open_world
from terminals.apps import uploads
from terminals.apps.factory import produce_card
from terminals.apps.terminal_state import TerminalConfig, TerminalState
from terminals.emulator.blank import create_blank
from terminals.psam import PsamKeySet, psam_upload_key

PROVINCE = {"bj": "110000", "tj": "120000", "he": "130000"}
STAFF_NAMES = {"counter": "柜员", "maker": "经办", "checker": "复核"}
STAFF_CODES = {"counter": "C1", "maker": "F1", "checker": "F2"}
STOCK_BUFFER = 6  # blanks at each outlet for the first day's applications and replacements (at least)
PEOPLE_PER_BLANK = 1000  # and one more blank per this many people: a day's applications grow with the population
DELIVERY_MAX = 1000


class Simulation(Protocol):
    """What the set-up uses of the simulation (``sbcard.sim.engine.Simulation``; the night's
    ``restock`` too): its public state and methods, so that the set-up need not import the engine."""

    home: Path
    clock: SimClock
    options: Any  # engine.Options
    people: list[Person]
    state: dict[str, Any]
    tally: Tally
    refusals: dict[str, int]
    world: World | None
    progress: Callable[[str], None]

    def opened(self, day_no: int) -> AbstractContextManager[World]: ...

    def move_to(self, at: dt.datetime) -> None: ...

    def step(self, seconds: int) -> dt.datetime: ...

    def counter_op(self, node: str) -> str: ...

    def sync_terminals(self) -> None: ...


def sim_dir(home: Path) -> Path:
    return Path(home) / ".sim"


def blank_path(outlet: str, serial: str) -> str:
    """A blank's card file, relative to the world's home (where ``outlet stock receive`` puts it)."""
    return f"cards/stock/{outlet}/{serial}.card"


def build(sim: Simulation) -> None:
    home = sim.home
    init_world(home, sim.clock, rng_seed=sim.options.seed)
    sim.state = {
        "day_done": 0, "cards": {}, "loans": [], "item_seq": 0, "terminals": {}, "gates": {}, "all_terminals": {},
        "staff": {}, "outlets": {}, "stock": {}, "lost_cards": {},
    }
    with sim.opened(0) as world:
        _staff(sim, world)
        _outlets(sim, world)
        _register(sim, world)
        sim.move_to(dt.datetime.combine(sim.clock.now().date(), dt.time(7, 30), BEIJING))
        holders = [p for p in sim.people if p.has_card and p.age_on(sim.clock.now().date()) >= 1]
        where = {p.idx: _home_outlet(sim, p) for p in holders}
        _stock(sim, world)
        _terminals(sim, world)
        _venue_gates(sim, world)
        _issue_cards(sim, holders, where)
        outbox.deliver_pending(world, sim.clock.now())
        sim.sync_terminals()


def _staff(sim: Simulation, world: Any) -> None:
    now = sim.clock.now()
    for node in REGION_NODES:
        codes = {role: f"{node.upper()}-SIM-{suffix}" for role, suffix in STAFF_CODES.items()}
        for role, code in codes.items():
            operators.add_operator(world.region(node), code=code, name=f"模拟{STAFF_NAMES[role]}",
                                   role="counter" if role == "counter" else "finance", region=PROVINCE[node], now=now)
        sim.state["staff"][node] = codes


def _outlets(sim: Simulation, world: Any) -> None:
    for node in REGION_NODES:
        rows = world.region(node).execute("SELECT code, region, kind FROM outlets ORDER BY code").fetchall()
        sim.state["outlets"][node] = [{"code": c, "district": r, "kind": k} for c, r, k in rows]


def _register(sim: Simulation, world: Any) -> None:
    folder = sim_dir(sim.home)
    folder.mkdir(parents=True, exist_ok=True)
    for node in REGION_NODES:
        path = folder / f"people-{node}.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in csv_rows(sim.people, node))
        report = import_persons(world, path, region=PROVINCE[node], now=sim.clock.now(),
                                error_report_path=folder / f"people-{node}.errors.csv")
        if report.rejected:
            raise SbcardError("sim.population", f"{report.rejected} people of {node} were refused by the registry: "
                              f"see {report.error_report}")
        sim.step(60)


def _home_outlet(sim: Simulation, person: Any) -> str:
    outlets = sim.state["outlets"][person.node]
    here = [o["code"] for o in outlets if o["district"] == person.district]
    if here:
        return here[0]
    rng = random.Random(f"{sim.options.seed}/home-outlet/{person.idx}")
    return outlets[rng.randrange(len(outlets))]["code"]


def _receive(sim: Simulation, world: Any, outlet: str, count: int) -> None:
    node = outlet[:2].lower()
    queue = sim.state["stock"].setdefault(outlet, [])
    while count > 0:
        n = min(count, DELIVERY_MAX)
        made = stock.receive_stock(world.region(node), outlet=outlet, count=n, operator=sim.counter_op(node),
                                   now=sim.clock.now(), cards_dir=world.paths.cards_dir.absolute(),
                                   make_blank=create_blank)
        queue.extend(made["chip_serials"])
        count -= n


def stock_level(population: int) -> int:
    """The blanks an outlet keeps: a day's instant applications and replacements at one outlet are
    about 4 in 10,000 people (the few without a card, a third of them applying on a day)."""
    return max(STOCK_BUFFER, population // PEOPLE_PER_BLANK)


def _stock(sim: Simulation, world: Any) -> None:
    """Blanks for the counters' instant issuance (the set-up's cards come from the factory)."""
    for node in REGION_NODES:
        for o in sim.state["outlets"][node]:
            _receive(sim, world, o["code"], stock_level(sim.options.population))


def restock(sim: Simulation, *, below: int, to: int) -> None:
    """Each night, outlets low on blanks get a delivery."""
    assert sim.world is not None
    for node in REGION_NODES:
        for o in sim.state["outlets"][node]:
            have = len(sim.state["stock"].get(o["code"]) or [])
            if have < below:
                _receive(sim, sim.world, o["code"], to - have)


def _install(home: Path):
    def install(row: dict[str, Any], keys: Any, blacklist: Any) -> None:
        config = TerminalConfig(
            terminal_id=row["id"], operator=row["operator"], node=row["node"], terminal_no=row["terminal_no"],
            psam_id=row["psam_id"], created_at=row["created_at"], station=row["station"],
            station_code=row["station_code"], gate=row["gate"], line=row["line"], area=row["area"],
            full_fare_fen=row["full_fare_fen"],
        )
        key_sets = [PsamKeySet(k.issuer_id, k.purchase_master, k.app_maintenance_master, Algorithm(k.algorithm),
                               k.version) for k in keys]
        state = TerminalState.create(Path(home) / "terminals" / row["id"], config, key_sets,
                                     upload_key=psam_upload_key(row.get("upload_key")),
                                     host_credential=row.get("host_credential"))
        with state:
            uploads.install_lists(state, blacklist, synced_at=row["synced_at"])

    return install


def _terminals(sim: Simulation, world: Any) -> None:
    install = _install(sim.home)
    for network, stations in METRO.items():
        for station in stations:
            row = register.add_terminal(world, operator=network, station=station, gate="both", now=sim.clock.now(),
                                         install=install)
            sim.state["terminals"][f"{network}/{station}"] = row["id"]
            sim.state["all_terminals"][row["id"]] = row["node"]
    for network, lines in BUS_LINES.items():
        for line in lines:
            row = register.add_terminal(world, operator=network, line=line, now=sim.clock.now(), install=install)
            sim.state["terminals"][f"{network}/{line}"] = row["id"]
            sim.state["all_terminals"][row["id"]] = row["node"]


def _venue_gates(sim: Simulation, world: Any) -> None:
    install = _install(sim.home)
    for code, place in sorted(venues().items()):
        row = venue_gates.add_gate(world, place, now=sim.clock.now(), install=install)
        sim.state["gates"][code] = row["id"]
        sim.state["all_terminals"][row["id"]] = row["node"]


def _issue_cards(sim: Simulation, holders: list[Any], where: dict[int, str]) -> None:
    """The cards people hold when the run starts: made in production batches (批量制卡) and
    handed over at the outlet near each holder's home, who set their PIN there.

    Each region's batches are its own: the batch production service checks every holder
    as an application, prepares the cards, has the factory machine personalise the chips
    (``terminals.apps.factory``) and records the cards active, while the hub's link is
    quiet: each batch's message to the hub waits in its region's outbox until 20:00, when
    they are delivered region by region. So the three regions' work is independent of each
    other and of its order, and runs in a process per region when there is enough of it
    (the same databases either way).
    """
    day = sim.clock.now().date()
    jobs: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {node: [] for node in REGION_NODES}
    by_outlet: dict[str, list[Any]] = {}
    for person in holders:
        by_outlet.setdefault(where[person.idx], []).append(person)
    for outlet in sorted(by_outlet):
        people = by_outlet[outlet]
        for at in range(0, len(people), BATCH_SIZE):
            batch = [{"idx": p.idx, "citizen_id": p.citizen_id, "pin": p.pin,
                      "guardian_id": p.guardian_id if p.age_on(day) < MINOR_AGE else None}
                     for p in people[at:at + BATCH_SIZE]]
            jobs[outlet[:2].lower()].append((outlet, batch))
    options = sim.options.to_json()
    staff = sim.state["staff"]
    if len(holders) >= PARALLEL_FROM:
        with processes.worker_pool(len(REGION_NODES)) as pool:
            futures = {node: pool.submit(issue_region, str(sim.home), options, staff, jobs[node],
                                         sim.clock.now().isoformat(), parent=os.getpid())
                       for node in REGION_NODES}
            results = {node: futures[node].result() for node in REGION_NODES}
    else:
        results = {node: issue_region(str(sim.home), options, staff, jobs[node], sim.clock.now().isoformat(),
                                      world=sim.world)
                   for node in REGION_NODES}
    for node in REGION_NODES:
        done = results[node]
        sim.state["cards"].update(done["cards"])
        sim.tally.count("batch_produced", node, len(done["cards"]))
        for refusal in done["refused"]:
            sim.tally.count("batch_refused", node)
            key = f"batch_refused:{refusal['code']}"
            sim.refusals[key] = sim.refusals.get(key, 0) + 1
    sim.move_to(dt.datetime.combine(day, dt.time(20), BEIJING))
    assert sim.world is not None
    outbox.deliver_pending(sim.world, sim.clock.now())
    sim.progress(f"set-up: {sum(len(r['cards']) for r in results.values()):,} cards made in batches and handed over")


PARALLEL_FROM = 3000  # cards; below it the regions take turns in this process (no processes to start)
BATCH_SIZE = 2000  # cards per production batch (one outlet's)
MINOR_AGE = 16  # under it, the guardian applies (``sbcard.domain.eligibility``)
BATCH_START = dt.time(8)
BATCH_STEP_S = 600  # simulated time between two batches of a region


def issue_region(home: str, options: dict[str, Any], staff: dict[str, Any], jobs: list[tuple[str, list[dict]]],
                 start: str, *, world: Any = None, parent: int | None = None) -> dict[str, Any]:
    """One region's production batches (in this process, or in a worker of its own: ``parent`` is
    the simulation's process, whose death stops the worker at its next batch): what was made."""
    if parent is None:
        return _issue_region(home, staff, jobs, start, world=world, parent=None)
    with worker_lock(Path(home)):
        return _issue_region(home, staff, jobs, start, world=world, parent=parent)


def _issue_region(home: str, staff: dict[str, Any], jobs: list[tuple[str, list[dict]]], start: str, *,
                  world: Any, parent: int | None) -> dict[str, Any]:
    cards: dict[str, dict[str, Any]] = {}
    refused: list[dict[str, str]] = []
    if not jobs:
        return {"cards": cards, "refused": refused}
    day = dt.datetime.fromisoformat(start).date()
    at = dt.datetime.combine(day, BATCH_START, BEIJING)
    clock = SimClock(at)
    opened = world if world is not None else open_world(Path(home), clock)
    if world is None:
        tune(opened)
    try:
        with outbox.delivery_faults(lambda _node, _message: "lose"):
            for n, (outlet, batch) in enumerate(jobs):
                if parent is not None and os.getppid() != parent:
                    raise SystemExit(f"the simulation (process {parent}) is gone: this worker stops")
                node = outlet[:2].lower()
                requests = [batch_production.Request(p["citizen_id"], p["pin"], p["guardian_id"]) for p in batch]
                result = batch_production.produce(
                    opened, outlet=outlet, requests=requests, operator=staff[node]["counter"],
                    now=at + dt.timedelta(seconds=BATCH_STEP_S * n), cards_dir=opened.paths.cards_dir,
                    produce_card=produce_card)
                made = {c.citizen_id: c for c in result.cards}
                for p in batch:
                    card = made.get(p["citizen_id"])
                    if card is not None:
                        path = os.path.relpath(card.path, Path(home).absolute())  # relative, as blank_path's
                        cards[str(p["idx"])] = {"card": card.card_number, "path": path, "status": "active",
                                                "balance": 0}
                refused.extend(r.to_json() for r in result.refused)
    finally:
        if world is None:
            opened.close()
    return {"cards": cards, "refused": refused}
