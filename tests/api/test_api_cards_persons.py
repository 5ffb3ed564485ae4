"""Persons and personal data over HTTP: masked answers, the audited reveal, residence, bad input naming its field."""

from __future__ import annotations

import json

import pytest
from api_cards_world import API, BANK, CHEN, LIU, active_card, key, ok, receive, refused, register

from sbcard.store.world import open_world


def _reveals(home) -> list[dict]:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return list(world.region("bj").query("SELECT * FROM audit_log WHERE action = 'show_personal' ORDER BY id"))


def test_a_person_is_masked_unless_revealed_and_the_reveal_is_audited(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国", phone="13812345678", address="北京市朝阳区建国路88号")
    masked = ok(clerk.get(f"{API}/persons/{LIU}"))
    assert masked["citizen_id"] == LIU[:6] + "********" + LIU[-4:] and masked["name"] == "刘**"
    assert masked["phone"] == "138****5678" and "建国路" not in masked["address"]
    assert _reveals(live_server.home) == []
    auditor = signed_in("BJ-AUD")
    shown = ok(auditor.get(f"{API}/persons/{LIU}", params={"show_personal": "true"}))
    assert (shown["citizen_id"], shown["name"], shown["phone"]) == (LIU, "刘建国", "13812345678")
    [entry] = _reveals(live_server.home)
    assert entry["operator"] == "BJ-AUD" and entry["subject"] == LIU


def test_a_role_that_may_not_reveal_is_refused(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    # no staff role outside counter, supervisor and auditor reads persons at all; may_reveal is the second gate
    refused(signed_in("BJ-FM").get(f"{API}/persons/{LIU}", params={"show_personal": "true"}), 403, "role.forbidden")


def test_a_cards_holder_is_revealed_only_on_request_and_audited(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    card = active_card(clerk, LIU, "刘建国")
    masked = ok(clerk.get(f"{API}/cards/{LIU}"))  # by the holder's citizen ID
    assert masked["card_number"] == card and masked["name"] == "刘**" and LIU not in json.dumps(masked)
    shown = ok(clerk.get(f"{API}/cards/{card}", params={"show_personal": "true"}))
    assert (shown["citizen_id"], shown["name"]) == (LIU, "刘建国")
    [entry] = _reveals(live_server.home)
    assert entry["operator"] == "BJ-C1" and entry["subject"] == card and LIU not in entry["details"]


def test_residence_is_recorded_by_the_registrys_staff(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, CHEN, "陈晓梅")
    done = ok(clerk.post(f"{API}/persons/{CHEN}/residence", json={"residence": "hukou"}))
    assert done["residence"] == "hukou" and done["name"] == "陈**"
    refused(signed_in("TJ-C1").post(f"{API}/persons/{CHEN}/residence", json={"residence": "none"}),
            403, "scope.region")
    refused(clerk.post(f"{API}/persons/{CHEN}/residence", json={"residence": "abroad"}), 422, "request.invalid",
            "residence")


def test_a_person_registered_twice_is_refused(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    again = clerk.post(f"{API}/persons", json={"citizen_id": LIU, "name": "刘建国", "region": "110105",
                                               "insurance": "employee"})
    refused(again, 409, "person.exists", "citizen_id")


BAD_PERSONS = [
    ({"citizen_id": LIU[:-1] + ("0" if LIU[-1] != "0" else "1")}, "citizen_id"),
    ({"region": "999999"}, "region"),
    ({"insurance": "private"}, "insurance"),
    ({"phone": "12345"}, "phone"),
    ({"ethnicity": 77}, "ethnicity"),
    ({"ethnicity": "1"}, "ethnicity"),
    ({"retired": True, "insurance": "resident"}, "retired"),
    ({"guardian_relation": "母亲"}, "guardian_id"),
    ({"photo_ref": "x" * 201}, "photo_ref"),
]


@pytest.mark.parametrize("change, field", BAD_PERSONS, ids=[f for _, f in BAD_PERSONS])
def test_a_bad_person_is_422_naming_the_field(live_server, signed_in, change, field):
    clerk = signed_in("BJ-C1")
    body = {"citizen_id": LIU, "name": "刘建国", "region": "110105", "insurance": "employee", **change}
    error = refused(clerk.post(f"{API}/persons", json=body), 422, field=field)
    assert error["message"]
    with open_world(live_server.home) as world:
        assert world.region("bj")["persons"].count == 0


@pytest.mark.parametrize("amount, field", [(12.5, "amount_fen"), ("100", "amount_fen"), (0, "amount_fen"),
                                           (-5, "amount_fen")])
def test_money_is_whole_positive_fen(live_server, signed_in, amount, field):
    clerk = signed_in("BJ-C2")
    answer = clerk.post(f"{API}/accounts/1100000000000001/deposit", json={"amount_fen": amount, "outlet": BANK},
                        headers=key())
    refused(answer, 422, field=field)


def test_cash_in_and_out_over_http(live_server, signed_in):
    clerk = signed_in("BJ-C2")
    ok(clerk.post(f"{API}/outlets/BJ-110105-01/stock/receive", json={"count": 1}, headers=key()), 201)
    card = active_card(clerk, LIU, "刘建国", outlet="BJ-110105-01")
    headers = key()
    first = ok(clerk.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": 50_000, "outlet": BANK},
                          headers=headers))
    again = ok(clerk.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": 50_000, "outlet": BANK},
                          headers=headers))
    assert again == first and first["balance_fen"] == 50_000 and first["posted"]
    out = ok(clerk.post(f"{API}/accounts/{card}/withdraw", json={"amount_fen": 20_000, "outlet": BANK},
                        headers=key()))
    assert out["balance_fen"] == 30_000
    refused(clerk.post(f"{API}/accounts/{card}/withdraw", json={"amount_fen": 20_000, "outlet": "BJ-110105-01"},
                       headers=key()), 409, "account.not_bank_branch", "outlet")
    account = ok(clerk.get(f"{API}/accounts/{card}"))
    kinds = [e["kind"] for e in account["entries"]]
    assert account["balance_fen"] == 30_000 and kinds[-2:] == ["cash_deposit", "cash_withdrawal"]


@pytest.mark.parametrize("path, body, status, field", [
    ("/applications", {"citizen_id": "110105198506151230"}, 422, "citizen_id"),
    ("/applications", {"citizen_id": LIU, "online": True}, 422, "address"),
    ("/applications", {"citizen_id": LIU, "outlet": "NOT-AN-OUTLET"}, 422, "outlet"),
    ("/cards/12345/lost", {}, 422, "card_number"),
    ("/cards/1100000000000001/lost", {"channel": "fax"}, 422, "channel"),
    ("/cards/1100000000000001/activate", {"pin": "12"}, 422, "pin"),
    ("/outlets/BJ-110105-01/stock/receive", {"count": 0}, 422, "count"),
    ("/outlets/BJ-110105-01/stock/receive", {"count": 1.0}, 422, "count"),
])
def test_bad_card_input_is_422_naming_the_field(live_server, signed_in, path, body, status, field):
    clerk = signed_in("BJ-C1")
    refused(clerk.post(API + path, json=body, headers=key()), status, field=field)
