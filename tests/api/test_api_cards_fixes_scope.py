"""A card act with no outlet of the caller is for the card's own region's staff; a reader never traces its APDUs."""

from __future__ import annotations

import pytest
from api_cards_world import (API, CHEN, LIU, OUTLET, PIN, TJ_OUTLET, TJ_WANG, active_card, activate, apply, issue, key, ok,
                             receive, refused, register)

from sbcard.store.world import open_world


def _tianjin_card(signed_in) -> str:  # type: ignore[no-untyped-def]
    tj_clerk = signed_in("TJ-C1")
    receive(tj_clerk, outlet=TJ_OUTLET, count=1)
    register(tj_clerk, TJ_WANG, "王海", region="120103")
    card = issue(tj_clerk, apply(tj_clerk, TJ_WANG)["application_id"])["card_number"]
    activate(tj_clerk, card)
    return card


ACTS = [
    ("lost", None),
    ("lost", {"channel": "phone"}),
    ("lost", {"channel": "app"}),
    ("unblock", {}),
    ("confirm-loss", None),
    ("cancel", {"reason": "the holder died"}),
    ("pin/reset", {"citizen_id": TJ_WANG, "new_pin": "731904"}),
]


@pytest.mark.parametrize("path, body", ACTS, ids=[f"{p}-{b}" for p, b in ACTS])
def test_staff_with_no_outlet_act_only_on_their_own_regions_cards(live_server, signed_in, path, body):
    card = _tianjin_card(signed_in)
    for code in ("BJ-SUP", "BJ-C2"):  # a Beijing supervisor, a Beijing clerk with no outlet
        answer = signed_in(code).post(f"{API}/cards/{card}/{path}", json=body, headers=key())
        refused(answer, 403, "scope.region", "scope")
    with open_world(live_server.home) as world:
        assert world.region("tj")["cards"].get(card)["status"] == "active"


def test_a_phone_loss_is_taken_by_the_cards_own_regions_staff(live_server, signed_in):
    card = _tianjin_card(signed_in)
    refused(signed_in("BJ-C1").post(f"{API}/cards/{card}/lost", json={"channel": "phone"}, headers=key()),
            403, "scope.region")
    lost = ok(signed_in("TJ-C1").post(f"{API}/cards/{card}/lost", json={"channel": "phone"}, headers=key()))
    assert lost["loss_kind"] == "temporary"


def test_a_loss_with_no_body_is_a_counter_loss_at_the_callers_outlet(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    card = active_card(clerk, LIU, "刘建国")
    lost = ok(clerk.post(f"{API}/cards/{card}/lost", headers=key()))
    assert (lost["loss_kind"], lost["outlet"]) == ("formal", OUTLET)


def _card_file(home, card: str) -> str:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return world.region("bj")["cards"].get(card)["virtual_path"]


@pytest.mark.parametrize("option", ["trace=1", "tear=5&trace=1", "trace=0", "verbose=1"])
def test_a_reader_that_would_trace_its_apdus_is_refused(live_server, signed_in, capfd, option):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    register(clerk, LIU, "刘建国")
    card = issue(clerk, apply(clerk, LIU)["application_id"])["card_number"]
    spec = f"emulator:{_card_file(live_server.home, card)}?{option}"
    answer = clerk.post(f"{API}/cards/{card}/activate", json={"pin": PIN, "reader": spec}, headers=key())
    refused(answer, 422, "reader.option", "reader")
    activate(clerk, card)
    answer = clerk.post(f"{API}/cards/{card}/pin/reset", json={"citizen_id": LIU, "new_pin": "731904",
                                                               "reader": spec}, headers=key())
    refused(answer, 422, "reader.option", "reader")
    err = capfd.readouterr().err
    assert PIN not in err and "731904" not in err and str(live_server.home) not in answer.text


def test_a_bad_tear_option_names_no_path_of_the_server(live_server, signed_in):
    clerk = signed_in("BJ-C1")
    receive(clerk, count=1)
    register(clerk, LIU, "刘建国")
    card = issue(clerk, apply(clerk, LIU)["application_id"])["card_number"]
    path = _card_file(live_server.home, card)
    answer = clerk.post(f"{API}/cards/{card}/activate", json={"pin": PIN, "reader": f"emulator:{path}?tear=x"},
                        headers=key())
    assert str(live_server.home) not in refused(answer, 422, "reader.bad_spec", "reader")["message"]
    answer = clerk.post(f"{API}/cards/{card}/activate", json={"pin": PIN, "reader": "emulator:/etc/passwd"},
                        headers=key())
    refused(answer, 422, "reader.unknown_card", "reader")


def test_a_blank_torn_complete_is_skipped_and_its_number_never_given_again(live_server, signed_in):
    from sbcard.chip import profile
    from sbcard.chip.reading import read_card
    from terminals.drivers.emulator import EmulatorReader

    clerk = signed_in("BJ-C1")
    serials = sorted(receive(clerk, count=3)["chip_serials"])
    register(clerk, LIU, "刘建国")
    register(clerk, CHEN, "陈晓梅")
    liu = apply(clerk, LIU)["application_id"]
    with open_world(live_server.home) as world:
        first = world.paths.resolve(world.region("bj")["blank_cards"].get(serials[0])["path"])
    torn = clerk.post(f"{API}/applications/{liu}/issue", json={"reader": f"emulator:{first}?tear=73"}, headers=key())
    assert torn.status_code >= 400 and "error" in torn.json(), torn.text
    with EmulatorReader(first) as reader:
        chip = read_card(reader)
    assert chip.life_state is profile.LifeState.PERSONALISED and chip.citizen_id == LIU  # torn at its last write

    chen = issue(clerk, apply(clerk, CHEN)["application_id"])  # the next blank, not the torn one
    assert chen["chip_serial"] == serials[1] and chen["card_number"] != chip.card_number
    again = clerk.post(f"{API}/applications/{liu}/issue", json={"chip_serial": serials[0]}, headers=key())
    refused(again, 409, "card.not_blank")
    liu_card = issue(clerk, liu)
    assert liu_card["chip_serial"] == serials[2] and liu_card["card_number"] != chip.card_number
    with open_world(live_server.home) as world:
        assert world.region("bj")["cards"].count == 2
        assert world.region("bj")["blank_cards"].get(serials[0])["status"] == "in_stock"  # to be spoiled
