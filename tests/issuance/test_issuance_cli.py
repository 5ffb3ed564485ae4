"""Issuance through the command line: apply, issue, activate, show, history — at home and away."""

from __future__ import annotations

from pathlib import Path

import pytest
from issuance_world import PEOPLE, ZHANG

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.commands import external_authenticate
from sbcard.chip.reading import read_card
from sbcard.services.exchange import directory as hub_directory
from sbcard.services.cards import keys
from sbcard.store.world import open_world
from terminals.drivers.emulator import EmulatorReader


def apply(sbcard, who: str, outlet: str, operator: str, *more: str) -> dict:
    code, out, err, data = sbcard("card", "apply", "--citizen-id", PEOPLE[who].citizen_id, "--outlet", outlet,
                                  "--operator", operator, *more, "--json")
    assert code == 0, err
    return data


def issue(sbcard, application_id: str, card: Path, operator: str) -> dict:
    code, out, err, data = sbcard("card", "issue", application_id, "--reader", f"emulator:{card}",
                                  "--operator", operator, "--json")
    assert code == 0, err
    return data


def test_instant_issuance_apply_issue_activate_show_history(sbcard, receive, home):
    blank, *_ = receive("TJ-120103-01", 3)
    application = apply(sbcard, "zhang", "TJ-120103-01", "TJ-C1")
    assert application["application_id"].startswith("TJ-A-20250301-")
    assert {k: application[k] for k in ("status", "kind", "channel", "issuing_region", "issuing_node")} == {
        "status": "applied", "kind": "first", "channel": "instant", "issuing_region": "120000", "issuing_node": "tj"}
    assert application["citizen_id"] == "120103********1237"  # masked, even in JSON

    issued = issue(sbcard, application["application_id"], blank, "TJ-C1")
    assert issued["card_number"].startswith("T") and issued["card_id_code"].startswith("120000D156000005")
    assert (issued["status"], issued["region"], issued["expiry_date"]) == ("issued", "120000", "2035-03-01")
    assert 40 < issued["apdus"] < 100

    with EmulatorReader(blank) as reader:  # the card says what the record says
        snapshot = read_card(reader)
    assert (snapshot.card_number, snapshot.card_id_code, snapshot.citizen_id, snapshot.name) == (
        issued["card_number"], issued["card_id_code"], ZHANG, "张三")

    code, out, err, shown = sbcard("card", "show", issued["card_number"], "--json")
    assert code == 0, err
    assert (shown["status"], shown["account_no"], shown["name"]) == ("issued", None, "张*")

    code, out, err, active = sbcard("card", "activate", issued["card_number"], "--pin", "147258",
                                    "--operator", "TJ-C1", "--json")
    assert code == 0, err
    assert active["status"] == "active"
    assert active["account_no"].startswith("621120") and len(active["account_no"]) == 19  # Tianjin's BIN

    code, out, err, shown = sbcard("card", "show", ZHANG, "--json")  # by the holder's ID
    assert code == 0, err
    assert shown["card_number"] == issued["card_number"]
    assert (shown["status"], shown["account_no"], shown["citizen_id"]) == ("active", active["account_no"],
                                                                         "120103********1237")
    code, out, err, _ = sbcard("card", "show", ZHANG)
    assert "120103********1237" in out and "张*" in out and active["account_no"] not in out

    code, out, err, events = sbcard("card", "history", issued["card_number"], "--json")
    assert code == 0, err
    assert [(e["event"], e["operator"], e["outlet"]) for e in events] == [
        ("issued", "TJ-C1", "TJ-120103-01"), ("activated", "TJ-C1", "TJ-120103-01")]
    assert all(e["at"] == "2025-03-01T09:30:00+08:00" for e in events)

    with open_world(home) as world:
        blank_row = world.region("tj")["blank_cards"].get(issued["chip_serial"])
        assert (blank_row["status"], blank_row["used_for"]) == ("used", issued["card_number"])
        assert hub_directory.card_entry(world.hub(), issued["card_number"])["status"] == "active"
        assert world.region("tj")["applications"].get(application["application_id"])["status"] == "issued"

    with EmulatorReader(blank) as reader:  # the holder's PIN is on the card
        from sbcard.chip.commands import Verify
        Verify("147258").send(reader)


