"""Loads the host refuses: over the purse's maximum, an account that cannot pay, a forged MAC1.

A refused load changes nothing: no ledger entry, no load row, the purse as it was.
"""

from __future__ import annotations

import attrs
import pytest
from purse_world import BANKS, DEPOSIT_YUAN, NOW, clock, purse_template, purse_world  # noqa: F401

from sbcard.chip.purse import EP_LOAD, load_mac1, load_session_key
from sbcard.domain.errors import RuleRefused
from sbcard.domain.purse_load import CardLoadEvidence, LoggedLoad, Outcome, PendingLoad, decide
from sbcard.services.accounts import ledger
from sbcard.services.transit.purse_host import PurseHost
from sbcard.store.world import open_world
from terminals.apps import loader
from terminals.drivers.emulator import EmulatorReader

TERMINAL_NO = bytes.fromhex("110105010001")
DEPOSIT = DEPOSIT_YUAN * 100


def unchanged(pw, holder="liu", purse=0):
    assert pw.account(holder) == DEPOSIT - purse
    assert pw.purse(holder) == purse
    assert [r for r in pw.loads(holder) if r["status"] != "confirmed"] == []
    assert pw.float_balance(pw.cards[holder].node) == purse


def test_a_load_over_the_purse_maximum_is_refused(purse_world):
    code, _, err, _ = purse_world.load("liu", "1000.01")
    assert code == 1 and "maximum of ¥1000.00" in err
    unchanged(purse_world)
    assert purse_world.load("liu", "1000")[0] == 0  # exactly the maximum is fine
    code, _, err, _ = purse_world.load("liu", "0.01")
    assert code == 1 and "maximum" in err
    unchanged(purse_world, purse=100000)


def test_the_host_checks_the_maximum_too_whatever_the_card_allows(purse_world):
    """A card whose own maximum was raised in its file still meets the host's ¥1,000.00."""
    assert purse_world.load("liu", "990")[0] == 0
    purse_world.edit_card("liu", lambda doc: doc["purse"].update(max_balance=500000))
    code, _, err, _ = purse_world.load("liu", "20")
    assert code == 1 and "maximum of ¥1000.00" in err
    unchanged(purse_world, purse=99000)


def test_insufficient_money_in_the_account_is_refused(purse_world):
    node = purse_world.cards["liu"].node
    code, _, err, _ = purse_world.run("account", "withdraw", purse_world.cards["liu"].number, "--amount", "1990",
                                      "--operator", "BJ-C1", "--outlet", BANKS[node])
    assert code == 0, err
    code, _, err, _ = purse_world.load("liu", "10.01")
    assert code == 1 and "account" in err and "less than ¥10.01" in err
    assert purse_world.account("liu") == 1000 and purse_world.purse("liu") == 0
    assert purse_world.loads("liu") == []


def test_a_frozen_account_is_refused(purse_world):
    card = purse_world.cards["liu"]
    db = purse_world.db(card.node)
    try:
        ledger.set_frozen(db, ledger.account_of_card(db, card.number), frozen=True, now=NOW)
    finally:
        db.close()
    code, _, err, _ = purse_world.load("liu", "10")
    assert code == 1 and "frozen" in err
    assert purse_world.loads("liu") == [] and purse_world.purse("liu") == 0


def test_a_lost_card_is_not_loaded(purse_world):
    card = purse_world.cards["liu"]
    code, _, err, _ = purse_world.run("card", "report-lost", card.number, "--operator", "BJ-C1", "--json")
    assert code == 0, err
    code, _, err, _ = purse_world.load("liu", "10")
    assert code == 1 and "lost" in err
    assert purse_world.loads("liu") == [] and purse_world.purse("liu") == 0


def _request(app_serial, init, amount):
    from sbcard.domain.purse_load import LoadRequest

    return LoadRequest(app_serial=app_serial, amount_fen=amount, terminal_no=TERMINAL_NO.hex().upper(),
                       balance_fen=init.balance, online_counter=init.online_counter, key_version=init.key_version,
                       algorithm_id=init.algorithm.id_byte, random=init.random, mac1=init.mac1)


