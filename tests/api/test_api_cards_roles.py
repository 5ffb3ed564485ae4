"""Who may do what: each role tried on an act it may not do (403 with the reason), and the scope of an account."""

from __future__ import annotations

import pytest
from api_cards_world import (API, BANK, LIU, OTHER_OUTLET, OUTLET, TJ_OUTLET, active_card, apply, key, ok, receive,
                             refused, register)

from sbcard.store.world import open_world

# (staff account, method, path, body) that its role may not do
FORBIDDEN = [
    ("BJ-AUD", "post", "/applications", {"citizen_id": LIU, "outlet": OUTLET}),
    ("BJ-AUD", "post", f"/outlets/{OUTLET}/stock/receive", {"count": 1}),
    ("BJ-ADMIN", "get", "/applications", None),
    ("BJ-ADMIN", "get", f"/persons/{LIU}", None),
    ("BJ-ADMIN", "post", "/persons", {"citizen_id": LIU, "name": "刘建国", "region": "110105",
                                      "insurance": "employee"}),
    ("BJ-FM", "post", "/cards/1100000000000001/lost", {}),
    ("BJ-FC", "post", "/cards/1100000000000001/unblock", {}),
    ("BJ-FM", "post", "/accounts/1100000000000001/deposit", {"amount_fen": 100, "outlet": BANK}),
    ("BJ-AUD", "post", "/cards/1100000000000001/pin/reset", {"citizen_id": LIU, "new_pin": "731904"}),
    ("BJ-ADMIN", "get", f"/outlets/{OUTLET}/stock", None),
]


@pytest.mark.parametrize("code, method, path, body", FORBIDDEN, ids=[f"{c}-{m}-{p}" for c, m, p, _ in FORBIDDEN])
def test_a_role_that_may_not_is_refused_with_the_reason(live_server, signed_in, code, method, path, body):
    client = signed_in(code)
    answer = client.request(method.upper(), API + path, json=body, headers=key() if method == "post" else None)
    error = refused(answer, 403, "role.forbidden", "role")
    assert code in error["message"] and "counter" in error["message"]


def test_the_operator_is_the_sessions_whatever_the_body_says(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    receive(clerk, count=1)
    answer = clerk.post(f"{API}/applications", json={"citizen_id": LIU, "operator": "BJ-SUP"}, headers=key())
    assert ok(answer, 201)["operator"] == "BJ-C1"


def test_a_clerk_with_an_outlet_acts_only_there(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    refused(clerk.post(f"{API}/outlets/{OTHER_OUTLET}/stock/receive", json={"count": 1}, headers=key()),
            403, "scope.outlet", "outlet")
    refused(clerk.get(f"{API}/outlets/{OTHER_OUTLET}/stock"), 403, "scope.outlet")
    refused(clerk.post(f"{API}/applications", json={"citizen_id": LIU, "outlet": OTHER_OUTLET}, headers=key()),
            403, "scope.outlet")
    refused(clerk.post(f"{API}/accounts/1100000000000001/deposit", json={"amount_fen": 100, "outlet": BANK},
                       headers=key()), 403, "scope.outlet")
    with open_world(live_server.home) as world:
        assert world.region("bj")["applications"].count == 0
        assert world.region("bj")["blank_cards"].count == 0


def test_staff_act_only_in_their_own_regions_service(live_server, signed_in):
    bj_supervisor = signed_in("BJ-SUP")
    refused(bj_supervisor.post(f"{API}/outlets/{TJ_OUTLET}/stock/receive", json={"count": 1}, headers=key()),
            403, "scope.region", "scope")
    refused(bj_supervisor.get(f"{API}/outlets", params={"region": "120103"}), 403, "scope.region")
    tianjin = {"citizen_id": "120103198005123415", "name": "王海", "region": "120103", "insurance": "employee"}
    refused(bj_supervisor.post(f"{API}/persons", json=tianjin), 403, "scope.region")
    tj_clerk = signed_in("TJ-C1")
    refused(tj_clerk.post(f"{API}/applications", json={"citizen_id": LIU, "outlet": OUTLET}, headers=key()),
            403, "scope.region")


def test_a_clerk_of_another_outlet_may_not_issue_an_application_made_here(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国")
    receive(clerk, count=1)
    application = apply(clerk, LIU)["application_id"]
    tj_clerk = signed_in("TJ-C1")
    refused(tj_clerk.post(f"{API}/applications/{application}/issue", headers=key()), 403, "scope.region")
    with open_world(live_server.home) as world:
        assert world.region("bj")["cards"].count == 0


def test_a_supervisor_acts_at_any_outlet_of_the_region_and_an_auditor_reads(live_server, signed_in):
    supervisor = signed_in("BJ-SUP")
    receive(supervisor, outlet=OTHER_OUTLET, count=1)
    card = active_card(supervisor, LIU, "刘建国", outlet=OTHER_OUTLET)
    auditor = signed_in("BJ-AUD")
    assert ok(auditor.get(f"{API}/cards/{card}"))["status"] == "active"
    assert ok(auditor.get(f"{API}/accounts/{card}"))["card_number"] == card
    assert ok(auditor.get(f"{API}/outlets/{OTHER_OUTLET}/stock"))["used"] == 1
    outlets = ok(auditor.get(f"{API}/outlets", params={"kind": "bank_branch"}))["outlets"]
    assert outlets and {o["kind"] for o in outlets} == {"bank_branch"} and {o["node"] for o in outlets} == {"bj"}
