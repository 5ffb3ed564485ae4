"""A state machine over loads, taps, tears, recoveries and uploads: every fen is somewhere, once.

Two holders (a Beijing and a Tianjin card, issued and activated the real way, ¥2,000.00 in
each account) load their purses at a counter (``terminals.apps.loader`` with the issuers'
``PurseHost``), ride a Tianjin and a Beijing bus (``terminals.apps.transit.Validator``,
Engineer V's validator with its PSAM and offline log), and the buses upload their logs
(``sbcard.services.transit.host``). Loads and taps are torn at any of the card's writes;
a torn tap is tapped again at the same validator (a rider does), a torn load is settled
by the next load or a recovery.

Invariant after every step, per holder:

    account + purse + Σ every record in the terminals' logs (uploaded or not)
            + Σ pending loads the card never credited = the deposit

and: the operators took every uploaded record exactly once, none rejected or flagged; the
purse float equals the loads the cards hold; at the end (everything settled and sent), the
issuer's shadow of each purse is the purse.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from machine_budget import count_example, machine_size
from purse_world import DEPOSIT_YUAN, HOLDERS, NOW, STAFF, Card, purse_template  # noqa: F401

from sbcard.chip.reader import CardIOError
from sbcard.clock import SimClock
from sbcard.domain.errors import RuleRefused
from sbcard.services.accounts import ledger
from sbcard.services.transit import host as transit_host
from sbcard.services.terminals import register as terminal_service
from sbcard.services.transit.purse_host import PurseHost
from sbcard.services.transit.terminal_host import TerminalHost
from sbcard.store.world import open_world
from terminals.apps import loader, uploads
from terminals.apps.terminal_state import TerminalState
from terminals.apps.transit import Validator
from terminals.emulator.card_file import read_state
from terminals.emulator.faults import Faults

DEPOSIT = DEPOSIT_YUAN * 100
LOAD_TERMINAL = bytes.fromhex("110105010001")
BUSES = {"tj-bus": {"line": "13"}, "bj-bus": {"line": "1"}}  # ¥2.00 flat; ¥2.00 for 10 km, half with a card
STAFF_OF = {node: code for code, (_, _, _, node) in STAFF.items()}

_machine_template: dict[str, object] = {}


@pytest.fixture(scope="module")
def machine_template(purse_template, tmp_path_factory):
    """The purse world with one validator of each bus operator."""
    from sbcard.cli.terminals import install_terminal

    template, cards = purse_template
    home = tmp_path_factory.mktemp("purse-machine") / "world"
    shutil.copytree(template, home)
    ids = {}
    with open_world(home) as world:
        for operator, options in BUSES.items():
            row = terminal_service.add_terminal(world, operator=operator, now=NOW,
                                                install=install_terminal(home, "normal"), **options)
            ids[operator] = row["id"]
    return home, cards, ids


class MoneyMachine(RuleBasedStateMachine):
    home_template: Path
    cards: dict[str, Card]
    terminal_ids: dict[str, str]

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="money-machine-"))
        self.home = self.dir / "world"
        shutil.copytree(self.home_template, self.home)
        self.clock = SimClock(NOW)
        self.world = open_world(self.home)
        self.states = {op: TerminalState.open(self.home / "terminals" / tid) for op, tid in self.terminal_ids.items()}
        from sbcard.reference.transit import load_tariff
        from terminals.apps.transit_fares import TariffFares

        self.fares = TariffFares(load_tariff())
        self.uploaded: dict[str, int] = {op: 0 for op in BUSES}  # fen taken by each operator's host

    def teardown(self) -> None:
        for state in self.states.values():
            state.close()
        self.world.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers ----------------------------------------------------------------------------
    def path(self, holder: str) -> Path:
        return self.home / self.cards[holder].relative_path

    def reader(self, holder: str, tear: int | None):
        from terminals.drivers.emulator import EmulatorReader

        return EmulatorReader(self.path(holder), Faults(tear_at_write=tear) if tear else None)

    def host(self, holder: str) -> PurseHost:
        return PurseHost(self.world, operator=STAFF_OF[self.cards[holder].node], now=self.clock.now())

    def tick(self) -> None:
        self.clock.advance(dt.timedelta(minutes=7))

    def _tap(self, holder: str, operator: str, tear: int | None) -> None:
        validator = Validator(self.states[operator], self.states[operator].psam(), self.fares, self.clock)
        reader = self.reader(holder, tear)
        try:
            validator.tap(reader, km=8 if operator == "bj-bus" else None)
        finally:
            reader.close()

    # --- rules ------------------------------------------------------------------------------
    @rule(holder=st.sampled_from(sorted(HOLDERS)), fen=st.integers(1, 40_000),
          tear=st.one_of(st.none(), st.integers(1, 4)))
    def load(self, holder: str, fen: int, tear: int | None) -> None:
        reader = self.reader(holder, tear)
        try:
            loader.load(reader, self.host(holder), fen, LOAD_TERMINAL)
        except CardIOError:
            assert tear is not None  # torn: settled by the next load or a recovery
        except RuleRefused as refused:
            assert refused.code in ("purse.max_balance", "account.insufficient"), refused.code
        finally:
            reader.close()
        self.tick()

    @rule(holder=st.sampled_from(sorted(HOLDERS)))
    def recover(self, holder: str) -> None:
        reader = self.reader(holder, None)
        try:
            loader.recover(reader, self.host(holder), LOAD_TERMINAL)
        finally:
            reader.close()
        assert self._pending(holder) == []
        self.tick()

    @rule(holder=st.sampled_from(sorted(HOLDERS)), operator=st.sampled_from(sorted(BUSES)),
          tear=st.one_of(st.none(), st.integers(1, 5)))
    def tap(self, holder: str, operator: str, tear: int | None) -> None:
        try:
            self._tap(holder, operator, tear)
        except CardIOError:
            assert tear is not None
            self.tick()
            self._tap(holder, operator, None)  # the rider taps again: completed, or paid once now
        assert self.states[operator].pending() == []
        self.tick()

    @precondition(lambda self: any(s.unsent_count() for s in self.states.values()))
    @rule(operator=st.sampled_from(sorted(BUSES)))
    def upload(self, operator: str) -> None:
        state = self.states[operator]
        sent = uploads.upload_unsent(state, TerminalHost(self.world), self.terminal_ids[operator],
                                      now=self.clock.now())
        result, log = sent.answer, sent.records
        assert (result.sent, result.accepted, result.duplicates) == (len(log), len(log), 0), result
        assert (result.rejected, result.flagged) == (0, 0), result.records
        assert state.unsent_count() == 0
        self.uploaded[operator] += sum(r.amount_fen for r in log)
        self.tick()

    @precondition(lambda self: any(s.unsent_count() for s in self.states.values()))
    @rule(operator=st.sampled_from(sorted(BUSES)))
    def upload_dies_after_the_issuers_answer(self, operator: str) -> None:
        """The operator's host dies between the issuers' answers and its own commit: nothing kept there.

        The next upload sends the same records again; the hub's message log answers for the
        issuer, which must not clear them twice (the end check compares shadows and purses).
        """
        records = self.states[operator].unsent()
        mac = self.states[operator].sign_batch(records)

        class Died(Exception):
            pass

        def die(*args, **kwargs):
            raise Died

        real, transit_host.UploadResult = transit_host.UploadResult, die
        try:
            transit_host.upload(self.world, self.terminal_ids[operator], records, now=self.clock.now(), mac=mac)
        except Died:
            pass
        finally:
            transit_host.UploadResult = real
        self.tick()

    # --- invariants -------------------------------------------------------------------------
    def _pending(self, holder: str) -> list[dict]:
        card = self.cards[holder]
        return [dict(r) for r in self.world.region(card.node).query(
            "SELECT * FROM purse_loads WHERE app_serial = ? AND status = 'pending'", [card.app_serial])]

    def _spent(self, holder: str) -> int:
        serial = self.cards[holder].app_serial
        return sum(r["amount_fen"] for s in self.states.values() for r in s.records() if r["app_serial"] == serial)

    @invariant()
    def every_fen_is_somewhere_once(self) -> None:
        for holder, card in self.cards.items():
            db = self.world.region(card.node)
            account = ledger.balance(db, ledger.account_of_card(db, card.number))
            image = read_state(self.path(holder))["purse"]
            uncredited = sum(p["amount_fen"] for p in self._pending(holder)
                             if p["online_counter"] >= image["online_counter"])
            assert account + image["balance"] + self._spent(holder) + uncredited == DEPOSIT, holder

    @invariant()
    def the_float_holds_what_the_cards_were_loaded(self) -> None:
        for node in ("bj", "tj"):
            db = self.world.region(node)
            float_fen = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries "
                                   "WHERE account_no = 'FLOAT-PURSE'").fetchone()[0]
            live = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM purse_loads "
                              "WHERE status IN ('pending', 'confirmed')").fetchone()[0]
            assert float_fen == live

    @invariant()
    def each_operator_took_each_record_once(self) -> None:
        for operator, node in (("tj-bus", "tj"), ("bj-bus", "bj")):
            rows = self.world.region(node).execute(
                "SELECT count(*), coalesce(sum(amount_fen), 0) FROM transit_records WHERE terminal = ?",
                [self.terminal_ids[operator]]).fetchone()
            sent = self.states[operator].last_uploaded_seq()
            assert rows[1] == self.uploaded[operator]
            assert rows[0] == sum(1 for r in self.states[operator].records() if r["seq"] <= sent)

    def check_the_end(self) -> None:
        """Everything settled and sent: the issuers' shadows are the purses."""
        for holder in self.cards:
            self.recover(holder)
        for operator in BUSES:
            if self.states[operator].unsent_count():
                self.upload(operator)
        for holder, card in self.cards.items():
            [shadow] = list(self.world.region(card.node).query(
                "SELECT expected_balance_fen FROM purse_shadow WHERE app_serial = ?", [card.app_serial])) or [
                {"expected_balance_fen": 0}]
            assert shadow["expected_balance_fen"] == read_state(self.path(holder))["purse"]["balance"], holder


def test_money_adds_up_through_loads_taps_tears_and_uploads(machine_template):
    from hypothesis.stateful import run_state_machine_as_test

    home, cards, ids = machine_template

    class Machine(MoneyMachine):
        home_template, terminal_ids = home, ids

        def __init__(self) -> None:
            count_example()
            super().__init__()

        def teardown(self) -> None:
            try:
                self.check_the_end()
            finally:
                super().teardown()

    Machine.cards = cards
    run_state_machine_as_test(Machine, settings=settings(
        **machine_size(40, 30), deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
