"""The simulator's engine: one world, one clock, the day's plan carried out through the real services.

``Simulation(home, options).run()`` makes the world (``sbcard.sim.setup``) or resumes it
from its last checkpoint, then runs the days: each day the world is opened once, the
terminals' own states once, and every event of the plan (``sbcard.sim.plan``) is done in
its turn by its act (``sbcard.sim.acts``) as the CLI would do it — services with the
simulated clock's ``now``, terminal apps driving software cards through the in-process
reader (``terminals/drivers/emulator.py``): each card's image is read from its file once
and kept in memory between taps, and the card writes its file at each of its own commits,
as ever. The taps on transit validators are handed over (``sbcard.sim.tap_lane``) to
``sbcard.sim.validators``: in a big world a process of their own does them while the day
goes on. Then the night (``sbcard.sim.night``) and a checkpoint (``sbcard.sim.checkpoint``).

This module holds the run and the day loop, the clock's moves, the cards in the engine's
hands and the places people go; ``Simulation`` is made of its parts: ``Acts``, ``TapLane``
and ``Night`` (each in its module, each using the state set up here).

Determinism: time is ``SimClock``'s; every random choice comes from a
``random.Random`` seeded with the run's seed and a purpose (and the day): the
population, each day's plan, the faults, the cards' own randoms (their challenges and
purse randoms). The same seed and options give the same databases and the same summary.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs

from sbcard.clock import BEIJING, SimClock
from sbcard.domain.errors import SbcardError
from sbcard.services.exchange import outbox
from sbcard.sim import checkpoint, faults, heap, invariants, plan, setup
from sbcard.sim.acts import Acts
from sbcard.sim.night import Night
from sbcard.sim.population import Person, make_population
from sbcard.sim.progress import Listener, Metronome
from sbcard.sim.tally import Tally
from sbcard.sim.tap_lane import PendingTap, TapLane
from sbcard.sim.tuning import tune
from sbcard.sim.validators import CardImages, Validators
from sbcard.store.world import REGION_NODES, World, open_world
from terminals.apps.terminal_state import TerminalState

START = dt.date(2025, 3, 3)  # a Monday: day 1 of every run (the set-up is the day before)
TAP_WORKER_FROM = 5_000  # people: from here the day's taps are done in a process of their own

Progress = Callable[[str], None]


@attrs.frozen
class Options:
    population: int
    days: int
    seed: int
    faults: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {"population": self.population, "days": self.days, "seed": self.seed, "faults": self.faults}


class Simulation(Acts, TapLane, Night):
    """One run of the world under ``home`` (see the module doc)."""

    def __init__(self, home: Path, options: Options, *, progress: Progress | None = None,
                 people: list[Person] | None = None, tap_worker: bool | None = None,
                 beat: Listener | None = None) -> None:
        self.home = Path(home)
        self.home_dir = self.home.absolute()
        self.options = options
        self.profile = faults.profile(options.faults)
        self.progress = progress or (lambda _line: None)
        self.metronome = Metronome(beat) if beat is not None else None  # where the day stands (sim.progress)
        self.people: list[Person] = (people if people is not None
                                     else make_population(options.population, options.seed, START))
        self.clock = SimClock(dt.datetime.combine(START - dt.timedelta(days=1), dt.time(7), BEIJING))
        self.tally = Tally()
        self.state: dict[str, Any] = {}
        self.settlements: list[dict[str, Any]] = []
        self.invariants: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.refusals: dict[str, int] = {}  # "<kind>_refused:<code>" → how many (not part of the summary)
        # per day
        self.world: World | None = None
        self.day_no = 0
        self.fault_plan = faults.FaultPlan(self.profile, options.seed, 0)
        self._terminal_states: dict[str, Any] = {}
        self._gates: dict[str, Any] = {}
        self._claims_today: list[dict[str, Any]] = []
        self._night_memory: Any = None  # what the invariants read on earlier nights (sim.invariants.Memory)
        self._touched: set[str] = set()  # card files opened since the last checkpoint (the others are unchanged)
        self.cards = CardImages(before_load=self._own)  # the cards powered here (not on validators)
        self._hosts: dict[tuple[str, str, bool], Any] = {}  # the day's purse hosts (``_purse_host``)
        # taps: on validators in a process of their own in a big world (``sim.validators``)
        self.tap_worker = options.population >= TAP_WORKER_FROM if tap_worker is None else tap_worker
        self._lane: Any = None
        self._buses: Validators | None = None  # the evening's bus validators, the engine's own
        self._tap_seq = 0
        self._pending: deque[PendingTap] = deque()  # taps handed over, outcome not applied yet (in order)
        self._last_tap: dict[Any, int] = {}  # card file, or ("who", person) → the last tap handed over
        self._lane_stale: set[str] = set()  # card files powered here since the validators last had them
        self._ahead: Any = None  # the night's card files read in a process of their own: (pool, result)

    # ================================================================ the run

    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Run (or resume) every day; the pieces of the summary. ``InvariantViolated`` stops it."""
        started = time.perf_counter()
        restored = checkpoint.restore(self.home, shared_cards=True) if resume else None
        if restored is None:
            checkpoint.start_fresh(self.home, self.options.to_json())
            t0 = time.perf_counter()
            setup.build(self)
            self.timings["setup_s"] = time.perf_counter() - t0
            self._touched = set()  # no checkpoint of the set-up: it is made again from the seed (start_fresh)
        else:
            self._load_checkpoint(restored)
        gc.freeze()  # the population and the world's state live for the run: the collector need not walk them
        first = self.state["day_done"] + 1
        with heap.for_the_days():
            for day_no in range(first, self.options.days + 1):
                t0 = time.perf_counter()
                self.run_day(day_no)
                self.timings[f"day{day_no}_s"] = time.perf_counter() - t0
                self._checkpoint(day_no)
                if day_no < self.options.days:
                    heap.between_days()
        self.timings["elapsed_s"] = time.perf_counter() - started
        return self.result()

    def result(self) -> dict[str, Any]:
        return {
            "tally": self.tally,
            "settlements": self.settlements,
            "invariants": self.invariants,
            "faults": self.tally.faults,
            "timings": self.timings,
        }

    def day_date(self, day_no: int) -> dt.date:
        return START + dt.timedelta(days=day_no - 1)

    # ================================================================ days

    @contextmanager
    def opened(self, day_no: int) -> Iterator[World]:
        """The world, the terminals and the day's random sources, open for one day."""
        self.day_no = day_no
        self.cards.rng = random.Random(f"{self.options.seed}/cards/{day_no}")
        self.fault_plan = faults.FaultPlan(self.profile, self.options.seed, day_no, counted=self.tally.fault)
        with ExitStack() as stack:
            self.world = stack.enter_context(open_world(self.home, self.clock))
            self._hosts = {}
            tune(self.world)
            stack.callback(self._close_terminals)
            stack.callback(self._abort_taps)
            stack.callback(self._drop_read_ahead)
            if self.fault_plan.active:
                stack.enter_context(outbox.delivery_faults(self.fault_plan.message))
            try:
                yield self.world
            finally:
                self.world = None

    def run_day(self, day_no: int) -> None:
        day = self.day_date(day_no)
        self.move_to(dt.datetime.combine(day, dt.time(0, 1), BEIJING))
        self.progress(f"day {day_no}/{self.options.days} ({day.isoformat()})")
        with self.opened(day_no):
            outage = self.fault_plan.outage(day, BEIJING, tuple(REGION_NODES))
            subsidies = day_no == 1 or day.day == 1
            events = plan.day_plan(seed=self.options.seed, day_no=day_no, day=day, tz=BEIJING, people=self.people,
                                   book=self._card_book(), subsidies=subsidies, outage=outage)
            self._claims_today = []
            self._claim_rng = random.Random(f"{self.options.seed}/refunds/{day_no}")
            self._loads_rng = random.Random(f"{self.options.seed}/loads/{day_no}")
            handlers = self._handlers()
            metronome = self.metronome
            if metronome is not None:
                metronome.start_day(day_no, self.options.days, len(events))
            for done, event in enumerate(events):
                self.move_to(event.at)
                if metronome is not None and metronome.due(event.at):
                    metronome.beat(event.at, done, self.tally.total)
                if self._pending and event.kind != "tap" and event.who >= 0:
                    self._taps_done(("who", event.who))
                handlers[event.kind](event)
            self._close_lane()
            self._read_cards_ahead()
            self.night(day, day_no)
        self.state["day_done"] = day_no

    def _refused(self, kind: str, node: str, error: BaseException | None = None) -> None:
        """A service (or card) said no: counted, and why kept for whoever looks (``refusals``)."""
        self.tally.count(kind, node)
        code = getattr(error, "code", None) or (type(error).__name__ if error is not None else "none")
        self.refusals[f"{kind}:{code}"] = self.refusals.get(f"{kind}:{code}", 0) + 1

    def move_to(self, at: dt.datetime) -> None:
        """The clock moved on to ``at`` (never back)."""
        now = self.clock.now()
        if at > now:
            self.clock.advance(at - now)

    def step(self, seconds: int) -> dt.datetime:
        """The next step of one visit (the activation after the issuance, the load after the deposit).

        Here people act one after another where the real world has them act at once, so a
        visit's steps move the clock on by milliseconds (one per second they would take): the
        events of the day's plan happen at their own time, not later and later as the day goes.
        """
        return self.clock.advance(dt.timedelta(milliseconds=seconds))

    def _handlers(self) -> dict[str, Callable[[plan.Event], None]]:
        return {
            "tap": self.on_tap,
            "apply": self.on_apply,
            "medical": self.on_medical,
            "medical_refund": self.on_medical_refund,
            "venue": self.on_venue,
            "borrow": self.on_borrow,
            "return": self.on_return,
            "lost": self.on_lost,
            "replace": self.on_replace,
            "unblock": self.on_unblock,
            "finder_tap": self.on_finder_tap,
            "subsidy": self.on_subsidy,
            "link_down": self.on_link_down,
            "link_up": self.on_link_up,
        }

    def _card_book(self) -> plan.CardBook:
        holders, lost = set(), {}
        for key, card in self.state["cards"].items():
            idx = int(key)
            if card["status"] == "active":
                holders.add(idx)
            elif card["status"] == "lost":
                lost[idx] = {"card": card["card"], "kind": card.get("loss_kind") or "formal"}
        without = {p.idx for p in self.people if str(p.idx) not in self.state["cards"]}
        return plan.CardBook(holders=holders, without=without, lost=lost, loans=list(self.state["loans"]))

    # ================================================================ cards and readers

    def reader(self, path: str | Path, tear: int | None = None) -> Any:
        """An in-process reader with the card whose file is ``path`` (from the home) in it.

        The taps handed over on the card are done first; the validators will read it afresh.
        """
        path = self.home_dir / path
        key = str(path)
        if self._pending:
            self._taps_done(key)
        self._lane_stale.add(key)
        return self.cards.reader(path, tear)

    def _own(self, key: str) -> None:
        """A card file about to be written is made its own (``_own_file``) once per checkpoint."""
        if key not in self._touched:
            _own_file(key)
            self._touched.add(key)

    def card_of(self, idx: int) -> dict[str, Any] | None:
        return self.state["cards"].get(str(idx))

    # ================================================================ staff and places

    def counter_op(self, node: str) -> str:
        return self.state["staff"][node]["counter"]

    def outlet_near(self, person: Person, node: str | None = None, *, rng: random.Random | None = None) -> str:
        """An outlet with blanks near the person (their district's, else one of ``node``'s)."""
        node = node or person.node
        stock = self.state["stock"]
        if node == person.node:
            here = [o for o in self.state["outlets"][node] if o["district"] == person.district and stock.get(o["code"])]
            if here:
                return here[0]["code"]
        options = [o["code"] for o in self.state["outlets"][node] if stock.get(o["code"])]
        if not options:
            options = [o["code"] for o in self.state["outlets"][node]]
        pick = rng or random.Random(f"{self.options.seed}/outlet/{person.idx}/{self.day_no}")
        return options[pick.randrange(len(options))]

    def bank_branch(self, node: str, person: Person) -> str:
        branches = [o["code"] for o in self.state["outlets"][node] if o["kind"] == "bank_branch"]
        return branches[person.idx % len(branches)]

    def take_blank(self, outlet: str) -> str | None:
        """The next blank in ``outlet``'s stock (it leaves the queue once used): its file, from the home."""
        queue = self.state["stock"].get(outlet) or []
        if not queue:
            return None
        return setup.blank_path(outlet, queue[0])

    def blank_used(self, outlet: str) -> None:
        self.state["stock"][outlet].pop(0)


    # ================================================================ taps

    def _terminal_state(self, terminal_id: str) -> Any:
        state = self._terminal_states.get(terminal_id)
        if state is None:
            state = self._terminal_states[terminal_id] = TerminalState.open(self.home / "terminals" / terminal_id)
        return state

    def _close_terminals(self) -> None:
        states, self._terminal_states = self._terminal_states, {}
        self._gates = {}
        for state in states.values():
            state.close()


    # ================================================================ checkpoints

    def _checkpoint(self, day_no: int) -> None:
        self.state["day_done"] = day_no
        touched, self._touched = self._touched, set()
        checkpoint.save(self.home, day_no, touched=touched, shared_cards=True, data={
            "options": self.options.to_json(),
            "day_done": day_no,
            "clock": self.clock.now().isoformat(),
            "tally": self.tally.to_json(),
            "settlements": self.settlements,
            "invariants": {name: attrs.asdict(r) for name, r in self.invariants.items()},
            "state": self.state,
        })

    def _load_checkpoint(self, saved: dict[str, Any]) -> None:
        if saved["options"] != self.options.to_json():
            raise SbcardError("sim.resume_options", "the checkpoint was made with other options: "
                              f"{saved['options']}")
        self.tally = Tally.from_json(saved["tally"])
        self.settlements = saved["settlements"]
        self.invariants = {name: invariants.Result(**r) for name, r in saved["invariants"].items()}
        self.state = saved["state"]
        self.clock = SimClock(dt.datetime.fromisoformat(saved["clock"]))


def _own_file(path: str) -> None:
    """Before a card's first write since the last checkpoint, its file becomes its own again.

    A checkpoint links the world's card files instead of copying them (``checkpoint.save``),
    and a card writes its file in place; so a file still shared with a checkpoint is copied
    and the copy put in its place (one rename) before the card may write it.
    """
    if os.stat(path).st_nlink > 1:
        shutil.copyfile(path, path + ".own")
        os.replace(path + ".own", path)