def test_show_personal_reveals_and_is_audited(sbcard, receive, home):
    [blank] = receive("TJ-120103-01")
    issued = issue(sbcard, apply(sbcard, "zhang", "TJ-120103-01", "TJ-C1")["application_id"], blank, "TJ-C1")
    code, out, err, _ = sbcard("card", "show", issued["card_number"], "--show-personal", "--json")
    assert code == 2 and "--operator" in err
    code, out, err, shown = sbcard("card", "show", issued["card_number"], "--show-personal", "--operator", "BJ-C1",
                                   "--json")
    assert code == 0 and (shown["citizen_id"], shown["name"]) == (ZHANG, "张三")
    with open_world(home) as world:
        [entry] = world.region("tj")["audit_log"].rows_where("action = 'show_personal'")
    assert (entry["operator"], entry["subject"]) == ("BJ-C1", issued["card_number"])


def test_cross_region_application_is_issued_by_the_insured_region_on_the_outlets_blank(sbcard, receive, home):
    """A Tianjin-insured person at a Beijing outlet (跨省通办): Tianjin issues — its keys, its
    number, its 卡识别码 — on a blank from Beijing's stock, and the hub knows the card."""
    blank, *_ = receive("BJ-110105-01", 2)
    application = apply(sbcard, "zhang", "BJ-110105-01", "BJ-C1")
    assert (application["issuing_node"], application["outlet"]) == ("tj", "BJ-110105-01")
    issued = issue(sbcard, application["application_id"], blank, "BJ-C1")
    assert issued["card_number"].startswith("T") and issued["card_id_code"][:6] == issued["region"] == "120000"

    with open_world(home) as world:
        tj, bj = world.region("tj"), world.region("bj")
        card = tj["cards"].get(issued["card_number"])
        assert card["outlet"] == "BJ-110105-01" and not bj["cards"].count
        used = bj["blank_cards"].get(issued["chip_serial"])
        assert (used["status"], used["used_for"]) == ("used", issued["card_number"])  # Beijing's stock consumed
        entry = hub_directory.valid_card_of(world.hub(), ZHANG)
        assert (entry["card_number"], entry["issuing_region"]) == (issued["card_number"], "120000")
        tianjin_keys, beijing_keys = keys.keys_for_card(tj, card), keys.keys_for_card(bj, card)
    with EmulatorReader(blank) as reader:  # diversified from Tianjin's masters, not Beijing's
        external_authenticate(reader, tianjin_keys.maintenance, profile.CARD_KEY_INDEX)
        with pytest.raises(sw.WrongPin):
            external_authenticate(reader, beijing_keys.maintenance, profile.CARD_KEY_INDEX)

    receive("HE-130102-01")
    for outlet, operator in (("HE-130102-01", "HE-C1"), ("BJ-110105-01", "BJ-C1")):  # a second one, anywhere
        code, out, err, _ = sbcard("card", "apply", "--citizen-id", ZHANG, "--outlet", outlet, "--operator", operator)
        assert code == 1 and err.startswith("error:") and err.count("\n") == 1
        assert issued["card_number"] in err


def test_a_hebei_card_is_issued_by_the_city(sbcard, receive):
    [blank] = receive("HE-130102-01")
    issued = issue(sbcard, apply(sbcard, "wang", "HE-130102-01", "HE-C1")["application_id"], blank, "HE-C1")
    assert issued["card_number"].startswith("H") and issued["region"] == "130100"  # 石家庄
    assert issued["app_serial"].startswith("03100500")


def test_newborn_applies_with_a_guardian_and_no_photo_and_a_minor_without_one_is_refused(sbcard, receive, state):
    receive("TJ-120103-01")
    data = apply(sbcard, "newborn", "TJ-120103-01", "TJ-C1", "--guardian-id", ZHANG)
    assert (data["kind"], data["guardian_id"]) == ("newborn", "120103********1237")

    before = state()
    code, out, err, _ = sbcard("card", "apply", "--citizen-id", PEOPLE["child"].citizen_id, "--outlet",
                               "TJ-120103-01", "--operator", "TJ-C1")
    assert code == 1 and "guardian" in err and err.count("\n") == 1
    assert state() == before


