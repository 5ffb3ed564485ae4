"""Issuance over HTTP: register, apply, issue on a blank of the clerk's emulated stock, activate, show."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from api_cards_world import (API, CHEN, LIU, OUTLET, PIN, ZHAO, activate, apply, issue, key, ok, receive, refused,
                             register)

from sbcard.store.world import open_world
from sbcard.chip.reading import read_card
from terminals.drivers.spec import open_reader


def _read(path):  # type: ignore[no-untyped-def]
    reader = open_reader(f"emulator:{path}")
    try:
        return read_card(reader)
    finally:
        reader.close()


def test_an_issuance_end_to_end_over_http(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    person = register(clerk, LIU, "刘建国", phone="13812345678")
    assert person["citizen_id"] == "110105********" + LIU[-4:] and person["name"] == "刘**"
    assert person["phone"] == "138****5678" and person["node"] == "bj"
    delivery = receive(clerk, count=2)
    assert delivery["received"] == 2 and delivery["in_stock"] == 2

    application = apply(clerk, LIU)  # the outlet is the clerk's own
    assert application["status"] == "applied" and application["outlet"] == OUTLET
    assert application["operator"] == "BJ-C1" and LIU not in str(application)
    listed = ok(clerk.get(f"{API}/applications", params={"status": "applied"}))["applications"]
    assert [a["application_id"] for a in listed] == [application["application_id"]]

    issued = issue(clerk, application["application_id"])
    first_blank = sorted(delivery["chip_serials"])[0]
    assert issued["status"] == "issued" and issued["chip_serial"] == first_blank and issued["apdus"] > 0
    card = issued["card_number"]
    assert _read(live_server.home / issued["virtual_path"]).card_number == card  # the blank became the card

    stock = ok(clerk.get(f"{API}/outlets/{OUTLET}/stock"))
    assert (stock["in_stock"], stock["used"]) == (1, 1)
    assert {b["chip_serial"]: b["used_for"] for b in stock["blanks"]}[first_blank] == card

    activated = activate(clerk, card)
    assert activated["status"] == "active" and activated["operator"] == "BJ-C1"
    shown = ok(clerk.get(f"{API}/cards/{card}"))
    assert shown["status"] == "active" and shown["name"] == "刘**" and shown["citizen_id"].startswith("110105****")
    assert ok(clerk.get(f"{API}/applications/{application['application_id']}"))["status"] == "issued"
    events = [e["event"] for e in ok(clerk.get(f"{API}/cards/{card}/history"))["events"]]
    assert events == ["issued", "activated"]
    account = ok(clerk.get(f"{API}/accounts/{card}"))
    assert account["status"] == "active" and account["balance_fen"] == 0


def test_the_pin_is_never_kept_nor_logged(live_server, signed_in, caplog):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    receive(clerk, count=1)
    card = issue(clerk, apply(clerk, LIU)["application_id"])["card_number"]
    with caplog.at_level("DEBUG"):
        activate(clerk, card, pin=PIN)
    assert PIN not in caplog.text
    with open_world(live_server.home) as world:
        kept = [row["response"] for row in world.region("bj").query("SELECT response FROM idempotency_keys")]
        hashes = [row["request_hash"] for row in world.region("bj").query("SELECT request_hash FROM idempotency_keys")]
        audit = str(list(world.region("bj").query("SELECT * FROM audit_log")))
    assert kept and PIN not in str(kept) + audit
    assert len(hashes) == len(set(hashes))


def test_a_retried_issuance_answers_the_first_card_and_issues_nothing_more(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    receive(clerk, count=3)
    application = apply(clerk, LIU)["application_id"]
    headers = key()
    first = clerk.post(f"{API}/applications/{application}/issue", headers=headers)
    again = clerk.post(f"{API}/applications/{application}/issue", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert ok(clerk.get(f"{API}/outlets/{OUTLET}/stock"))["used"] == 1
    with open_world(live_server.home) as world:
        assert world.region("bj")["cards"].count == 1
    # a new key asks again: the application is issued already, so the rule refuses it
    refused(clerk.post(f"{API}/applications/{application}/issue", headers=key()), 409, "application.issued",
            "application_id")
    # the same key with another request is not a retry
    refused(clerk.post(f"{API}/applications/{application}/issue", json={"chip_serial": "x"}, headers=headers),
            422, "idempotency.mismatch")


def test_a_retried_application_is_one_application(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    receive(clerk, count=1)
    headers = key()
    first = ok(clerk.post(f"{API}/applications", json={"citizen_id": LIU}, headers=headers), 201)
    again = ok(clerk.post(f"{API}/applications", json={"citizen_id": LIU}, headers=headers), 201)
    assert again == first
    assert len(ok(clerk.get(f"{API}/applications"))["applications"]) == 1


def test_a_card_change_without_an_idempotency_key_is_refused(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    refused(clerk.post(f"{API}/outlets/{OUTLET}/stock/receive", json={"count": 1}), 400, "idempotency.missing",
            "Idempotency-Key")
    receive(clerk, count=1)
    refused(clerk.post(f"{API}/applications", json={"citizen_id": LIU}), 400, "idempotency.missing")


def test_the_blank_is_named_by_chip_serial_or_reader_never_both(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    delivery = receive(clerk, count=2)
    application = apply(clerk, LIU)["application_id"]
    last = sorted(delivery["chip_serials"])[-1]
    path = dict(zip(delivery["chip_serials"], delivery["paths"]))[last]
    both = clerk.post(f"{API}/applications/{application}/issue", json={"chip_serial": last, "reader": f"emulator:{path}"},
                      headers=key())
    refused(both, 422, "reader.ambiguous", "reader")
    outside = clerk.post(f"{API}/applications/{application}/issue", json={"reader": "emulator:/etc/passwd"},
                         headers=key())
    refused(outside, 422, "reader.unknown_card", "reader")
    pcsc = clerk.post(f"{API}/applications/{application}/issue", json={"reader": "pcsc:"}, headers=key())
    refused(pcsc, 422, "reader.unsupported", "reader")
    issued = issue(clerk, application, reader=f"emulator:{path}")
    assert issued["chip_serial"] == last


def test_an_empty_stock_is_refused_clearly(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    receive(clerk, count=1)
    application = apply(clerk, LIU)["application_id"]
    serial = ok(clerk.get(f"{API}/outlets/{OUTLET}/stock"))["blanks"][0]["chip_serial"]
    ok(clerk.post(f"{API}/outlets/{OUTLET}/stock/spoil", json={"chip_serial": serial, "reason": "cracked"},
                  headers=key()))
    error = refused(clerk.post(f"{API}/applications/{application}/issue", headers=key()), 409, "stock.empty")
    assert OUTLET in error["message"]


def test_concurrent_issuances_take_different_blanks(live_server, signed_in):
    clerk, supervisor = signed_in("BJ-C1"), signed_in("BJ-SUP")
    people = [(clerk, LIU, "刘建国"), (supervisor, CHEN, "陈晓梅"), (clerk, ZHAO, "赵志强")]
    receive(clerk, count=len(people))
    applications = [(client, register(client, cid, name) and apply(client, cid, outlet=OUTLET)["application_id"])
                    for client, cid, name in people]
    with ThreadPoolExecutor(len(applications)) as pool:
        answers = list(pool.map(lambda pair: pair[0].post(f"{API}/applications/{pair[1]}/issue", headers=key()),
                                applications))
    assert [a.status_code for a in answers] == [201] * len(people), [a.text for a in answers]
    assert len({a.json()["chip_serial"] for a in answers}) == len(people)
    assert ok(clerk.get(f"{API}/outlets/{OUTLET}/stock"))["in_stock"] == 0


def test_an_online_application_is_produced_then_mailed(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国", photo_ref="photos/liu.jpg")
    receive(clerk, count=1)
    application = apply(clerk, LIU, online=True, address="北京市朝阳区建国路88号")
    assert application["channel"] == "online" and application["delivery_address"]
    number = application["application_id"]
    refused(clerk.post(f"{API}/applications/{number}/issue", headers=key()), 409, "application.status",
            "application_id")
    step = ok(clerk.post(f"{API}/applications/{number}/status", json={"status": "in_production"}, headers=key()))
    assert step["status"] == "in_production"
    card = issue(clerk, number)["card_number"]
    mailed = ok(clerk.post(f"{API}/applications/{number}/status", json={"status": "mailed"}, headers=key()))
    assert mailed["status"] == "mailed" and mailed["card_number"] == card
    refused(clerk.post(f"{API}/applications/{number}/status", json={"status": "withdrawn"}, headers=key()), 409,
            "application.status", "status")