@pytest.mark.parametrize("forge", ["mac1", "balance", "counter", "serial_of_another_card", "wrong_key"])
def test_a_forged_mac1_is_refused_and_changes_nothing(purse_world, forge):
    """A request the card did not make: its MAC1 does not verify under the card's DLK."""
    with open_world(purse_world.home) as world, EmulatorReader(purse_world.path("liu")) as reader:
        host = PurseHost(world, operator="BJ-C1", now=NOW)
        app_serial = loader.select_purse(reader)
        from sbcard.chip.commands import InitializeForLoad
        init = InitializeForLoad(1, 800, TERMINAL_NO).send(reader)
        request = _request(app_serial, init, 800)
        if forge == "mac1":
            request = attrs.evolve(request, mac1=bytes(b ^ 0x01 for b in request.mac1))
        elif forge == "balance":  # claims an empty purse (to pass the maximum)
            request = attrs.evolve(request, balance_fen=request.balance_fen + 1)
        elif forge == "counter":
            request = attrs.evolve(request, online_counter=request.online_counter + 1)
        elif forge == "serial_of_another_card":  # a genuine answer of one card presented for another
            request = attrs.evolve(request, app_serial=purse_world.cards["chen"].app_serial)
        else:  # a terminal that computes MAC1 itself with a guessed key
            sk = load_session_key(init.algorithm, b"\x00" * 16, init.random, init.online_counter)
            request = attrs.evolve(request, mac1=load_mac1(init.algorithm, sk, init.balance, 800, EP_LOAD,
                                                           TERMINAL_NO))
        with pytest.raises(RuleRefused) as refused:
            host.begin_load(request)
    assert refused.value.code == "load.mac1"
    unchanged(purse_world)
    unchanged(purse_world, "chen")


def test_a_tac_that_does_not_verify_leaves_the_load_pending_until_the_card_shows_it(purse_world):
    with open_world(purse_world.home) as world, EmulatorReader(purse_world.path("liu")) as reader:
        host = PurseHost(world, operator="BJ-C1", now=NOW)

        class ForgedTac:
            def __getattr__(self, name):
                return getattr(host, name)

            def confirm_load(self, app_serial, counter, tac):
                return host.confirm_load(app_serial, counter, bytes(4))

        with pytest.raises(RuleRefused) as refused:
            loader.load(reader, ForgedTac(), 700, TERMINAL_NO)
    assert refused.value.code == "load.bad_tac"
    assert [r["status"] for r in purse_world.loads("liu")] == ["pending"]
    code, _, err, done = purse_world.recover("liu")
    assert code == 0, err
    assert [(s["status"], s["how"]) for s in done["settled"]] == [("confirmed", "prove")]
    assert purse_world.purse("liu") == 700 and purse_world.account("liu") == DEPOSIT - 700


# ----------------------------------------------------------------------------- the decision, alone


PENDING = PendingLoad(load_id="BJ-LOAD-1", online_counter=4, amount_fen=500, balance_before_fen=100,
                      terminal_no="110105010001", date_time="20250303090000")


def _evidence(counter, proves=None, logged=()):
    return CardLoadEvidence(app_serial="03101000000000000001", balance_fen=600, online_counter=counter,
                            proves=proves or {}, logged=tuple(logged))


@pytest.mark.parametrize("evidence, outcome, how", [
    (_evidence(5, {4: b"GOOD"}), Outcome.CONFIRM, "prove"),
    (_evidence(5, {4: b"BAD!"}), Outcome.CONFIRM, "counter"),  # the counter moved: only our MAC2 opens it
    (_evidence(6), Outcome.CONFIRM, "counter"),
    (_evidence(6, logged=[LoggedLoad(4, 500, "110105010001", "20250303090000")]), Outcome.CONFIRM, "log"),
    (_evidence(4), Outcome.REVERSE, "counter"),
    (_evidence(4, {4: b"BAD!"}), Outcome.REVERSE, "counter"),
    (_evidence(3), Outcome.UNDECIDED, "counter_back"),  # the card's image was put back: never refund
    (_evidence(None), Outcome.UNDECIDED, "unknown"),
    (_evidence(None, logged=[LoggedLoad(4, 500, "110105010001", "20250303090000")]), Outcome.CONFIRM, "log"),
    (_evidence(None, logged=[LoggedLoad(4, 501, "110105010001", "20250303090000")]), Outcome.UNDECIDED, "unknown"),
])
def test_how_a_pending_load_is_decided(evidence, outcome, how):
    decision = decide(PENDING, evidence, lambda tac: tac == b"GOOD")
    assert (decision.outcome, decision.how) == (outcome, how)


def test_a_full_purse_is_settled_from_the_card_log(purse_world):
    """A purse at its maximum refuses even a 1-fen INITIALIZE: the terminal shows the host the card's log."""
    assert purse_world.load("liu", "600")[0] == 0
    purse_world.load("liu", "400", tear=4)  # credited to ¥1,000.00, unconfirmed
    # The card keeps only its last load's prove: make it another one's, as a later load would.
    purse_world.edit_card("liu", lambda doc: doc["last_load"].update(counter=0))
    code, _, err, done = purse_world.recover("liu")
    assert code == 0, err
    assert [(s["status"], s["how"]) for s in done["settled"]] == [("confirmed", "log")]
    assert purse_world.purse("liu") == 100000 and purse_world.account("liu") == DEPOSIT - 100000
