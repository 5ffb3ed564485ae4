"""The card's life over HTTP: lost, unblock, replace (the old purse refund), cancel, PIN reset."""

from __future__ import annotations

from api_cards_world import (API, BANK, CHEN, LIU, OUTLET, active_card, activate, key, ok, receive, refused)

from sbcard.chip.reading import read_card
from sbcard.store.world import open_world
from terminals.apps import counter
from terminals.drivers.spec import open_reader


def _card_file(home, card: str) -> str:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return world.paths.resolve(world.region("bj")["cards"].get(card)["virtual_path"])


def test_lost_then_unblocked(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    card = active_card(clerk, LIU, "刘建国")
    lost = ok(clerk.post(f"{API}/cards/{card}/lost", json={"reason": "lost on the bus"}, headers=key()))
    assert (lost["status"], lost["loss_kind"], lost["event"]) == ("lost", "formal", "reported_lost")
    assert (lost["operator"], lost["outlet"]) == ("BJ-C1", OUTLET)  # the outlet defaults to the clerk's
    refused(clerk.post(f"{API}/cards/{card}/lost", json={}, headers=key()), 409)  # lost already
    found = ok(clerk.post(f"{API}/cards/{card}/unblock", json={"reason": "found at home"}, headers=key()))
    assert found["status"] == "active" and found["event"] == "unblocked"
    events = [e["event"] for e in ok(clerk.get(f"{API}/cards/{card}/history"))["events"]]
    assert events == ["issued", "activated", "reported_lost", "unblocked"]


def test_a_temporary_loss_by_phone_is_taken_at_no_outlet(live_server, signed_in):
    supervisor = signed_in("BJ-SUP")
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    card = active_card(clerk, LIU, "刘建国")
    refused(clerk.post(f"{API}/cards/{card}/lost", json={"channel": "phone", "outlet": OUTLET}, headers=key()),
            422, "loss.outlet", "outlet")
    lost = ok(supervisor.post(f"{API}/cards/{card}/lost", json={"channel": "phone"}, headers=key()))
    assert lost["loss_kind"] == "temporary" and lost["outlet"] is None and lost["loss_expires_at"]
    confirmed = ok(clerk.post(f"{API}/cards/{card}/confirm-loss", headers=key()))
    assert confirmed["loss_kind"] == "formal"


def test_a_replacement_with_the_old_card_states_the_purse_refund(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=2)
    card = active_card(clerk, LIU, "刘建国")
    headers = key()
    answer = clerk.post(f"{API}/cards/{card}/replace", json={"old_card_presented": True, "reason": "chip worn"},
                        headers=headers)
    done = ok(answer, 201)
    assert done["old_card"] == card and done["status"] == "replaced" and done["new_status"] == "issued"
    assert done["purse_balance_fen"] == 0 and done["refund_basis"] is None
    assert done["refund"] == "nothing to refund: the old purse was empty"
    assert done["account_no"]  # the account moved to the new card
    again = clerk.post(f"{API}/cards/{card}/replace", json={"old_card_presented": True, "reason": "chip worn"},
                       headers=headers)
    assert again.json() == done and again.headers["Idempotent-Replayed"] == "true"
    assert ok(clerk.get(f"{API}/outlets/{OUTLET}/stock"))["in_stock"] == 0  # one blank for the first, one for the new
    old = ok(clerk.get(f"{API}/cards/{card}"))
    assert old["status"] == "replaced" and old["replaced_by"] == done["new_card"] and old["blacklisted"]
    activated = activate(clerk, done["new_card"])
    assert activated["account_no"] == done["account_no"]


def test_a_lost_card_replaced_is_refunded_from_the_clearing_records(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=2)
    card = active_card(clerk, LIU, "刘建国")
    ok(clerk.post(f"{API}/cards/{card}/lost", json={}, headers=key()))
    done = ok(clerk.post(f"{API}/cards/{card}/replace", json={}, headers=key()), 201)
    assert done["purse_balance_fen"] is None and done["refund_basis"] == "clearing" and done["refund_due_at"]
    assert done["refund"].startswith("not read (the old card was not presented)")
    assert done["refund_due_at"][:10] in done["refund"]


def test_cancel_pays_out_the_balance_at_a_bank_branch(live_server, signed_in):
    clerk = signed_in("BJ-C2")  # a clerk of the district with no outlet of their own
    ok(clerk.post(f"{API}/outlets/{OUTLET}/stock/receive", json={"count": 1}, headers=key()), 201)
    card = active_card(clerk, CHEN, "陈晓梅", outlet=OUTLET)
    ok(clerk.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": 12_345, "outlet": BANK}, headers=key()))
    refused(clerk.post(f"{API}/cards/{card}/cancel", json={"reason": "the holder died", "outlet": OUTLET},
                       headers=key()), 409, "cancel.cash_outlet", "outlet")
    refused(clerk.post(f"{API}/cards/{card}/cancel", json={}, headers=key()), 422, "request.invalid", "reason")
    done = ok(clerk.post(f"{API}/cards/{card}/cancel", json={"reason": "the holder died", "outlet": BANK},
                         headers=key()))
    assert done["status"] == "cancelled" and done["payout_fen"] == 12_345
    account = ok(clerk.get(f"{API}/accounts/{card}"))
    assert account["status"] == "closed" and account["balance_fen"] == 0


def test_a_pin_reset_checks_the_holder_and_sets_the_pin_on_the_card(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    card = active_card(clerk, LIU, "刘建国")
    wrong = clerk.post(f"{API}/cards/{card}/pin/reset", json={"citizen_id": CHEN, "new_pin": "731904"}, headers=key())
    refused(wrong, 409, "pin.identity", "citizen_id")
    weak = clerk.post(f"{API}/cards/{card}/pin/reset", json={"citizen_id": LIU, "new_pin": "12ab"}, headers=key())
    assert refused(weak, 422)["field"] == "new_pin"
    done = ok(clerk.post(f"{API}/cards/{card}/pin/reset", json={"citizen_id": LIU, "new_pin": "731904"},
                         headers=key()))
    assert done["event"] == "pin_reset" and done["operator"] == "BJ-C1" and done["tries_left"] == 3
    reader = open_reader(f"emulator:{_card_file(live_server.home, card)}")
    try:
        assert read_card(reader).card_number == card
        counter.change_pin(reader, "731904", "864213")  # the chip takes the new PIN as the old one
    finally:
        reader.close()
