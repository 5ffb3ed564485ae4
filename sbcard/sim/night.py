"""The night: what the world does after the last event of a day, and the checks that end it.

22:30 the terminals upload their offline logs (``upload_all``); 23:00 messages are
delivered, offline medical claims reconciled, temporary losses lapsed, replacement refunds
paid; 23:10 outlets low on blanks restocked; 23:20 terminals synced with the blacklist
(``sync_terminals``); 23:50 the day's clearing and settlement; 23:58 the invariants
(``check_invariants``: a violation stops the run). In a big world the card files the checks
will read are read meanwhile by a process of its own (``_read_cards_ahead``), since no card is
written at night.

``Night`` is a part of ``sbcard.sim.engine.Simulation``: its methods use the engine's state
(the world, the clock, the terminals' states) and its acts (``acts.Acts``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.clock import BEIJING
from sbcard.services.cards import lifecycle, replacement
from sbcard.services.clearing import purse_records, settlement
from sbcard.services.exchange import outbox
from sbcard.services.transit.terminal_host import TerminalHost
from sbcard.sim import invariants, processes, setup
from sbcard.store.world import REGION_NODES
from terminals.apps import uploads

RESTOCK_BELOW, RESTOCK_TO = 4, 8  # each night an outlet low on blanks gets a delivery


class InvariantViolated(Exception):
    """A night's checks found what must hold broken: the run stops (``sbcard simulate`` says why)."""

    def __init__(self, day: dt.date, report: str) -> None:
        super().__init__(report)
        self.day, self.report = day, report


class Night:
    """The night's work and checks (a part of ``Simulation``)."""

    def night(self, day: dt.date, day_no: int) -> None:
        assert self.world is not None
        at = lambda h, m: dt.datetime.combine(day, dt.time(h, m), BEIJING)  # noqa: E731
        self.progress(f"day {day_no}/{self.options.days}: night: uploads, clearing and settlement, invariants")
        self.move_to(at(22, 30))
        self.upload_all()
        self.move_to(at(23, 0))
        outbox.deliver_pending(self.world, self.clock.now())
        self._reconcile_medical()
        for lapsed in lifecycle.lapse_temporary_losses(self.world, now=self.clock.now()):
            self._card_found(lapsed["card_number"])
        for node in REGION_NODES:
            replacement.pay_due_refunds(self.world, operator=self.state["staff"][node]["maker"],
                                        now=self.clock.now())
        self.move_to(at(23, 10))
        level = setup.stock_level(self.options.population)
        setup.restock(self, below=max(RESTOCK_BELOW, level // 2), to=max(RESTOCK_TO, level))
        self.move_to(at(23, 20))
        self.sync_terminals()
        self.move_to(at(23, 50))
        self.clear_and_settle(day)
        self.move_to(at(23, 58))
        self.check_invariants(day)

    def upload_all(self) -> None:
        assert self.world is not None
        host = TerminalHost(self.world)
        for terminal_id in sorted(self.state["all_terminals"]):
            if self.fault_plan.terminal_crash():
                self.tally.fault("terminal_crash")
                continue
            state = self._terminal_state(terminal_id)
            records = state.unsent()
            if not records:
                continue
            now = self.clock.now()
            sent = uploads.send(state, host, terminal_id, records, now=now)
            node = self.state["all_terminals"][terminal_id]
            self.tally.count("upload", node, len(records))
            if self.fault_plan.upload_twice():
                self.tally.fault("upload_twice")  # crashed before marking them sent: they go again tomorrow
                continue
            uploads.mark_sent(state, sent, now=now)

    def sync_terminals(self) -> None:
        assert self.world is not None
        host = TerminalHost(self.world)
        lists = host.lists()
        now = self.clock.now()
        for terminal_id in sorted(self.state["all_terminals"]):
            uploads.sync_lists(self._terminal_state(terminal_id), host, terminal_id, now=now, lists=lists,
                               if_changed=True)

    def clear_and_settle(self, day: dt.date) -> None:
        assert self.world is not None
        result = purse_records.run_clearing(self.world, day, now=self.clock.now())
        for node, n in _cleared_counts(result).items():
            self.tally.count("clearing", node, n)
        self.step(300)
        self.settlements.append(settlement.day_settlement(self.world, day))

    def check_invariants(self, day: dt.date) -> None:
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
        if not self.tap_worker:
            return  # a small world: its night is short
        memory = self._night_memory
        kept = {c.path for c in memory.cards.values()} if memory is not None else set()
        paths = [key for key in (str(self.home_dir / c["path"]) for c in self.state["cards"].values())
                 if key in self._touched or key not in kept]
        pool = processes.one_worker_pool()
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
