"""The day's transit validators and the taps on them: in the engine's process, or in one of their own.

A tap involves the card and the validator only (its PSAM, its fares, its offline log):
no host and no database. So in a big world the engine hands each tap to ``Validators``
in a worker process (``WorkerLane``) and goes on with the day — loads, counters,
hospitals and venues — while the worker taps; the two cores of a small machine then
both carry the day. The rules that keep the run the same as with every tap done at once
in the engine's process (``InProcessLane``):

- the worker does the taps in the order they were handed over;
- the engine powers a card only after the taps handed over on it are done, and marks a
  card it powered as ``fresh`` at its next tap, so the worker reads it again from its
  file rather than from the image it kept (the engine likewise forgets its own image of
  a card it hands over);
- the engine applies an outcome (the tally, the balance it knows) at a point fixed by the
  day's plan — the rider's next entry or ride, the next use of the card, the night — never
  when it happens to arrive;
- in the evening (from ``HAND_OVER_AT``) Hebei's bus validators are the engine's own
  (``Validators`` over the engine's card images, each tap done and applied at once): the
  worker closes them first (``TerminalRelease``), and the two processes share the evening
  rush, the worker's metro gates and the engine's buses, as they cannot share the morning's
  (the engine then loads the purses of the day's first riders);
- who is inside a metro network is known where the taps are done: an exit tap is handed
  over without waiting for the entry's outcome, and skipped (``TapOutcome.skipped``) if the
  rider never got in — so the engine does not wait for a rider's entry to hand over the exit.

The randoms of the cards on validators come from a stream of their own
(``<seed>/cards/<day>/validators``), the same in either lane.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import random
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from sbcard.chip.reader import CardIOError
from sbcard.clock import SimClock
from sbcard.domain.fares import to_km
from sbcard.reference.transit import load_tariff
from sbcard.sim import heap, processes
from terminals.apps.terminal_state import TerminalState
from terminals.apps.transit import Validator
from terminals.apps.transit_fares import TariffFares
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator.card import VirtualCard
from terminals.emulator.card_file import CardFile
from terminals.emulator.faults import Faults

CARD_IMAGES = 150_000  # card images kept in memory between sessions (the least recently used go first): a
# 100,000-person world's cards all fit, so a card read in the morning is not read again in the evening
BATCH = 64  # taps handed to the worker per message
CLOSED = "closed"
HAND_OVER_AT = dt.time(16)  # from here the engine taps the buses itself (the worker keeps the metro gates)
ENGINE_BUSES = frozenset({"bj-bus", "tj-bus", "he-sjz-bus", "he-lf-bus"})


def engine_taps(network: str, at: dt.datetime) -> bool:
    """Whether a tap on ``network`` at ``at`` is done by the engine's own validators (the evening's buses).

    The engine's morning is full of the day's first loads, while the worker taps every
    validator; in the evening the engine is free, and the buses (about two in five of the
    evening's taps) keep both processes about as busy.
    """
    return network in ENGINE_BUSES and at.time() >= HAND_OVER_AT


@attrs.frozen
class TapRequest:
    seq: int
    card_file: str  # absolute
    terminal_id: str
    km: str | None  # a bus ride's distance
    tear: int | None  # the card is torn at this write (a fault), at the first try only
    at: dt.datetime
    fresh: bool  # the engine powered this card since the validators last saw it
    who: int = -1  # the rider
    leg: str | None = None  # entry | exit | ride (None: a finder's tap)
    network: str = ""


@attrs.frozen
class TerminalRelease:
    """The validators close these terminals (their state passes to another process); answered by an outcome."""

    seq: int
    terminal_ids: tuple[str, ...]


@attrs.frozen
class TapOutcome:
    seq: int
    ok: bool
    code: str | None  # a refusal's code (TapResult.code)
    balance_fen: int | None
    torn: bool = False  # the first try was torn; the card was tapped again at once
    recovered: bool = False  # and that second tap completed the torn purchase
    skipped: bool = False  # an exit of a rider who never got in (refused at the entry): no tap


# ----------------------------------------------------------------------------- card images and readers


def closed_reader(reader: Any) -> None:
    """Power the reader's card off (a torn card has nothing left to close) and forget a torn card's image."""
    try:
        reader.close()
    except Exception:  # noqa: BLE001 - a torn card's reader has nothing left to close
        pass
    images = getattr(reader, "images", None)
    if images is not None:
        images.after_session(reader)


class SimReader(EmulatorReader):
    """``EmulatorReader`` whose card, once in the field, stays there until the session ends or it tears.

    The driver looks for the card's file before every command (a card file removed is a card
    taken out); in the simulator nobody removes card files, so that look-up is made only when
    the card is powered.
    """

    images: Any = None

    def _powered(self) -> Any:
        card = self._card
        if card is not None and not self._torn:
            return card
        return super()._powered()


class CardImages:
    """Cards in the field: each card's image as last seen (else read from its file), kept between sessions.

    The card's own commits write its file, as ever; the images only spare reading it back
    at each tap. A card torn out of the field is read from its file next time.
    ``before_load(key)`` runs before a card is powered (the engine makes the file its own).
    """

    def __init__(self, before_load: Callable[[str], None] | None = None) -> None:
        self.rng: random.Random = random.Random(0)
        self._before_load = before_load
        self._images: dict[str, Any] = {}  # card file → (its image, its CardFile), most recently used last

    def reader(self, path: Path, tear: int | None = None) -> Any:
        """An in-process reader with the card whose file is ``path`` in it (torn at write ``tear``)."""
        powered: list[tuple[str, Any]] = []  # what this reader powered: (card file, card)
        reader = SimReader(path, Faults(tear_at_write=tear) if tear else None,
                                     loader=lambda p, f: self._load(p, f, powered))
        reader.images, reader.powered = self, powered
        return reader

    def forget(self, key: str) -> None:
        self._images.pop(key, None)

    def _load(self, path: Path, card_faults: Any, powered: list[tuple[str, Any]]) -> Any:
        key = str(path)
        if self._before_load is not None:
            self._before_load(key)
        cached = self._images.pop(key, None)
        if cached is None:
            card_file, state = CardFile.open(path)
        else:
            state, kept = cached  # kept: the card file this card last read or wrote through
            card_file = CardFile.at(path, kept.place)  # its first save needs no scan of the banks
        card = VirtualCard(path, state, card_faults, self.rng, file=card_file)
        self._images[key] = (state, card_file)
        while len(self._images) > CARD_IMAGES:
            self._images.pop(next(iter(self._images)))
        powered.append((key, card))
        return card

    def after_session(self, reader: Any) -> None:
        for key, card in reader.powered:
            if card.torn:
                self._images.pop(key, None)
        reader.powered.clear()


# ----------------------------------------------------------------------------- the validators


class Validators:
    """The day's validators (opened as first tapped) and the cards tapped on them."""

    def __init__(self, home: Path | str, seed: int, day_no: int, start: dt.datetime, *,
                 cards: CardImages | None = None, clock: Any = None) -> None:
        self.home = Path(home)
        self.clock = clock if clock is not None else SimClock(start)
        if cards is None:
            cards = CardImages()
            cards.rng = random.Random(f"{seed}/cards/{day_no}/validators")
        self.cards = cards
        self._states: dict[str, Any] = {}
        self._validators: dict[str, Any] = {}
        self._fares: Any = None
        self.inside: dict[int, str] = {}  # rider → the metro network they entered today and have not left

    def handle(self, request: TapRequest | TerminalRelease) -> TapOutcome:
        if isinstance(request, TerminalRelease):
            self.release(request.terminal_ids)
            return TapOutcome(request.seq, True, None, None, skipped=True)
        return self.tap(request)

    def release(self, terminal_ids: tuple[str, ...]) -> None:
        for terminal_id in terminal_ids:
            self._validators.pop(terminal_id, None)
            state = self._states.pop(terminal_id, None)
            if state is not None:
                state.close()

    def tap(self, request: TapRequest) -> TapOutcome:
        """One tap (an exit only if the rider got in); who is inside follows the taps that pass."""
        if request.fresh:
            self.cards.forget(request.card_file)
        if request.leg == "exit" and self.inside.get(request.who) != request.network:
            return TapOutcome(request.seq, False, None, None, skipped=True)
        outcome = self._tap(request)
        if outcome.ok and request.leg == "entry":
            self.inside[request.who] = request.network
        elif outcome.ok and request.leg == "exit":
            self.inside.pop(request.who, None)
        return outcome

    def _tap(self, request: TapRequest) -> TapOutcome:
        """One tap of the card on the validator; a torn tap is tapped again at once (the gate did not open)."""
        if request.at > self.clock.now():
            self.clock.advance(request.at - self.clock.now())
        validator = self._validator(request.terminal_id)
        distance = to_km(request.km) if request.km is not None else None
        path = Path(request.card_file)
        reader = self.cards.reader(path, request.tear)
        try:
            result = validator.tap(reader, km=distance)
            return TapOutcome(request.seq, result.ok, result.code, result.balance_fen)
        except CardIOError:
            pass
        finally:
            closed_reader(reader)
        self.clock.advance(dt.timedelta(milliseconds=4))
        reader = self.cards.reader(path)
        try:
            result = validator.tap(reader, km=distance)
        finally:
            closed_reader(reader)
        return TapOutcome(request.seq, result.ok, result.code, result.balance_fen, torn=True,
                          recovered=bool(result.ok and result.recovered))

    def _validator(self, terminal_id: str) -> Any:
        found = self._validators.get(terminal_id)
        if found is None:
            if self._fares is None:
                self._fares = TariffFares(load_tariff())
            state = self._states[terminal_id] = TerminalState.open(self.home / "terminals" / terminal_id)
            found = self._validators[terminal_id] = Validator(state, state.psam(), self._fares, self.clock)
        return found

    def close(self) -> None:
        states, self._states, self._validators = self._states, {}, {}
        for state in states.values():
            state.close()


