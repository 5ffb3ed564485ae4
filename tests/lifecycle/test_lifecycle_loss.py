"""挂失 and 解挂 through the CLI: temporary losses lapse, formal ones last, the hub follows."""

from __future__ import annotations

from datetime import timedelta

from lifecycle_world import NOW, OUTLET, blacklist, events, hub_card, query


def _account_status(home, card: str) -> str:
    [row] = query(home, "bj", "SELECT status FROM accounts WHERE card_number = ?", (card,))
    return row["status"]


def test_a_loss_by_phone_stops_the_card_and_lapses_after_five_days(sbcard, home, issue, clock) -> None:
    card = issue("liu")
    version_before, _ = blacklist(home)

    code, out, err, done = sbcard("card", "report-lost", card, "--temporary", "--channel", "phone",
                                  "--operator", "BJ-CALL", "--reason", "wallet stolen on line 10", "--json")
    assert code == 0, err
    assert done["status"] == "lost" and done["loss_kind"] == "temporary"
    assert done["loss_expires_at"] == (NOW + timedelta(days=5)).isoformat()
    assert hub_card(home, card)["status"] == "lost"
    version, listed = blacklist(home)
    assert version == version_before + 1 and card in listed
    assert _account_status(home, card) == "frozen"

    clock.move_to(NOW + timedelta(days=5) - timedelta(seconds=1))
    assert sbcard("card", "show", card, "--json")[3]["status"] == "lost"

    clock.move_to(NOW + timedelta(days=5, hours=2))
    assert sbcard("card", "show", card, "--json")[3]["status"] == "active"  # in effect, before any sweep
    code, out, err, swept = sbcard("card", "lapse-losses", "--json")
    assert code == 0, err
    assert [e["card_number"] for e in swept["lapsed"]] == [card]
    assert hub_card(home, card)["status"] == "active"
    assert blacklist(home) == (version + 1, listed - {card})
    assert _account_status(home, card) == "active"
    lapse = events(home, "bj", card)[-1]
    assert (lapse["event"], lapse["operator"], lapse["at"]) == ("loss_lapsed", "system", done["loss_expires_at"])

    assert sbcard("card", "lapse-losses", "--json")[3] == {"lapsed": []}  # once only


def test_a_temporary_loss_confirmed_at_a_counter_never_lapses(sbcard, home, issue, clock) -> None:
    card = issue("liu")
    assert sbcard("card", "report-lost", card, "--channel", "app", "--operator", "BJ-CALL")[0] == 0

    clock.move_to(NOW + timedelta(days=4))
    code, out, err, done = sbcard("card", "confirm-loss", card, "--operator", "BJ-C1", "--outlet", OUTLET, "--json")
    assert code == 0, err
    assert (done["status"], done["loss_kind"], done["loss_expires_at"]) == ("lost", "formal", None)

    clock.move_to(NOW + timedelta(days=30))
    assert sbcard("card", "lapse-losses", "--json")[3] == {"lapsed": []}
    assert sbcard("card", "show", card, "--json")[3]["status"] == "lost"
    assert card in blacklist(home)[1]


def test_a_formal_loss_is_recorded_and_unblocked_at_a_counter(sbcard, home, issue, clock) -> None:
    card = issue("liu")
    code, out, err, _ = sbcard("card", "report-lost", card, "--operator", "BJ-C1", "--outlet", OUTLET,
                               "--reason", "lost on holiday")
    assert code == 0, err
    assert "lost (formal)" in out

    clock.move_to(NOW + timedelta(days=40))
    code, out, err, done = sbcard("card", "unblock", card, "--operator", "BJ-C1", "--outlet", OUTLET,
                                  "--reason", "found at home", "--json")
    assert code == 0, err
    assert (done["status"], done["loss_kind"]) == ("active", None)
    assert hub_card(home, card)["status"] == "active"
    assert card not in blacklist(home)[1]
    assert _account_status(home, card) == "active"

    lost, unblocked = events(home, "bj", card)[-2:]
    assert {k: lost[k] for k in ("event", "operator", "outlet", "at", "reason")} == {
        "event": "reported_lost", "operator": "BJ-C1", "outlet": OUTLET, "at": NOW.isoformat(),
        "reason": "lost on holiday"}
    assert lost["details"] == {"channel": "counter"}
    assert {k: unblocked[k] for k in ("event", "operator", "outlet", "at", "reason")} == {
        "event": "unblocked", "operator": "BJ-C1", "outlet": OUTLET, "at": (NOW + timedelta(days=40)).isoformat(),
        "reason": "found at home"}
    history = [e["event"] for e in sbcard("card", "history", card, "--json")[3]]
    assert history[-2:] == ["reported_lost", "unblocked"]


def test_a_tianjin_card_reported_lost_at_a_beijing_outlet_is_recorded_in_tianjin(sbcard, home, issue) -> None:
    card = issue("chen", outlet="TJ-120103-01")
    code, out, err, done = sbcard("card", "report-lost", card, "--operator", "BJ-C1", "--outlet", OUTLET, "--json")
    assert code == 0, err
    last = events(home, "tj", card)[-1]
    assert (last["event"], last["operator"], last["outlet"]) == ("reported_lost", "BJ-C1", OUTLET)
    assert query(home, "bj", "SELECT count(*) AS n FROM card_events")[0]["n"] == 0
    assert hub_card(home, card)["status"] == "lost"


def test_a_lapsed_loss_may_be_reported_again_and_its_lapse_is_written_first(sbcard, home, issue, clock) -> None:
    card = issue("liu")
    sbcard("card", "report-lost", card, "--channel", "phone", "--operator", "BJ-CALL")
    version, _ = blacklist(home)
    clock.move_to(NOW + timedelta(days=6))
    code, out, err, done = sbcard("card", "report-lost", card, "--channel", "app", "--operator", "BJ-CALL", "--json")
    assert code == 0, err
    assert done["loss_expires_at"] == (NOW + timedelta(days=11)).isoformat()
    assert [e["event"] for e in events(home, "bj", card)[-3:]] == ["reported_lost", "loss_lapsed", "reported_lost"]
    assert blacklist(home)[0] == version  # it never left the list
