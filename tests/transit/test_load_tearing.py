"""A load torn at every APDU and at every persistent write, on the card and on the host.

After each tear the card is presented again (``transit recover``, or the next load, which
settles first): the holder's money is then either in the purse or back in the account,
never in both and never in neither — account + purse = what was deposited, the purse
float equals the purse, and no load stays pending.
"""

from __future__ import annotations

import pytest
from purse_world import DEPOSIT_YUAN, NOW, clock, purse_template, purse_world  # noqa: F401

from sbcard.chip.reader import CardIOError
from sbcard.services.transit.purse_host import PurseHost
from sbcard.store.world import open_world
from terminals.apps import loader
from terminals.drivers.emulator import EmulatorReader

TERMINAL_NO = bytes.fromhex("110105010001")
DEPOSIT = DEPOSIT_YUAN * 100


def assert_consistent(pw, holder="liu"):
    """Nothing pending; account + purse = the deposit; the float backs the purse exactly."""
    loads = pw.loads(holder)
    assert [r for r in loads if r["status"] == "pending"] == []
    purse = pw.purse(holder)
    assert pw.account(holder) + purse == DEPOSIT
    assert pw.float_balance(pw.cards[holder].node) == purse
    assert sum(r["amount_fen"] for r in loads if r["status"] == "confirmed") == purse
    assert pw.online_counter(holder) == sum(1 for r in loads if r["status"] == "confirmed")
    for r in loads:
        if r["status"] == "reversed":
            assert r["reversal_txn_id"] == f"{r['id']}-REV"


class Pulled(EmulatorReader):
    """The card leaves the field at the ``at``-th APDU: before it reaches the card, or after (answer lost)."""

    def __init__(self, path, at: int, *, answered: bool) -> None:
        super().__init__(path)
        self.at, self.answered, self.count = at, answered, 0

    def transmit_raw(self, apdu: bytes) -> bytes:
        self.count += 1
        if self.count == self.at:
            if self.answered:
                super().transmit_raw(apdu)
            raise CardIOError(f"card pulled at APDU {self.at}")
        return super().transmit_raw(apdu)


def _load_via(pw, reader, amount):
    with open_world(pw.home) as world:
        host = PurseHost(world, operator="BJ-C1", outlet="BJ-110105-01", now=NOW)
        return loader.load(reader, host, amount, TERMINAL_NO)


def _recover(pw, holder="liu"):
    code, _, err, done = pw.recover(holder)
    assert code == 0, err
    return done


# ----------------------------------------------------------------------------- card writes


@pytest.mark.parametrize("write", [1, 2, 3, 4])
def test_a_tear_at_every_write_of_the_credit_is_settled(purse_world, write):
    """CREDIT FOR LOAD writes the purse, the log and the prove, then commits (write 4)."""
    code, _, err, _ = purse_world.load("liu", "50", tear=write)
    assert code != 0 and "torn" in err
    [pending] = purse_world.loads("liu")
    assert pending["status"] == "pending"
    assert purse_world.account("liu") == DEPOSIT - 5000  # debited, in the float
    credited = write == 4  # the commit write lands: the card has the money, the terminal no answer
    assert purse_world.purse("liu") == (5000 if credited else 0)

    done = _recover(purse_world)
    [settled] = done["settled"]
    assert settled["status"] == ("confirmed" if credited else "reversed")
    assert settled["how"] == ("prove" if credited else "counter")
    assert_consistent(purse_world)
    assert purse_world.purse("liu") == (5000 if credited else 0)
    assert _recover(purse_world)["settled"] == []  # settling again does nothing


@pytest.mark.parametrize("write", [1, 2, 3, 4])
def test_the_next_load_settles_a_torn_one_first_and_never_credits_twice(purse_world, write):
    purse_world.load("liu", "50", tear=write)
    code, _, err, done = purse_world.load("liu", "20")
    assert code == 0, err
    [settled] = done["settled"]
    credited = write == 4
    assert settled["status"] == ("confirmed" if credited else "reversed")
    assert done["balance_fen"] == (7000 if credited else 2000) == purse_world.purse("liu")
    assert_consistent(purse_world)


def test_the_card_writes_of_a_load_are_exactly_those_four(purse_world):
    code, _, err, _ = purse_world.load("liu", "50", tear=5)  # no fifth write: the load completes
    assert code == 0, err
    assert_consistent(purse_world)


# ----------------------------------------------------------------------------- every APDU


@pytest.mark.parametrize("answered", [False, True], ids=["before", "answer_lost"])
@pytest.mark.parametrize("at", [1, 2, 3])
def test_a_card_pulled_at_every_apdu_of_a_load(purse_world, at, answered):
    """SELECT, INITIALIZE FOR LOAD, CREDIT FOR LOAD: pulled before the card gets each, or after it answers."""
    with Pulled(purse_world.path("liu"), at, answered=answered) as reader, pytest.raises(CardIOError):
        _load_via(purse_world, reader, 3000)
    credited = at == 3 and answered
    assert purse_world.purse("liu") == (3000 if credited else 0)
    pending = [r for r in purse_world.loads("liu") if r["status"] == "pending"]
    assert len(pending) == (1 if at == 3 else 0)  # the host answered MAC2 only before CREDIT
    _recover(purse_world)
    assert_consistent(purse_world)
    assert purse_world.purse("liu") == (3000 if credited else 0)


