"""The simulator's engine: one world, one clock, the day's plan carried out through the real services.

``Simulation(home, options).run()`` makes the world (``sbcard.sim.setup``) or resumes it
from its last checkpoint, then runs the days: each day the world is opened once, the
terminals' own states once, and every event of the plan (``sbcard.sim.plan``) is done as
the CLI would do it — services with the simulated clock's ``now``, terminal apps
(counter, load terminal, validator, point of sale, venue gate) driving software cards
through the in-process reader (``terminals/drivers/emulator.py``): each card's image is
read from its file once and kept in memory between taps, and the card writes its file at
each of its own commits, as ever. The taps on transit validators are handed to
``sim.validators``: in a big world a process of their own does them while the day goes on,
and each tap's outcome is applied here at a point the plan fixes (the rider's next event,
the card's next use, the night), so the run is the same either way. At night: terminals upload their
logs, messages are delivered, offline medical claims reconciled, temporary losses
lapsed, outlets restocked, terminals synced with the blacklist; then the clearing and
settlement of the day (``services.clearing.purse_records`` / ``services.clearing.settlement``), the invariants
(``sim.invariants``: a violation stops the run) and a checkpoint (``sim.checkpoint``).

Determinism: time is ``SimClock``'s; every random choice comes from a
``random.Random`` seeded with the run's seed and a purpose (and the day): the
population, each day's plan, the faults, the cards' own randoms (their challenges and
purse randoms). The same seed and options give the same databases and the same summary.
"""

from __future__ import annotations

import datetime as dt
import functools
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

from sbcard.chip.reader import CardIOError, ReaderError
from sbcard.chip.sw import CardStatus
from sbcard.clock import BEIJING, SimClock
from sbcard.domain.errors import SbcardError
from sbcard.sim import checkpoint, faults, heap, plan, setup
from sbcard.sim.validators import (
    CardImages,
    TapOutcome,
    TapRequest,
    TerminalRelease,
    Validators,
    closed_reader,
    engine_taps,
    open_lane,
)
from sbcard.sim.population import Person, make_population
from sbcard.sim.progress import Listener, Metronome
from sbcard.sim.tally import Tally
from sbcard.store.world import REGION_NODES, World, open_world

START = dt.date(2025, 3, 3)  # a Monday: day 1 of every run (the set-up is the day before)
LOW_BALANCE_FEN = 1200  # below this a rider loads the purse before setting off
LOAD_AMOUNTS_FEN = (5000, 10000, 10000, 20000)
PROVINCE = {"bj": "110000", "tj": "120000", "he": "130000"}
SIM_RUNNER = ("sbcard-simulate", 0)  # who the subsidy pay's lease and audit name: the same in every run
RESTOCK_BELOW, RESTOCK_TO = 4, 8  # each night an outlet low on blanks gets a delivery

Progress = Callable[[str], None]


@attrs.frozen
class Options:
    population: int
    days: int
    seed: int
    faults: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {"population": self.population, "days": self.days, "seed": self.seed, "faults": self.faults}


class InvariantViolated(Exception):
    def __init__(self, day: dt.date, report: str) -> None:
        super().__init__(report)
        self.day, self.report = day, report


TAP_WORKER_FROM = 5_000  # people: from here the day's taps are done in a process of their own


@attrs.define
class PendingTap:
    """A tap handed to the validators: what the engine needs to apply its outcome."""

    who: int  # the rider (a finder's tap: the holder who lost the card)
    card: dict[str, Any]  # the card as the run knows it (its balance is kept up to date)
    terminal_id: str
    km: str | None
    node: str  # the validator's region
    leg: str | None  # entry | exit | ride; None: a finder's tap on a lost card
    network: str
    hour: int  # of the tap, Beijing time
    retry: bool = False  # insufficient: load and tap again (the rider waited for the answer)
    seq: int = 0


