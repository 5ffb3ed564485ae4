"""Reads are of the caller's region's records; another region's resident is seen masked at a counter only;
delivery addresses and account numbers masked unless revealed."""

from __future__ import annotations

from api_cards_world import (API, LIU, OUTLET, PIN, TJ_OUTLET, TJ_WANG, activate, apply, issue, key, ok, receive, refused,
                             register)

from sbcard.store.world import open_world

ADDRESS = "北京市朝阳区建国路88号院3号楼2单元501"


def _tianjin(signed_in) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    tj_clerk = signed_in("TJ-C1")
    receive(tj_clerk, outlet=TJ_OUTLET, count=1)
    register(tj_clerk, TJ_WANG, "王海", region="120103")
    application = apply(tj_clerk, TJ_WANG)["application_id"]
    card = issue(tj_clerk, application)["card_number"]
    activate(tj_clerk, card)
    return application, card


def test_an_auditor_reads_only_their_own_regions_records(live_server, signed_in):
    application, card = _tianjin(signed_in)
    auditor = signed_in("BJ-AUD")
    for path in (f"/cards/{card}", f"/cards/{TJ_WANG}", f"/cards/{card}/history", f"/accounts/{card}",
                 f"/persons/{TJ_WANG}", f"/applications/{application}"):
        refused(auditor.get(API + path), 403, "scope.region", "scope")
        refused(auditor.get(API + path, params={"show_personal": "true"}), 403, "scope.region")
    assert ok(auditor.get(f"{API}/applications"))["applications"] == []
    tj_clerk = signed_in("TJ-C1")
    assert ok(tj_clerk.get(f"{API}/accounts/{card}"))["card_number"] == card
    assert ok(tj_clerk.get(f"{API}/cards/{card}", params={"show_personal": "true"}))["citizen_id"] == TJ_WANG


def test_a_counter_sees_another_regions_resident_masked_only(live_server, signed_in):
    _, card = _tianjin(signed_in)
    with open_world(live_server.home) as world:
        audits = world.region("tj")["audit_log"].count
    for code in ("BJ-C1", "BJ-SUP"):
        clerk = signed_in(code)
        person = ok(clerk.get(f"{API}/persons/{TJ_WANG}"))
        assert person["citizen_id"] != TJ_WANG and person["name"] == "王*"
        shown = ok(clerk.get(f"{API}/cards/{card}"))
        assert shown["citizen_id"] != TJ_WANG and TJ_WANG not in str(shown)
        refused(clerk.get(f"{API}/persons/{TJ_WANG}", params={"show_personal": "true"}), 403, "scope.region")
        refused(clerk.get(f"{API}/cards/{card}", params={"show_personal": "true"}), 403, "scope.region")
        refused(clerk.get(f"{API}/cards/{card}/history"), 403, "scope.region")
        refused(clerk.get(f"{API}/accounts/{card}"), 403, "scope.region")
    with open_world(live_server.home) as world:
        assert world.region("tj")["audit_log"].count == audits  # nothing was revealed


def test_a_delivery_address_is_masked_unless_revealed(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    register(clerk, LIU, "刘建国", photo_ref="photos/liu.jpg")
    made = apply(clerk, LIU, online=True, address=ADDRESS)
    assert ADDRESS not in str(made) and made["delivery_address"].startswith(ADDRESS[:6])
    application = made["application_id"]
    assert ADDRESS not in str(ok(clerk.get(f"{API}/applications")))
    assert ADDRESS not in str(ok(clerk.get(f"{API}/applications/{application}")))
    stepped = ok(clerk.post(f"{API}/applications/{application}/status", json={"status": "in_production"},
                            headers=key()))
    assert ADDRESS not in str(stepped)
    auditor = signed_in("BJ-AUD")
    assert ADDRESS not in str(ok(auditor.get(f"{API}/applications/{application}")))
    revealed = ok(auditor.get(f"{API}/applications/{application}", params={"show_personal": "true"}))
    assert revealed["delivery_address"] == ADDRESS
    with open_world(live_server.home) as world:
        shown = [r for r in world.region("bj")["audit_log"].rows if r["action"] == "show_personal"]
        assert [(r["operator"], r["subject"]) for r in shown] == [("BJ-AUD", LIU)]


def test_card_show_masks_the_account_number(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    register(clerk, LIU, "刘建国")
    card = issue(clerk, apply(clerk, LIU)["application_id"])["card_number"]
    account = ok(clerk.post(f"{API}/cards/{card}/activate", params={"show_personal": "true"},  # whole, audited
                            json={"pin": PIN}, headers=key()))["account_no"]
    shown = ok(clerk.get(f"{API}/cards/{card}"))
    assert shown["account_no"] == account[:6] + "*" * (len(account) - 10) + account[-4:]
    assert ok(clerk.get(f"{API}/cards/{card}", params={"show_personal": "true"}))["account_no"] == account


def test_stock_answers_name_card_files_relative_to_the_worlds_home(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    delivery = receive(clerk, count=1)
    stock = ok(clerk.get(f"{API}/outlets/{OUTLET}/stock"))
    for answer in (delivery, stock):
        assert str(live_server.home) not in str(answer) and "/tmp" not in str(answer)
    [path] = delivery["paths"]
    assert path.startswith("cards/") and (live_server.home / path).is_file()
    assert stock["blanks"][0]["path"] == path
    register(clerk, LIU, "刘建国")
    issued = issue(clerk, apply(clerk, LIU)["application_id"], reader=f"emulator:{path}")  # usable as it is shown
    assert issued["virtual_path"] == path
