"""Purse loads (圈存) at a counter over HTTP: from the holder's account onto the card, exactly once."""

from __future__ import annotations

import sqlite3

import pytest
from api_cards_world import (API, BANK, CHEN, LIU, OTHER_OUTLET, OUTLET, TJ_OUTLET, TJ_WANG, activate, active_card,
                             apply, issue, key, ok, receive, refused, register)
from world_template import NOW

from sbcard.services.accounts import cash
from sbcard.store.world import open_world
from terminals.emulator.card_file import read_state

DEPOSIT = 50_000


def _card_file(home, card: str) -> str:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return str(world.paths.resolve(world.region("bj")["cards"].get(card)["virtual_path"]))


def _purse(home, card: str) -> int:  # type: ignore[no-untyped-def]
    return read_state(_card_file(home, card))["purse"]["balance"]


def _loads(home, card: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return list(world.region("bj").query("SELECT * FROM purse_loads WHERE card_number = ? ORDER BY id", [card]))


def _float(home) -> int:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        rows = list(world.region("bj").query("SELECT coalesce(sum(amount_fen), 0) AS s FROM ledger_entries "
                                             "WHERE account_no = 'FLOAT-PURSE'"))
        return rows[0]["s"]


def _account(client, card: str) -> int:  # type: ignore[no-untyped-def]
    return ok(client.get(f"{API}/accounts/{card}"))["balance_fen"]


@pytest.fixture
def funded(live_server, signed_in):  # type: ignore[no-untyped-def]
    """(clerk BJ-C1, an active Beijing card with ¥500.00 in its account)."""
    clerk = signed_in("BJ-C1")
    receive(clerk, count=2)
    card = active_card(clerk, LIU, "刘建国")
    banker = signed_in("BJ-C2")  # no outlet of their own: may take cash at the district's bank branch
    ok(banker.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": DEPOSIT, "outlet": BANK}, headers=key()))
    return clerk, card


def test_a_load_moves_money_from_the_account_onto_the_card_exactly_once(live_server, funded):
    clerk, card = funded
    headers = key()
    answer = clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 5_000}, headers=headers)
    done = ok(answer)
    assert set(done) == {"card_number", "app_serial", "node", "load_id", "amount_fen", "balance_fen",
                         "account_balance_fen", "paid", "online_counter", "tac", "terminal_no", "settled",
                         "corrections", "apdus"}  # `sbcard transit load --json`'s keys
    assert (done["card_number"], done["node"], done["paid"]) == (card, "bj", "account")
    assert (done["amount_fen"], done["balance_fen"], done["account_balance_fen"]) == (5_000, 5_000, DEPOSIT - 5_000)
    assert done["terminal_no"] == "110105010001"  # the outlet's load terminal
    assert done["settled"] == [] and done["corrections"] == [] and len(done["tac"]) == 8
    assert _purse(live_server.home, card) == 5_000 == _float(live_server.home)
    assert _account(clerk, card) == DEPOSIT - 5_000

    again = clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 5_000}, headers=headers)
    assert again.json() == done and again.headers["Idempotent-Replayed"] == "true"
    assert _purse(live_server.home, card) == 5_000  # not loaded twice
    assert _account(clerk, card) == DEPOSIT - 5_000
    [row] = _loads(live_server.home, card)
    assert (row["status"], row["operator"], row["outlet"]) == ("confirmed", "BJ-C1", OUTLET)

    other = clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 1_000}, headers=headers)
    refused(other, 422, "idempotency.mismatch")
    second = ok(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 1_000, "operator": "BJ-SUP"},
                           headers=key()))
    assert second["balance_fen"] == 6_000 and second["online_counter"] == done["online_counter"] + 1
    assert _loads(live_server.home, card)[-1]["operator"] == "BJ-C1"  # the session's, never the body's
    history = ok(clerk.get(f"{API}/accounts/{card}"))["entries"]
    assert [e["kind"] for e in history].count("purse_load") == 2


def test_a_load_needs_an_idempotency_key(live_server, funded):
    clerk, card = funded
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100}), 400, "idempotency.missing")
    assert _purse(live_server.home, card) == 0


