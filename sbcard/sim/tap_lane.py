"""The tap lane: the engine's side of the hand-off of transit taps to the validators.

A tap is handed over (``hand_tap``) and the day goes on; its outcome is applied — the
tally, the balance the run knows, a load and a second tap if the rider waits at the gate —
at a point the day's plan fixes (the rider's next event, the card's next use, the night),
never when it happens to arrive; so a run is the same whether the validators tap in this
process or in one of their own. The validators' side, the lanes and the rules that keep
the two sides in step are in ``sbcard.sim.validators``.

``TapLane`` is a part of ``sbcard.sim.engine.Simulation``: its methods use the engine's
state (the cards, the clock, the tally) and call its acts (``acts.Acts.load``).
"""

from __future__ import annotations

from typing import Any

import attrs

from sbcard.sim.validators import (
    TapOutcome,
    TapRequest,
    TerminalRelease,
    Validators,
    engine_taps,
    open_lane,
)


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


class TapLane:
    """The hand-off of taps to the validators and the application of their outcomes (a part of ``Simulation``)."""

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

