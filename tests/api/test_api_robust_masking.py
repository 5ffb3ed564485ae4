"""Activate, replace and cancel answer the account number masked, as every other financial identifier is;
whole only to a role that may reveal and asks (``show_personal``), and that reveal is audited."""

from __future__ import annotations

from api_cards_world import API, BANK, CHEN, LIU, PIN, activate, active_card, apply, issue, key, ok, receive, register

from sbcard.store.world import open_world


def _masked(account: str) -> bool:
    return "*" in account and account[:6].isdigit() and account[-4:].isdigit()


def test_activate_replace_cancel_mask_the_account_unless_revealed(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=4)
    register(clerk, LIU, "刘建国")
    card = issue(clerk, apply(clerk, LIU)["application_id"])["card_number"]
    activated = activate(clerk, card)
    assert _masked(activated["account_no"]), activated["account_no"]

    replaced = ok(clerk.post(f"{API}/cards/{card}/replace", json={"reason": "chip worn"}, headers=key()), 201)
    assert _masked(replaced["account_no"]), replaced["account_no"]
    new = replaced["new_card"]
    revealed = ok(clerk.post(f"{API}/cards/{new}/activate", params={"show_personal": "true"},
                             json={"pin": PIN}, headers=key()))
    assert "*" not in revealed["account_no"] and revealed["account_no"][:6] == activated["account_no"][:6]
    with open_world(live_server.home) as world:
        audits = list(world.region("bj").query("SELECT details FROM audit_log WHERE action = 'show_personal'"))
    assert any(f"/cards/{new}/activate" in a["details"] for a in audits), audits

    other = active_card(clerk, CHEN, "陈晓梅")
    cancelled = ok(signed_in("BJ-C2").post(f"{API}/cards/{other}/cancel", json={"reason": "moved away", "outlet": BANK},
                              headers=key()))
    assert cancelled["account_no"] is None or _masked(cancelled["account_no"]), cancelled