def test_not_enough_in_the_account_is_409_and_moves_nothing(live_server, funded):
    clerk, card = funded
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": DEPOSIT + 1}, headers=key()),
            409, "account.insufficient")
    assert _purse(live_server.home, card) == 0 and _account(clerk, card) == DEPOSIT
    assert _loads(live_server.home, card) == [] and _float(live_server.home) == 0


def test_the_purse_maximum_is_409(live_server, funded):
    clerk, card = funded
    banker = live_server.signed_in("BJ-C2")
    ok(banker.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": 100_000, "outlet": BANK}, headers=key()))
    ok(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 90_000}, headers=key()))
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 10_001}, headers=key()),
            409, "purse.max_balance", "amount_fen")
    assert _purse(live_server.home, card) == 90_000


@pytest.mark.parametrize("amount", [0, -5, 12.5, "100", True, 100_001, None])
def test_bad_amounts_are_422(live_server, funded, amount):
    clerk, card = funded
    body = {} if amount is None else {"amount_fen": amount}
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json=body, headers=key()), 422, field="amount_fen")
    assert _account(clerk, card) == DEPOSIT


def test_roles_and_scope(live_server, funded):
    clerk, card = funded
    for code in ("BJ-AUD", "BJ-FM", "BJ-ADMIN"):
        refused(live_server.signed_in(code).post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100},
                                                 headers=key()), 403, "role.forbidden", "role")
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100, "outlet": OTHER_OUTLET},
                       headers=key()), 403, "scope.outlet", "outlet")
    tianjin = live_server.signed_in("TJ-C1")
    refused(tianjin.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100, "outlet": OUTLET},
                         headers=key()), 403, "scope.region", "scope")
    supervisor = live_server.signed_in("BJ-SUP")  # no outlet of their own: names the counter
    refused(supervisor.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100}, headers=key()),
            422, "outlet.missing", "outlet")
    done = ok(supervisor.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100, "outlet": OTHER_OUTLET},
                              headers=key()))
    assert done["terminal_no"] == "110101010001" and _loads(live_server.home, card)[0]["operator"] == "BJ-SUP"
    assert _account(clerk, card) == DEPOSIT - 100


def test_the_reader_must_hold_that_card_and_be_of_the_world(live_server, funded, tmp_path):
    clerk, card = funded
    other = active_card(clerk, CHEN, "陈晓梅")
    refused(clerk.post(f"{API}/cards/{card}/purse/load",
                       json={"amount_fen": 100, "reader": f"emulator:{_card_file(live_server.home, other)}"},
                       headers=key()), 409, "reader.other_card", "reader")
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100, "reader": "pcsc:"},
                       headers=key()), 422, "reader.unsupported", "reader")
    outside = tmp_path / "card.json"
    outside.write_text("{}")
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 100, "reader": f"emulator:{outside}"},
                       headers=key()), 422, "reader.unknown_card", "reader")
    refused(clerk.post(f"{API}/cards/B99999992/purse/load", json={"amount_fen": 100}, headers=key()),
            404, "card.unknown", "card_number")
    refused(clerk.post(f"{API}/cards/B9999999/purse/load", json={"amount_fen": 100}, headers=key()),
            422, field="card_number")
    assert _account(clerk, card) == DEPOSIT and _purse(live_server.home, card) == 0
    assert _purse(live_server.home, other) == 0


@pytest.mark.parametrize("write", [1, 4])
def test_a_torn_load_is_kept_as_refused_and_settled_when_the_card_is_presented_again(live_server, funded, write):
    """CREDIT FOR LOAD torn at its first write (the card never credited) or at its commit (credited, no answer):
    the load stays pending, a retry with the same key loads nothing, and the card presented again settles it."""
    clerk, card = funded
    headers = key()
    body = {"amount_fen": 3_000, "reader": f"emulator:{_card_file(live_server.home, card)}?tear={write}"}
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json=body, headers=headers), 409, "load.torn", "reader")
    credited = write == 4
    [pending] = _loads(live_server.home, card)
    assert pending["status"] == "pending" and _account(clerk, card) == DEPOSIT - 3_000  # in the float
    assert _purse(live_server.home, card) == (3_000 if credited else 0)

    again = clerk.post(f"{API}/cards/{card}/purse/load", json=body, headers=headers)
    refused(again, 409, "load.torn")  # the first answer: never a second load
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(_loads(live_server.home, card)) == 1

    recovered = ok(clerk.post(f"{API}/cards/{card}/purse/recover", headers=key()))
    [settled] = recovered["settled"]
    assert settled["status"] == ("confirmed" if credited else "reversed")
    assert recovered["balance_fen"] == _purse(live_server.home, card) == (3_000 if credited else 0)
    assert _account(clerk, card) + _purse(live_server.home, card) == DEPOSIT
    assert _float(live_server.home) == _purse(live_server.home, card)
    assert ok(clerk.post(f"{API}/cards/{card}/purse/recover", headers=key()))["settled"] == []