def test_newborn_bundle_online_without_photo_then_made_and_mailed(sbcard, receive):
    [blank] = receive("TJ-120101-02")  # the experience centre makes online cards
    data = apply(sbcard, "newborn", "TJ-120101-02", "TJ-C1", "--guardian-id", ZHANG, "--online",
                 "--address", "天津市河西区友谊路 1 号")
    assert (data["kind"], data["channel"], data["status"]) == ("newborn", "online", "applied")
    app_id = data["application_id"]

    code, out, err, _ = sbcard("card", "issue", app_id, "--reader", f"emulator:{blank}", "--operator", "TJ-C1")
    assert code == 1 and "in_production" in err  # made only once in production
    for status in ("in_production",):
        code, out, err, data = sbcard("card", "application-status", app_id, "--set", status, "--operator", "TJ-C1",
                                      "--json")
        assert code == 0 and data["status"] == status, err
    code, out, err, _ = sbcard("card", "application-status", app_id, "--set", "mailed", "--operator", "TJ-C1")
    assert code == 1 and "issue it first" in err
    issued = issue(sbcard, app_id, blank, "TJ-C1")
    for status in ("mailed", "delivered"):
        code, out, err, data = sbcard("card", "application-status", app_id, "--set", status, "--operator", "TJ-C1",
                                      "--json")
        assert code == 0 and data["status"] == status and data["card_number"] == issued["card_number"], err
    code, out, err, events = sbcard("card", "history", issued["card_number"], "--json")
    assert [e["event"] for e in events] == ["issued", "mailed", "delivered"]
    code, out, err, listed = sbcard("card", "applications", "--status", "delivered", "--json")
    assert [a["application_id"] for a in listed] == [app_id]
    code, out, err, shown = sbcard("card", "application-status", app_id, "--json")
    assert (shown["status"], shown["delivery_address"]) == ("delivered", "天津市河西区友谊路 1 号")


def test_an_online_application_needs_a_photo_unless_newborn(sbcard, state):
    before = state()
    code, out, err, _ = sbcard("card", "apply", "--citizen-id", ZHANG, "--outlet", "TJ-120103-01",
                               "--operator", "TJ-C1", "--online", "--address", "天津市河西区")
    assert code == 1 and "photo" in err
    assert state() == before
    code, out, err, data = sbcard("card", "apply", "--citizen-id", PEOPLE["li"].citizen_id, "--outlet",
                                  "BJ-110105-01", "--operator", "BJ-C1", "--online", "--address", "北京市朝阳区",
                                  "--json")
    assert code == 0 and data["channel"] == "online", err  # 李四 has a photo on file


def test_activation_asks_for_the_pin_hidden_and_twice(sbcard, receive):
    [blank] = receive("BJ-110105-01")
    issued = issue(sbcard, apply(sbcard, "old", "BJ-110105-01", "BJ-C1")["application_id"], blank, "BJ-C1")
    code, out, err, _ = sbcard("card", "activate", issued["card_number"], "--operator", "BJ-C1",
                               input="258147\n258147\n")
    assert code == 0, err
    assert "258147" not in out + err and "active" in out


def test_an_activated_card_is_not_activated_twice(sbcard, receive, state):
    [blank] = receive("BJ-110105-01")
    issued = issue(sbcard, apply(sbcard, "old", "BJ-110105-01", "BJ-C1")["application_id"], blank, "BJ-C1")
    assert sbcard("card", "activate", issued["card_number"], "--pin", "258147", "--operator", "BJ-C1")[0] == 0
    before = state(blank)
    code, out, err, _ = sbcard("card", "activate", issued["card_number"], "--pin", "369147", "--operator", "BJ-C1")
    assert code == 1 and "active" in err
    assert state(blank) == before