class Simulation:
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
        from sbcard.services.exchange import outbox

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
        self._move_to(dt.datetime.combine(day, dt.time(0, 1), BEIJING))
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
                self._move_to(event.at)
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

    def _move_to(self, at: dt.datetime) -> None:
        now = self.clock.now()
        if at > now:
            self.clock.advance(at - now)

    def _step(self, seconds: int) -> dt.datetime:
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

    # ================================================================ issuance

    def issue_new_card(self, person: Person, outlet: str) -> dict[str, Any] | None:
        """Apply, issue on a blank of ``outlet`` and activate: a card for ``person`` (or None, refused)."""
        from sbcard.services.cards import issuance

        assert self.world is not None
        node_outlet = outlet[:2].lower()
        op = self.counter_op(node_outlet)
        guardian = person.guardian_id if person.age_on(self.clock.now().date()) < 16 else None
        try:
            application = issuance.apply(self.world, citizen_id=person.citizen_id, outlet=outlet, operator=op,
                                         now=self.clock.now(), guardian_id=guardian)
        except SbcardError as refused:
            self._refused("apply_refused", person.node, refused)
            return None
        self.tally.count("apply", person.node)
        return self._issue_and_activate(person, application["application_id"], outlet, op,
                                        step=90)

    def _issue_and_activate(self, person: Person, application_id: str, outlet: str, op: str, *,
                            step: int, replace: Any = None) -> dict[str, Any] | None:
        from sbcard.services.cards.activation import ActivationDesk
        from sbcard.services.cards.issuance import IssuanceDesk
        from terminals.apps import counter

        assert self.world is not None
        path = self.take_blank(outlet)
        if path is None:
            self._refused("issue_refused", person.node, None)
            return None
        self._step(step)
        reader = self.reader(path)
        try:
            if replace is not None:
                replace.check_blank(counter.chip_info(reader))
                desk = replace.issuance_desk()
            else:
                desk = IssuanceDesk(self.world, application_id, operator=op, now=self.clock.now())
            outcome = counter.issue(reader, desk)
        except (SbcardError, CardStatus, CardIOError, ReaderError) as refused:
            self._refused("issue_refused" if replace is None else "replace_refused", person.node, refused)
            return None
        finally:
            closed_reader(reader)
        self.blank_used(outlet)
        record = outcome.record
        number = record["card_number"]
        self.tally.count("issue", person.node)
        card = {"card": number, "path": path, "status": "issued", "balance": 0}
        self.state["cards"][str(person.idx)] = card
        self._step(step)
        try:
            desk = ActivationDesk(self.world, number, operator=op, now=self.clock.now())
            reader = self.reader(path)
            try:
                counter.activate(reader, desk, person.pin)
            finally:
                closed_reader(reader)
        except (SbcardError, CardStatus, CardIOError, ReaderError) as refused:
            self._refused("activate_refused", person.node, refused)
            return card
        card["status"] = "active"
        self.tally.count("activate", person.node)
        return card

    def on_apply(self, event: plan.Event) -> None:
        person = self.people[event.who]
        if self.card_of(person.idx) is not None:
            return
        self.issue_new_card(person, self.outlet_near(person))

    # ================================================================ loads

    def load(self, person: Person, card: dict[str, Any], where: str) -> bool:
        """Load the purse at an outlet's load terminal in ``where``: from the card's account, or, if it is
        short, paid in cash at the counter (现金充值; at another region's counter, which takes no cash for
        this card, cash into the account at a bank branch at home first)."""
        from sbcard.services.accounts import cash, ledger
        from terminals.apps import loader

        assert self.world is not None
        rng = self._loads_rng
        amount = LOAD_AMOUNTS_FEN[rng.randrange(len(LOAD_AMOUNTS_FEN))]
        if card.get("balance") is not None and card["balance"] + amount > 100_000:
            amount = max(0, 100_000 - card["balance"]) // 100 * 100
            if amount <= 0:
                return False
        db = self.world.region(person.node)
        account = ledger.account_of_card(db, card["card"])
        if account is None:
            return False
        outlet = self.outlet_near(person, where, rng=rng)
        in_cash = ledger.balance(db, account) < amount
        if in_cash and outlet[:2].lower() != card_node(card):
            in_cash = False
            deposit = (amount // 10000 + 2) * 10000
            try:
                cash.deposit(self.world, card_number=card["card"], amount_fen=deposit,
                             operator=self.counter_op(person.node), outlet=self.bank_branch(person.node, person),
                             now=self._step(30))
                self.tally.count("deposit", person.node)
            except SbcardError as refused:
                self._refused("deposit_refused", person.node, refused)
                return False
        terminal_no = load_terminal_no(outlet)
        op = self.counter_op(where)
        tear = self.fault_plan.tear_load()
        for attempt in range(2):
            self._step(40)
            host = self._purse_host(op, outlet, in_cash)
            reader = self.reader(card["path"], tear if attempt == 0 else None)
            try:
                outcome = loader.load(reader, host, amount, terminal_no)
            except CardIOError:
                self.tally.fault("torn_load")
                closed_reader(reader)
                self._recover_load(card, op, outlet, terminal_no)
                continue
            except (SbcardError, CardStatus, ReaderError) as refused:
                self._refused("load_refused", person.node, refused)
                return False
            finally:
                closed_reader(reader)
            card["balance"] = outcome.balance_fen
            self.tally.count("load", person.node)
            return True
        return False

    def _purse_host(self, operator: str, outlet: str, cash: bool) -> Any:
        """The issuers' host for a load terminal at ``outlet`` now (opened once a day per operator, outlet and till)."""
        from sbcard.services.transit.purse_host import PurseHost

        key = (operator, outlet, cash)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = PurseHost(self.world, operator=operator, outlet=outlet, now=self.clock.now(),
                                                cash=cash)
        return host.at(self.clock.now())

    def _recover_load(self, card: dict[str, Any], op: str, outlet: str, terminal_no: bytes) -> None:
        """``transit recover`` at the counter: the torn load confirmed or reversed from what the card says."""
        from terminals.apps import loader

        assert self.world is not None
        self._step(20)
        reader = self.reader(card["path"])
        try:
            outcome = loader.recover(reader, self._purse_host(op, outlet, False), terminal_no)
            card["balance"] = outcome.balance_fen
            self.tally.count("load_recovered", card_node(card))
        except (SbcardError, CardStatus, CardIOError, ReaderError):
            self.tally.count("load_unrecovered", card_node(card))
        finally:
            closed_reader(reader)

    # ================================================================ taps

    def _terminal_state(self, terminal_id: str) -> Any:
        state = self._terminal_states.get(terminal_id)
        if state is None:
            from terminals.apps.terminal_state import TerminalState

            state = self._terminal_states[terminal_id] = TerminalState.open(self.home / "terminals" / terminal_id)
        return state

    def _close_terminals(self) -> None:
        states, self._terminal_states = self._terminal_states, {}
        self._gates = {}
        for state in states.values():
            state.close()

    def on_tap(self, event: plan.Event) -> None:
        person = self.people[event.who]
        data = event.data
        leg = data["leg"]
        if self._pending and leg != "exit":
            self._taps_done(("who", person.idx))  # what the rider knows before setting off: the balance
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        # An exit is tapped only if the rider got in: the validators know (``sim.validators``).
        terminal_id = self.state["terminals"][f"{data['network']}/{data['stop']}"]
        node = data["network"].split("-", 1)[0]
        if leg != "exit" and (card.get("balance") is None or card["balance"] < LOW_BALANCE_FEN):
            self.load(person, card, node)
            self._move_to(event.at + dt.timedelta(seconds=1))
        # Short of money even so (a refused load): the rider waits at the gate for the answer,
        # to load and tap again if it says so; otherwise the rider walks on.
        waits = leg != "exit" and (card.get("balance") is None or card["balance"] < LOW_BALANCE_FEN)
        self.hand_tap(PendingTap(person.idx, card, terminal_id, data.get("km"), node, leg, data["network"],
                                 self.clock.now().hour, retry=waits))
        if waits:
            self._taps_done(("who", person.idx))

    def hand_tap(self, tap: PendingTap) -> None:
        """The card tapped on the validator (in the validators' lane); its outcome is applied later.

        An evening bus tap is done here at once (``sim.validators.engine_taps``).
        """
        key = str(self.home_dir / tap.card["path"])
        self._own(key)
        tear = self.fault_plan.tear_purchase()
        if engine_taps(tap.network, self.clock.now()):
            self._tap_here(tap, key, tear)
            return
        self.cards.forget(key)  # the validators change it
        fresh = key in self._lane_stale
        self._lane_stale.discard(key)
        self._tap_seq += 1
        tap.seq = self._tap_seq
        request = TapRequest(self._tap_seq, key, tap.terminal_id, tap.km, tear, self.clock.now(), fresh, tap.who,
                             tap.leg, tap.network)
        self._pending.append(tap)
        self._last_tap[key] = self._last_tap[("who", tap.who)] = self._tap_seq
        if self._lane is None:
            self._lane = open_lane(self.tap_worker, self.home_dir, self.options.seed, self.day_no, self.clock.now())
        self._lane.submit(request)

    def _tap_here(self, tap: PendingTap, key: str, tear: int | None) -> None:
        """A tap on one of the engine's own validators: the card's taps at the worker first, then this one."""
        if self._pending:
            self._taps_done(key)
        if self._buses is None:
            self._release_buses()
            self._buses = Validators(self.home_dir, self.options.seed, self.day_no, self.clock.now(),
                                     cards=self.cards, clock=self.clock)
        self._lane_stale.add(key)
        self._tap_seq += 1
        tap.seq = self._tap_seq
        outcome = self._buses.tap(TapRequest(self._tap_seq, key, tap.terminal_id, tap.km, tear, self.clock.now(),
                                             False, tap.who, tap.leg, tap.network))
        self._apply_tap(tap, outcome)

    def _release_buses(self) -> None:
        """The worker closes the bus validators it opened today (waiting for it to get there), for the engine to open."""
        if self._lane is None:
            return
        buses = tuple(sorted(terminal_id for stop, terminal_id in self.state["terminals"].items()
                             if engine_taps(stop.split("/", 1)[0], self.clock.now())))
        self._tap_seq += 1
        self._lane.submit(TerminalRelease(self._tap_seq, buses))
        self._lane.outcome(self._tap_seq)

    def _taps_done(self, whose: Any) -> None:
        """The outcomes of the taps handed over up to the last on a card file (or ("who", person)), applied in order."""
        last = self._last_tap.get(whose)
        if last is not None:
            self._apply_taps(last)

    def _apply_taps(self, last: int | None = None) -> None:
        """The outcomes of the taps handed over up to ``last`` (a seq; None: all), in the order handed over."""
        while self._pending and (last is None or self._pending[0].seq <= last):
            tap = self._pending.popleft()
            self._apply_tap(tap, self._lane.outcome(tap.seq))

    def _close_lane(self) -> None:
        """Before the night: every tap's outcome applied, the validators closed (their logs go up)."""
        self._apply_taps()
        self._last_tap.clear()
        self._lane_stale.clear()
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.close()
        buses, self._buses = self._buses, None
        if buses is not None:
            buses.close()

    def _abort_taps(self) -> None:
        lane, self._lane = self._lane, None
        self._pending.clear()
        self._last_tap.clear()
        if lane is not None:
            lane.abort()
        buses, self._buses = self._buses, None
        if buses is not None:
            buses.close()

    def _apply_tap(self, tap: PendingTap, outcome: TapOutcome) -> None:
        if outcome.skipped:
            return  # an exit of a rider who never got in
        if outcome.torn:
            self.tally.fault("torn_purchase")
        if outcome.recovered:
            self.tally.fault("torn_purchase_recovered")
        node = tap.node
        if outcome.ok:
            self.tally.tap(node, tap.hour)
        else:
            self._refused("tap_refused", node, outcome)
        if tap.leg is None:  # a finder's tap on a lost card
            self.tally.count("finder_tap", node)
            return
        card = tap.card
        if outcome.balance_fen is not None:
            card["balance"] = outcome.balance_fen
        if outcome.ok:
            return
        if outcome.code == "insufficient_balance" and tap.retry:
            if self.load(self.people[tap.who], card, node):
                self.hand_tap(attrs.evolve(tap, retry=False))
                self._taps_done(("who", tap.who))
        elif outcome.code in ("blacklisted", "blocked"):
            self.tally.count("blocked_card", node)

    def on_finder_tap(self, event: plan.Event) -> None:
        """Someone who found a lost card tries it on a bus of its region."""
        lost = self.state["lost_cards"].get(str(event.who))
        if lost is None:
            return
        node = card_node(lost)
        network = {"bj": "bj-bus", "tj": "tj-bus", "he": "he-sjz-bus"}[node]
        stops = sorted(k for k in self.state["terminals"] if k.startswith(network + "/"))
        terminal_id = self.state["terminals"][stops[event.who % len(stops)]]
        card = {"card": lost["card"], "path": lost["path"]}
        self.hand_tap(PendingTap(event.who, card, terminal_id, "3" if network == "bj-bus" else None, node, None,
                                 network, self.clock.now().hour))

    # ================================================================ medical

    def on_medical(self, event: plan.Event) -> None:
        from sbcard.reference import medical as medical_reference
        from sbcard.domain.medical import ClaimLine
        from sbcard.services.medical.routing import PosHost
        from sbcard.services.medical.routing import hospital_node as node_of_hospital
        from terminals.apps.medical import PointOfSale

        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        data = event.data
        hospital = medical_reference.hospital(data["hospital"])
        where = node_of_hospital(hospital)
        lines = [ClaimLine(line["code"], line["quantity"], line["price_fen"]) for line in data["lines"]]
        pos = PointOfSale(PosHost(self.world, now=self.clock.now()), medical_reference, self.clock, hospital.code)
        reader = self.reader(card["path"])
        try:
            receipt = pos.settle(reader, lines, pin=person.pin if data["use_account"] else None,
                                 self_pay=data["self_pay"], visit="emergency" if data["emergency"] else "")
        except (SbcardError, CardStatus, CardIOError, ReaderError) as refused:
            self._refused("medical_refused", where, refused)
            return
        finally:
            closed_reader(reader)
        self.tally.count("medical_claim", where)
        if receipt["mode"] == "offline":
            self.tally.count("medical_offline", where)
        self.tally.medical(receipt["insured_node"], where, receipt["total_fen"])
        if receipt["status"] == "settled":
            self._claims_today.append({"claim_id": receipt["claim_id"], "insured": receipt["insured_node"],
                                       "hospital": where, "total_fen": receipt["total_fen"]})

    def on_medical_refund(self, _event: plan.Event) -> None:
        from sbcard.services.medical import routing as route

        assert self.world is not None
        if not self._claims_today:
            return
        claim = self._claims_today.pop(self._claim_rng.randrange(len(self._claims_today)))
        try:
            route.refund(self.world, claim["claim_id"], None, now=self.clock.now())
        except SbcardError as refused:
            self._refused("medical_refund_refused", claim["hospital"], refused)
            return
        self.tally.count("medical_refund", claim["hospital"])
        self.tally.medical(claim["insured"], claim["hospital"], -claim["total_fen"], n=0)

    # ================================================================ venues and libraries

    def gate(self, venue_code: str) -> Any:
        found = self._gates.get(venue_code)
        if found is None:
            from sbcard.services.venues.gates import GateHost
            from sbcard.reference.venues import venue
            from terminals.apps.venue import VenueGate

            assert self.world is not None
            place = venue(venue_code)
            state = self._terminal_state(self.state["gates"][venue_code])
            found = self._gates[venue_code] = VenueGate(state, state.psam(), self.clock, GateHost(self.world, place),
                                                        place)
        return found

    def on_venue(self, event: plan.Event) -> None:
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        gate = self.gate(event.data["venue"])
        node = gate.venue.node
        if card.get("balance") is not None and card["balance"] < gate.venue.price_fen:
            self.load(person, card, node)
            self._move_to(event.at + dt.timedelta(seconds=1))
        shown = frozenset({"elderly_card"} if event.data.get("elderly_card") else ())  # the 养老助残卡 shown
        reader = self.reader(card["path"], self.fault_plan.tear_purchase())
        try:
            result = gate.enter(reader, student=event.data["student"], shown=shown)
        except CardIOError:
            self.tally.fault("torn_purchase")
            closed_reader(reader)
            self._step(5)
            reader = self.reader(card["path"])
            result = gate.enter(reader, student=event.data["student"], shown=shown)
        finally:
            closed_reader(reader)
        if result.balance_fen is not None:
            card["balance"] = result.balance_fen
        if result.ok:
            self.tally.count("venue_entry", node)
        else:
            self._refused("venue_refused", node, result)

    def _desk_card(self, person: Person, library: str) -> tuple[Any, Any, Any] | None:
        """The library's desk and the holder's card identified on it (None: refused)."""
        from terminals.apps.transit import Refused

        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return None
        desk = self.gate(library)
        reader = self.reader(card["path"])
        try:
            facts = desk.identify(reader)
        except (Refused, CardStatus, CardIOError, ReaderError) as refused:
            closed_reader(reader)
            self._refused("library_refused", desk.venue.node, refused)
            return None
        return desk, reader, facts

    def on_borrow(self, event: plan.Event) -> None:
        from sbcard.services.venues import gates as venue_gates

        assert self.world is not None
        person = self.people[event.who]
        found = self._desk_card(person, event.data["library"])
        if found is None:
            return
        desk, reader, facts = found
        closed_reader(reader)
        self.state["item_seq"] += 1
        item = f"{event.data['library']}-{self.state['item_seq']:07d}"
        try:
            done = venue_gates.borrow(self.world, desk.venue, citizen_id=facts.citizen_id,
                                      card_number=facts.card_number, item=item, now=self.clock.now())
        except SbcardError as refused:
            self._refused("library_refused", desk.venue.node, refused)
            return
        self.state["loans"].append({"who": person.idx, "library": desk.venue.code, "item": item,
                                    "due": done["due_date"]})
        self.tally.count("library_loan", desk.venue.node)

    def on_return(self, event: plan.Event) -> None:
        from sbcard.services.venues import gates as venue_gates
        from terminals.apps.transit import Refused

        assert self.world is not None
        person = self.people[event.who]
        loan = next((x for x in self.state["loans"] if x["item"] == event.data["item"]), None)
        if loan is None:
            return
        found = self._desk_card(person, event.data["library"])
        if found is None:
            return
        desk, reader, facts = found
        try:
            done = venue_gates.return_item(self.world, desk.venue, citizen_id=facts.citizen_id,
                                           card_number=facts.card_number, item=loan["item"], now=self.clock.now())
            if done["fine_fen"] > 0:
                owed = venue_gates.fines_owed(self.world, desk.venue, facts.citizen_id)
                amount = sum(f["amount_fen"] for f in owed)
                ids = [f["id"] for f in owed]
                try:
                    tap = desk.charge(reader, facts, amount, fine_ids=ids,
                                      description=f"overdue fines {', '.join(map(str, ids))}")
                    venue_gates.fines_paid(self.world, desk.venue, ids, terminal=desk.config.terminal_id,
                                           counter=tap.counter, terminal_serial=tap.terminal_serial, at=tap.at)
                    self.tally.count("library_fine", desk.venue.node)
                except Refused:
                    self.tally.count("library_fine_owed", desk.venue.node)
        except SbcardError as refused:
            self._refused("library_refused", desk.venue.node, refused)
            return
        finally:
            closed_reader(reader)
        self.state["loans"].remove(loan)
        self.tally.count("library_return", desk.venue.node)

    # ================================================================ the card's life

    def on_lost(self, event: plan.Event) -> None:
        from sbcard.services.cards import lifecycle

        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        channel = event.data["channel"]
        outlet = self.outlet_near(person) if channel == "counter" else None
        try:
            done = lifecycle.report_lost(self.world, card_number=card["card"], channel=channel,
                                         operator=self.counter_op(person.node), outlet=outlet, now=self.clock.now())
        except SbcardError as refused:
            self._refused("lost_refused", person.node, refused)
            return
        card["status"] = "lost"
        card["loss_kind"] = done["loss_kind"]
        self.state["lost_cards"][str(person.idx)] = {"card": card["card"], "path": card["path"]}
        self.tally.count("lost", person.node)

    def on_unblock(self, event: plan.Event) -> None:
        from sbcard.services.cards import lifecycle

        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "lost":
            return
        try:
            lifecycle.unblock(self.world, card_number=card["card"], operator=self.counter_op(person.node),
                              outlet=self.outlet_near(person), now=self.clock.now())
        except SbcardError as refused:
            self._refused("unblock_refused", person.node, refused)
            return
        card["status"] = "active"
        card.pop("loss_kind", None)
        self.state["lost_cards"].pop(str(person.idx), None)
        self.tally.count("unblock", person.node)

    def _card_found(self, card_number: str) -> None:
        """A temporary loss lapsed (never confirmed): the holder's card works again."""
        for key, card in self.state["cards"].items():
            if card["card"] == card_number and card["status"] == "lost":
                card["status"] = "active"
                card.pop("loss_kind", None)
                self.state["lost_cards"].pop(key, None)
                self.tally.count("loss_lapsed", card_node(card))

    def on_replace(self, event: plan.Event) -> None:
        from sbcard.services.cards.replacement import Replacement

        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "lost":
            return
        outlet = self.outlet_near(person)
        op = self.counter_op(outlet[:2].lower())
        try:
            guardian = person.guardian_id if person.age_on(self.clock.now().date()) < 16 else None
            job = Replacement(self.world, card["card"], operator=op, outlet=outlet, now=self.clock.now(),
                              guardian_id=guardian)
        except SbcardError as refused:
            self._refused("replace_refused", person.node, refused)
            return
        old = card["card"]
        new = self._issue_and_activate(person, "", outlet, op, step=90, replace=job)
        if new is None or new["card"] == old:
            self.state["cards"][str(person.idx)] = card  # nothing changed
            return
        self.tally.count("replace", person.node)

    # ================================================================ subsidies

    def on_subsidy(self, event: plan.Event) -> None:
        from sbcard.services.subsidies.batch_import import generate_batch
        from sbcard.services.subsidies.payment import approve, pay

        assert self.world is not None
        node = event.data["node"]
        staff = self.state["staff"][node]
        try:
            batch = generate_batch(self.world, item="GLJT", as_of=self.clock.now().date(), region=PROVINCE[node],
                                   operator=staff["maker"], now=self.clock.now())
        except SbcardError:
            self.tally.subsidy("no_batch")
            return
        batch_id = batch["batch_id"]
        try:
            approve(self.world, batch_id, operator=staff["checker"], now=self._step(1800))
            done = pay(self.world, batch_id, now=self._step(900), operator=staff["checker"], runner=SIM_RUNNER)
        except SbcardError as refused:
            self.tally.subsidy("batch_refused")
            self.refusals[f"subsidy:{refused.code}"] = self.refusals.get(f"subsidy:{refused.code}", 0) + 1
            return
        invalid = int(done.get("invalid") or 0)
        self.tally.subsidy("paid", int(done["paid"]))
        self.tally.subsidy("failed", int(done["failed"]) - invalid)
        self.tally.subsidy("invalid", invalid)
        self.tally.count("subsidy_paid", node, int(done["paid"]))

    # ================================================================ links

    def on_link_down(self, event: plan.Event) -> None:
        from sbcard.services.exchange import links

        assert self.world is not None
        links.set_link(self.world.hub(), event.data["node"], up=False, note="simulated outage", now=self.clock.now())
        self.tally.fault("region_down")

    def on_link_up(self, event: plan.Event) -> None:
        from sbcard.services.exchange import links

        assert self.world is not None
        links.set_link(self.world.hub(), event.data["node"], up=True, note="outage over", now=self.clock.now())
        self._reconcile_medical()

    def _reconcile_medical(self) -> None:
        from sbcard.services.medical import routing as route

        assert self.world is not None
        done = route.reconcile(self.world, now=self.clock.now())
        for claim in done["reconciled"]:
            self.tally.count("medical_reconciled", claim.get("hospital_node") or claim["insured_node"])

    # ================================================================ the night

    def night(self, day: dt.date, day_no: int) -> None:
        from sbcard.services.exchange import outbox
        from sbcard.services.cards import lifecycle, replacement

        assert self.world is not None
        at = lambda h, m: dt.datetime.combine(day, dt.time(h, m), BEIJING)  # noqa: E731
        self.progress(f"day {day_no}/{self.options.days}: night: uploads, clearing and settlement, invariants")
        self._move_to(at(22, 30))
        self.upload_all()
        self._move_to(at(23, 0))
        outbox.deliver_pending(self.world, self.clock.now())
        self._reconcile_medical()
        for lapsed in lifecycle.lapse_temporary_losses(self.world, now=self.clock.now()):
            self._card_found(lapsed["card_number"])
        for node in REGION_NODES:
            replacement.pay_due_refunds(self.world, operator=self.state["staff"][node]["maker"],
                                        now=self.clock.now())
        self._move_to(at(23, 10))
        level = setup.stock_level(self.options.population)
        setup.restock(self, below=max(RESTOCK_BELOW, level // 2), to=max(RESTOCK_TO, level))
        self._move_to(at(23, 20))
        self.sync_terminals()
        self._move_to(at(23, 50))
        self.clear_and_settle(day)
        self._move_to(at(23, 58))
        self.check_invariants(day)

    def upload_all(self) -> None:
        from sbcard.services.terminals import register
        from sbcard.services.transit import host as transit_host
        from terminals.psam import psam_upload_key

        assert self.world is not None
        for terminal_id in sorted(self.state["all_terminals"]):
            if self.fault_plan.terminal_crash():
                self.tally.fault("terminal_crash")
                continue
            state = self._terminal_state(terminal_id)
            log = state.unsent_records()
            if not log:
                continue
            if state.upload_key() is None:  # a PSAM made before upload keys (a run resumed from then)
                state.load_upload_key(psam_upload_key(register.upload_key(self.world, terminal_id)))
            mac = state.sign_batch(log)  # the PSAM's MAC over the batch: the host believes no less
            records = [transit_host.OfflineRecord.from_log(r) for r in log]
            now = self.clock.now()
            result = transit_host.upload(self.world, terminal_id, records, now=now, mac=mac)
            node = self.state["all_terminals"][terminal_id]
            self.tally.count("upload", node, len(log))
            if self.fault_plan.upload_twice():
                self.tally.fault("upload_twice")  # crashed before marking them sent: they go again tomorrow
                continue
            state.mark_uploaded(result.batch, log[0]["seq"], log[-1]["seq"], len(log), now.isoformat(),
                                {k: getattr(result, k) for k in ("sent", "accepted", "duplicates", "rejected",
                                                                 "flagged")})

    def sync_terminals(self) -> None:
        from sbcard.services.terminals import register as service

        assert self.world is not None
        copy = service.blacklist_copy(self.world)
        now = self.clock.now()
        for terminal_id in sorted(self.state["all_terminals"]):
            state = self._terminal_state(terminal_id)
            if state.blacklist_version == copy.version:
                continue
            state.replace_blacklist(copy.version, copy.cards, published_at=copy.published_at,
                                    synced_at=now.isoformat(), revoked_concessions=copy.revoked_concessions)
            service.record_sync(self.world, terminal_id, version=copy.version, now=now)

    def clear_and_settle(self, day: dt.date) -> None:
        from sbcard.services.clearing import purse_records as clearing, settlement

        assert self.world is not None
        result = clearing.run_clearing(self.world, day, now=self.clock.now())
        for node, n in _cleared_counts(result).items():
            self.tally.count("clearing", node, n)
        self._step(300)
        self.settlements.append(settlement.day_settlement(self.world, day))

    def check_invariants(self, day: dt.date) -> None:
        from sbcard.sim import invariants

        assert self.world is not None
        if self._night_memory is None:
            self._night_memory = invariants.Memory()
        results = invariants.check_day(self.world, self.home, day, memory=self._night_memory, touched=self._touched,
                                       read_ahead=self._read_ahead())
        self.invariants = results
        report = invariants.describe(results, day)
        if report:
            raise InvariantViolated(day, report)

    def _read_cards_ahead(self) -> None:
        """In a big world the night's checks read every card file tapped or loaded today (on the first
        night, every one): another process reads them now, while the engine uploads and clears, since
        no card is written at night (``invariants.read_cards``; the checks read again any file that
        changed since, or that it could not read)."""
        import multiprocessing

        from sbcard.sim import invariants

        if not self.tap_worker:
            return  # a small world: its night is short
        memory = self._night_memory
        kept = {c.path for c in memory.cards.values()} if memory is not None else set()
        paths = [key for key in (str(self.home_dir / c["path"]) for c in self.state["cards"].values())
                 if key in self._touched or key not in kept]
        pool = multiprocessing.get_context("spawn").Pool(1, initializer=setup.watch_parent, initargs=(os.getpid(),))
        self._ahead = (pool, pool.apply_async(invariants.read_cards, (paths, invariants.RACY_NS)))

    def _read_ahead(self) -> dict[str, Any] | None:
        """What ``_read_cards_ahead`` read (None if it read nothing or failed: the checks read it all)."""
        if self._ahead is None:
            return None
        pool, reading = self._ahead
        self._ahead = None
        try:
            return reading.get()
        except Exception:  # noqa: BLE001 - a reading that failed is only work the checks do themselves
            return None
        finally:
            pool.close()
            pool.join()

    def _drop_read_ahead(self) -> None:
        """The day stopped short: the reading process is stopped as it stands."""
        if self._ahead is not None:
            pool, _ = self._ahead
            self._ahead = None
            pool.terminate()
            pool.join()

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
        from sbcard.sim.invariants import Result

        if saved["options"] != self.options.to_json():
            raise SbcardError("sim.resume_options", "the checkpoint was made with other options: "
                              f"{saved['options']}")
        self.tally = Tally.from_json(saved["tally"])
        self.settlements = saved["settlements"]
        self.invariants = {name: Result(**r) for name, r in saved["invariants"].items()}
        self.state = saved["state"]
        self.clock = SimClock(dt.datetime.fromisoformat(saved["clock"]))


CACHE_KIB = 64 * 1024  # SQLite's page cache per database (its default, 2 MB, is a region of a few thousand cards)
WAL_PAGES = 10_000  # pages in the WAL before SQLite copies it back into the database (its default: 1,000)


def tune(world: World) -> None:
    """The simulator's connections keep the databases' hot pages (indexes of hundreds of thousands of
    cards) in memory, and fold the WAL back into the database every 10,000 pages rather than every
    1,000.

    And they never wait for the disk (``synchronous = OFF``: no fsync when the WAL is folded back).
    What a commit writes, and that it is all or nothing, does not change, and a killed process loses
    nothing (the system has the pages); only a crash of the machine itself could leave a database
    damaged, and a simulation never goes on from the world it was running in: ``--resume`` puts
    the last checkpoint's world back (``checkpoint.restore``). On this machine's busy disk those
    fsyncs kept the engine waiting about a tenth of the morning rush of a 100,000-person day.
    """
    for db in (*(world.region(node) for node in REGION_NODES), world.hub()):
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
        db.execute("PRAGMA synchronous = OFF")


def _own_file(path: str) -> None:
    """Before a card's first write since the last checkpoint, its file becomes its own again.

    A checkpoint links the world's card files instead of copying them (``checkpoint.save``),
    and a card writes its file in place; so a file still shared with a checkpoint is copied
    and the copy put in its place (one rename) before the card may write it.
    """
    if os.stat(path).st_nlink > 1:
        shutil.copyfile(path, path + ".own")
        os.replace(path + ".own", path)


@functools.lru_cache(maxsize=None)
def load_terminal_no(outlet: str) -> bytes:
    """The terminal number (6 bytes) of the outlet's load terminal: its district and number, then 0001."""
    from sbcard.domain.outlets import OutletCode

    code = OutletCode.parse(outlet)
    return bytes.fromhex(f"{code.district}{code.number}0001")


def card_node(card: dict[str, Any]) -> str:
    return {"B": "bj", "T": "tj", "H": "he"}[card["card"][0]]


def _cleared_counts(result: Any) -> dict[str, int]:
    """Records (transit) and claims (medical) cleared per paying region, from the clearing's lines."""
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result or {})
    out: dict[str, int] = {}
    if not data.get("changed", True):
        return out
    for line in data.get("lines") or []:
        node, count = line.get("payer"), line.get("count")
        if node in REGION_NODES and isinstance(count, int) and count:
            out[node] = out.get(node, 0) + count
    return out