def test_the_next_load_settles_a_torn_one_first(live_server, funded):
    clerk, card = funded
    torn = {"amount_fen": 3_000, "reader": f"emulator:{_card_file(live_server.home, card)}?tear=1"}
    refused(clerk.post(f"{API}/cards/{card}/purse/load", json=torn, headers=key()), 409, "load.torn")
    done = ok(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 2_000}, headers=key()))
    [settled] = done["settled"]
    assert settled["status"] == "reversed" and settled["amount_fen"] == 3_000
    assert done["balance_fen"] == 2_000 == _purse(live_server.home, card)
    assert done["account_balance_fen"] == DEPOSIT - 2_000 == _account(clerk, card)
    assert [r["status"] for r in _loads(live_server.home, card)] == ["reversed", "confirmed"]
    assert _float(live_server.home) == 2_000


def test_a_tianjin_card_is_loaded_at_a_beijing_counter_from_its_tianjin_account(live_server, signed_in):
    tj_clerk = signed_in("TJ-C1")
    receive(tj_clerk, outlet=TJ_OUTLET, count=1)
    register(tj_clerk, TJ_WANG, "王海", region="120103")
    card = issue(tj_clerk, apply(tj_clerk, TJ_WANG)["application_id"])["card_number"]
    activate(tj_clerk, card)
    with open_world(live_server.home) as world:  # cash at a Tianjin bank branch, by whoever holds the files
        cash.deposit(world, card_number=card, amount_fen=DEPOSIT, operator="TJ-C1", outlet="TJ-120103-02", now=NOW)
    clerk = signed_in("BJ-C1")
    done = ok(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 4_000}, headers=key()))
    assert (done["node"], done["balance_fen"], done["account_balance_fen"]) == ("tj", 4_000, DEPOSIT - 4_000)
    assert done["terminal_no"] == "110105010001"  # the Beijing counter's
    assert ok(tj_clerk.get(f"{API}/accounts/{card}"))["balance_fen"] == DEPOSIT - 4_000
    with open_world(live_server.home) as world:
        [row] = world.region("tj").query("SELECT * FROM purse_loads WHERE card_number = ?", [card])
        assert (row["status"], row["operator"], row["outlet"]) == ("confirmed", "BJ-C1", OUTLET)
        path = world.paths.resolve(world.region("tj")["cards"].get(card)["virtual_path"])
    assert read_state(str(path))["purse"]["balance"] == 4_000


def test_a_failure_after_the_debit_is_kept_and_never_loads_twice(live_server, funded, monkeypatch):
    """The store busy past its retries when the card's TAC comes back (the server runs in this process): the card
    was credited, the load is pending; the answer is a kept 409, and presenting the card again confirms it."""
    from sbcard.services.transit.purse_host import PurseHost

    clerk, card = funded

    def busy(self, app_serial, online_counter, tac):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(PurseHost, "confirm_load", busy)
    headers = key()
    error = refused(clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 2_500}, headers=headers),
                    409, "load.unfinished", "reader")
    assert "OperationalError" in error["message"] and "locked" not in error["message"]
    monkeypatch.undo()
    again = clerk.post(f"{API}/cards/{card}/purse/load", json={"amount_fen": 2_500}, headers=headers)
    refused(again, 409, "load.unfinished")
    assert [r["status"] for r in _loads(live_server.home, card)] == ["pending"]
    assert _purse(live_server.home, card) == 2_500 and _account(clerk, card) == DEPOSIT - 2_500
    [settled] = ok(clerk.post(f"{API}/cards/{card}/purse/recover", headers=key()))["settled"]
    assert (settled["status"], settled["how"]) == ("confirmed", "prove")
    assert _float(live_server.home) == 2_500