def test_every_apdu_of_a_load_that_settles_an_earlier_one(purse_world):
    """The load after a torn one: SELECT, GET BALANCE, GET TRANSACTION PROVE, INITIALIZE (1 fen, for the
    counter), then its own INITIALIZE and CREDIT — the card pulled before, and after, each."""
    purse_world.load("liu", "10", tear=4)  # credited, unconfirmed: the next load settles it
    before = purse_world.snapshot("torn")
    code, _, err, done = purse_world.load("liu", "5")
    assert code == 0, err
    total = done["apdus"]
    assert total == 6
    for at in range(1, total + 1):
        for answered in (False, True):
            purse_world.restore(before)
            with Pulled(purse_world.path("liu"), at, answered=answered) as reader, pytest.raises(CardIOError):
                _load_via(purse_world, reader, 500)
            _recover(purse_world)
            assert_consistent(purse_world)
            assert purse_world.purse("liu") == (1500 if (at == total and answered) else 1000), (at, answered)


# ----------------------------------------------------------------------------- host writes


class LostAnswer:
    """A host port whose answer to ``method`` is lost after the host has done its work (committed)."""

    def __init__(self, host, method):
        self.host, self.method = host, method

    def __getattr__(self, name):
        real = getattr(self.host, name)
        if name != self.method:
            return real

        def call(*args, **kwargs):
            real(*args, **kwargs)
            raise ConnectionError(f"the answer to {name} was lost")

        return call


class DownBefore:
    """A host port that is down for ``method``: the call never reaches the host."""

    def __init__(self, host, method):
        self.host, self.method = host, method

    def __getattr__(self, name):
        real = getattr(self.host, name)
        if name != self.method:
            return real

        def call(*args, **kwargs):
            raise ConnectionError(f"the host is down for {name}")

        return call


@pytest.mark.parametrize("wrapper, method, credited", [
    (DownBefore, "begin_load", False),
    (LostAnswer, "begin_load", False),  # debited, pending; the terminal never sends CREDIT
    (DownBefore, "confirm_load", True),  # the card credited; the host never hears of the TAC
    (LostAnswer, "confirm_load", True),
])
def test_a_host_call_lost_at_each_step_is_settled(purse_world, wrapper, method, credited):
    with open_world(purse_world.home) as world, EmulatorReader(purse_world.path("liu")) as reader:
        host = wrapper(PurseHost(world, operator="BJ-C1", now=NOW), method)
        with pytest.raises(ConnectionError):
            loader.load(reader, host, 2500, TERMINAL_NO)
    assert purse_world.purse("liu") == (2500 if credited else 0)
    _recover(purse_world)
    assert_consistent(purse_world)
    assert purse_world.purse("liu") == (2500 if credited else 0)


def test_a_confirmation_sent_twice_is_recorded_once(purse_world):
    with open_world(purse_world.home) as world, EmulatorReader(purse_world.path("liu")) as reader:
        host = PurseHost(world, operator="BJ-C1", now=NOW)
        outcome = loader.load(reader, host, 1200, TERMINAL_NO)
        again = host.confirm_load(outcome.app_serial, outcome.online_counter, outcome.tac)
    assert again["status"] == "confirmed"
    assert_consistent(purse_world)
    assert purse_world.float_balance("bj") == 1200


def test_a_torn_load_is_reversed_into_an_account_frozen_since(purse_world):
    """The card was lost after a torn load: the money goes back to the account, which stays frozen."""
    purse_world.load("liu", "30", tear=1)  # never credited
    card = purse_world.cards["liu"].number
    code, _, err, _ = purse_world.run("card", "report-lost", card, "--operator", "BJ-C1", "--json")
    assert code == 0, err
    done = _recover(purse_world)
    assert [s["status"] for s in done["settled"]] == ["reversed"]
    assert_consistent(purse_world)
    [account] = purse_world.query("bj", "SELECT status FROM accounts WHERE card_number = ?", (card,))
    assert account["status"] == "frozen"


def test_a_card_put_back_below_a_pending_load_is_left_for_staff(purse_world):
    """The card's image from before a credited load: refunding would pay twice, so the load stays pending."""
    before = purse_world.path("liu").read_bytes()
    assert purse_world.load("liu", "20")[0] == 0  # counter 0 → 1
    purse_world.load("liu", "30", tear=4)  # credited at counter 1, unconfirmed
    purse_world.path("liu").write_bytes(before)  # online counter 0 again, purse empty
    done = _recover(purse_world)
    [settled] = done["settled"]
    assert (settled["status"], settled["decision"], settled["how"]) == ("pending", "undecided", "counter_back")
    code, _, err, _ = purse_world.load("liu", "10")
    assert code == 1 and "not settled" in err