# ----------------------------------------------------------------------------- lanes


class InProcessLane:
    """Each tap done as it is handed over, in this process."""

    def __init__(self, home: Path | str, seed: int, day_no: int, start: dt.datetime) -> None:
        self._validators = Validators(home, seed, day_no, start)
        self._done: dict[int, TapOutcome] = {}

    def submit(self, request: TapRequest | TerminalRelease) -> None:
        self._done[request.seq] = self._validators.handle(request)

    def outcome(self, seq: int) -> TapOutcome:
        return self._done.pop(seq)

    def close(self) -> None:
        self._validators.close()

    def abort(self) -> None:
        self.close()


class WorkerLane:
    """The taps done in a worker process, in the order handed over; outcomes waited for when needed."""

    def __init__(self, home: Path | str, seed: int, day_no: int, start: dt.datetime) -> None:
        context = processes.spawn()
        requests_in, self._requests = context.Pipe(duplex=False)
        self._results, results_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=serve, name=f"sbcard-validators-day{day_no}", daemon=True,
            args=(requests_in, results_out, str(home), seed, day_no, start.isoformat(), os.getpid()))
        self._process.start()
        requests_in.close()
        results_out.close()
        self._buffer: list[TapRequest] = []
        self._done: dict[int, TapOutcome] = {}
        self._ready = threading.Condition()
        self._closed = False
        self._failure: str | None = None
        self._receiver = threading.Thread(target=self._receive, name="validators-results", daemon=True)
        self._receiver.start()
        # Handing over never waits for the worker: in the rush hour the engine runs ahead of it (by
        # thousands of taps) and the worker catches up when the engine is busy with other things.
        self._outbox: queue.SimpleQueue[list[TapRequest] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send, name="validators-requests", daemon=True)
        self._sender.start()

    def submit(self, request: TapRequest | TerminalRelease) -> None:
        self._buffer.append(request)
        if len(self._buffer) >= BATCH:
            self._flush()

    def outcome(self, seq: int) -> TapOutcome:
        with self._ready:
            found = self._done.pop(seq, None)
        if found is not None:
            return found
        self._flush()
        with self._ready:
            while seq not in self._done:
                if self._failure is not None:
                    raise RuntimeError(f"the validators' process failed: {self._failure}")
                self._ready.wait()
            return self._done.pop(seq)

    def close(self) -> None:
        """Every tap done and the validators closed (their logs are the night's to upload)."""
        self._flush()
        self._outbox.put(None)
        self._sender.join()
        with self._ready:
            while not self._closed:
                if self._failure is not None:
                    raise RuntimeError(f"the validators' process failed: {self._failure}")
                self._ready.wait()
        self._process.join()
        self._requests.close()

    def abort(self) -> None:
        """The day stopped short (an error): the worker is stopped as it stands."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._outbox.put(None)
        self._sender.join()
        self._requests.close()

    def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._outbox.put(batch)

    def _send(self) -> None:
        while True:
            batch = self._outbox.get()
            try:
                self._requests.send(batch)
            except OSError:  # the worker is gone: its failure is the receiver's to report
                return
            if batch is None:
                return

    def _receive(self) -> None:
        try:
            while True:
                message = self._results.recv()
                with self._ready:
                    if message == CLOSED:
                        self._closed = True
                        self._ready.notify_all()
                        return
                    if isinstance(message, str):
                        self._failure = message
                        self._ready.notify_all()
                        return
                    for outcome in message:
                        self._done[outcome.seq] = outcome
                    self._ready.notify_all()
        except (EOFError, OSError) as gone:
            with self._ready:
                self._failure = self._failure or f"it ended without closing ({gone!r})"
                self._ready.notify_all()
        finally:
            self._results.close()


def serve(requests: Any, results: Any, home: str, seed: int, day_no: int, start: str, parent: int) -> None:
    """The worker: taps each batch handed over, answers its outcomes; ``None`` closes the day."""
    processes.watch_parent(parent)
    validators = Validators(home, seed, day_no, dt.datetime.fromisoformat(start))
    heap.day_long()
    try:
        while True:
            batch = requests.recv()
            if batch is None:
                break
            results.send([validators.handle(request) for request in batch])
    except BaseException:
        results.send(traceback.format_exc())
        raise
    finally:
        validators.close()
    results.send(CLOSED)


def open_lane(worker: bool, home: Path | str, seed: int, day_no: int, start: dt.datetime) -> Any:
    return (WorkerLane if worker else InProcessLane)(home, seed, day_no, start)
