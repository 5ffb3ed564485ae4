"""``sbcard transit concession enable | show | sync``: the host record and EF 0017 on the chip, together."""

from __future__ import annotations

import datetime as dt

import pytest
from concession_world import NOW, OUTLETS, desk, home, template_home  # noqa: F401

from sbcard.clock import BEIJING
from sbcard.domain import concessions
from sbcard.domain import fares
from sbcard.services.exchange import concession_list, directory as hub_directory
from sbcard.store.db import open_db
from sbcard.store.world import WorldPaths
from sbcard.reference.transit import load_concession_policy


def hub(desk):
    return open_db(WorldPaths(desk.home).db("hub"))


def test_the_elderly_free_ride_goes_on_a_tianjin_card(desk):
    card = desk.issue("wang")
    code, out, err, done = desk.concession("enable", card, "--kind", "elderly")
    assert code == 0, err
    source = done.pop("source")
    assert done == {"card_number": card, "kind": "elderly_free_ride", "region": "120000", "start": "2025-03-03",
                    "end": None, "status": "enabled", "changed": True, "locked_cards": [], "operator": "TJ-C1",
                    "outlet": None, "at": NOW.isoformat(), "confidence": "official", "illustrative": False}
    assert "tj-elderly-bus-2023" in [s["id"] for s in source]  # the rule it was granted under
    chip = concessions.decode_0017(desk.chip_0017(card))
    assert chip == concessions.CardConcession(concessions.ELDERLY_FREE_RIDE, "120000", dt.date(2025, 3, 3))
    [row] = desk.query("tj", "SELECT * FROM concessions WHERE card_number = ?", (card,))
    assert (row["kind"], row["status"], row["start_date"], row["end_date"]) == (
        "elderly_free_ride", "enabled", "2025-03-03", None)
    events = [e["event"] for e in desk.query("tj", "SELECT event FROM card_events WHERE card_number = ?", (card,))]
    assert events[-1] == "concession_enabled"
    [audit] = desk.query("tj", "SELECT * FROM audit_log WHERE action = 'transit.concession_enabled'")
    assert (audit["operator"], audit["subject"]) == ("TJ-C1", card)


@pytest.mark.parametrize(("day", "fen"), [(dt.date(2025, 3, 19), 200), (dt.date(2025, 3, 20), 0)])
def test_what_the_chip_says_makes_the_ride_free_from_the_65th_birthday(desk, day, fen):
    card = desk.issue("wang")
    assert desk.concession("enable", card, "--kind", "elderly")[0] == 0
    chip = concessions.decode_0017(desk.chip_0017(card))
    concession = concessions.fare_concession(chip, fares.OPERATOR_REGIONS["tj-bus"], day)
    assert concession == "elderly"
    assert concessions.fare_concession(chip, fares.OPERATOR_REGIONS["bj-bus"], day) is None
    quote = fares.quote("tj-bus", full_fare_fen=200, holder_birth_date=dt.date(1960, 3, 20), day=day,
                    concession=concession, policy=load_concession_policy())
    assert quote.fare_fen == fen


def test_not_before_one_month_before_the_65th_birthday(desk):
    card = desk.issue("zhao")
    before = desk.chip_0017(card)
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly")
    assert code == 1 and "2025-03-10" in err
    assert desk.chip_0017(card) == before == bytes(64)
    assert desk.query("tj", "SELECT * FROM concessions") == []
    desk.move_to(dt.datetime(2025, 3, 10, 8, 30, tzinfo=BEIJING))
    code, out, err, done = desk.concession("enable", card, "--kind", "elderly")
    assert code == 0, err
    assert done["start"] == "2025-03-10"


BEIJING_COUNTER = [  # holder, day at the Beijing counter → exit code, refusal code or the kind granted
    ("liu", dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING), 0, "bj_elderly_free_bus"),  # 户籍, 75
    ("chen", dt.datetime(2025, 3, 9, 16, 0, tzinfo=BEIJING), 1, "concession.too_young"),  # the eve of 60
    ("chen", dt.datetime(2025, 3, 10, 9, 0, tzinfo=BEIJING), 0, "bj_elderly_free_bus"),  # 居住证, 60 today
    ("sun", dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING), 1, "concession.not_resident"),  # neither
    ("zhou", dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING), 1, "concession.residence_unknown"),
]


@pytest.mark.parametrize(("holder", "when", "exit_code", "outcome"), BEIJING_COUNTER)
def test_a_beijing_card_gets_beijings_elderly_free_bus_at_a_beijing_outlet(desk, holder, when, exit_code, outcome):
    card = desk.issue(holder)
    desk.move_to(when)
    code, out, err, done = desk.concession("enable", card, "--kind", "elderly", operator="BJ-C1")
    assert code == exit_code, err
    if exit_code:
        assert outcome in err
        assert desk.chip_0017(card) == bytes(64)
        return
    assert (done["kind"], done["region"], done["start"], done["end"]) == (outcome, "110000", when.date().isoformat(),
                                                                          None)
    chip = desk.chip_0017(card)
    assert chip[:2] == bytes([0x01, 0x03]) and concessions.decode_0017(chip).kind == concessions.BJ_ELDERLY_FREE_BUS
    assert concessions.fare_concession(concessions.decode_0017(chip), "110000", when.date()) == "elderly"
    assert concessions.fare_concession(concessions.decode_0017(chip), "120000", when.date()) is None  # not Tianjin's free ride


def test_the_residence_recorded_at_the_counter_lets_the_concession_on(desk):
    card = desk.issue("zhou")
    code, _, err, _ = desk.concession("enable", card, "--kind", "elderly", operator="BJ-C1")
    assert code == 1 and "sbcard person residence" in err
    code, _, err, shown = desk.sbcard("person", "residence", "110106195008150049", "--residence", "hukou",
                                      "--operator", "BJ-C1", "--json")
    assert code == 0, err
    assert shown["residence"] == "hukou"
    code, _, err, done = desk.concession("enable", card, "--kind", "elderly", operator="BJ-C1")
    assert code == 0, err
    assert done["kind"] == "bj_elderly_free_bus"
    assert desk.query("bj", "SELECT action FROM audit_log WHERE action = 'person.residence'") != []


def test_a_tianjin_outlet_cannot_grant_on_a_beijing_card(desk):
    card = desk.issue("liu")
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly", operator="TJ-C1")
    assert code != 0
    assert desk.chip_0017(card) == bytes(64)


def test_only_the_issuing_regions_staff_grant_it(desk):
    card = desk.issue("wang")
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly", operator="BJ-C1")
    assert code == 1 and "Tianjin's staff" in err
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly", operator="NOBODY")
    assert code == 2
    assert desk.query("tj", "SELECT * FROM concessions") == []


def test_a_student_ticket_with_its_end_date(desk):
    card = desk.issue("liu")
    code, out, err, _ = desk.concession("enable", card, "--kind", "student", operator="BJ-C1")
    assert code == 2 and "--until" in err
    code, out, err, done = desk.concession("enable", card, "--kind", "student", "--until", "2025-07-15",
                                           operator="BJ-C1")
    assert code == 0, err
    assert (done["kind"], done["region"], done["end"], done["changed"]) == ("student", "110000", "2025-07-15", True)
    assert concessions.decode_0017(desk.chip_0017(card)).end == dt.date(2025, 7, 15)
    code, out, err, done = desk.concession("enable", card, "--kind", "student", "--until", "2026-01-31",
                                           operator="BJ-C1")  # renewed
    assert code == 0 and done["changed"] is True
    assert concessions.decode_0017(desk.chip_0017(card)).end == dt.date(2026, 1, 31)
    [row] = desk.query("bj", "SELECT * FROM concessions")
    assert row["end_date"] == "2026-01-31"
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly", operator="BJ-C1")
    assert code == 1  # a Beijing card, and one concession per card at a time


def test_enabling_again_on_the_same_card_changes_nothing_but_rewrites_the_chip(desk):
    card = desk.issue("wang")
    assert desk.concession("enable", card, "--kind", "elderly")[0] == 0
    desk.move_to(NOW + dt.timedelta(days=5))
    code, out, err, done = desk.concession("enable", card, "--kind", "elderly")
    assert code == 0, err
    assert (done["changed"], done["start"]) == (False, "2025-03-03")
    assert len(desk.query("tj", "SELECT * FROM concessions")) == 1


def test_one_card_per_person_the_old_card_is_locked_and_revoked_at_the_hub(desk):
    old = desk.issue("wang")
    assert desk.concession("enable", old, "--kind", "elderly")[0] == 0
    old_chip = desk.chip_0017(old)
    new = desk.replace(old)
    db = hub(desk)
    try:
        version_before = hub_directory.blacklist_version(db)
    finally:
        db.close()
    desk.move_to(NOW + dt.timedelta(days=1))
    code, out, err, done = desk.concession("enable", new, "--kind", "elderly")
    assert code == 0, err
    assert done["locked_cards"] == [old]
    rows = {r["card_number"]: r for r in desk.query("tj", "SELECT * FROM concessions")}
    assert rows[old]["status"] == "locked" and rows[new]["status"] == "enabled"
    locked = desk.query("tj", "SELECT * FROM card_events WHERE card_number = ? AND event = 'concession_locked'",
                        (old,))
    assert len(locked) == 1
    db = hub(desk)
    try:
        version = hub_directory.blacklist_version(db)
        assert version == version_before + 1
        assert concession_list.revoked_cards(db) == {old}
        assert concession_list.revoked_cards(db, version=version_before) == set()
        assert old in hub_directory.blacklisted_cards(db)  # replaced: on the blacklist anyway
        assert new not in hub_directory.blacklisted_cards(db)
    finally:
        db.close()
    # the old chip still says "enabled" until it is next at a counter
    assert desk.chip_0017(old) == old_chip
    code, out, err, shown = desk.concession("show", old, "--reader", f"emulator:{desk.card_path(old)}")
    assert code == 0, err
    assert shown["in_sync"] is False and shown["card_0017"]["status"] == "enabled"
    assert shown["expected_0017"]["status"] == "locked"
    assert [r["kind"] for r in shown["revocations"]] == ["elderly_free_ride"]
    code, out, err, synced = desk.concession("sync", old)
    assert code == 0, err
    assert synced["written"] is True and synced["card_0017"]["status"] == "locked"
    assert concessions.decode_0017(desk.chip_0017(old)).status == concessions.LOCKED
    assert concessions.fare_concession(concessions.decode_0017(desk.chip_0017(old)), "120000", dt.date(2025, 4, 1)) is None
    code, out, err, again = desk.concession("sync", old)
    assert code == 0 and again["written"] is False


def test_the_wrong_card_in_the_reader_is_refused_and_nothing_is_recorded(desk):
    card = desk.issue("wang")
    other = desk.issue("zhao")
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly", "--reader",
                                        f"emulator:{desk.card_path(other)}")
    assert code == 1 and other in err
    assert desk.query("tj", "SELECT * FROM concessions") == []
    assert desk.chip_0017(other) == desk.chip_0017(card) == bytes(64)


def test_a_card_pulled_out_at_any_write_leaves_nothing_recorded_and_the_next_try_completes(desk):
    card = desk.issue("wang")
    path = desk.card_path(card)
    for tear in range(1, 20):
        code, out, err, done = desk.concession("enable", card, "--kind", "elderly", "--reader",
                                               f"emulator:{path}?tear={tear}")
        if code == 0:
            break
        assert code == 3, err
        assert desk.query("tj", "SELECT * FROM concessions") == []
        assert concessions.decode_0017(desk.chip_0017(card)) in (None, concessions.CardConcession(concessions.ELDERLY_FREE_RIDE, "120000", NOW.date()))
    else:
        pytest.fail("the enable never completed")
    assert tear > 1  # at least one write was torn
    [row] = desk.query("tj", "SELECT * FROM concessions")
    assert row["status"] == "enabled"
    assert concessions.decode_0017(desk.chip_0017(card)).status == concessions.ENABLED


def test_show_without_a_concession_and_with_the_chip(desk):
    card = desk.issue("zhao")
    code, out, err, shown = desk.concession("show", card)
    assert code == 0, err
    assert shown["concessions"] == [] and shown["expected_0017"] is None and shown["revocations"] == []
    assert shown["elderly_free_ride_from"] == "2025-03-10" and shown["age"] == 64
    assert shown["citizen_id"].startswith("120103") and "*" in shown["citizen_id"]
    code, out, err, shown = desk.concession("show", card, "--reader", f"emulator:{desk.card_path(card)}")
    assert code == 0 and shown["in_sync"] is True and shown["card_0017"] is None
    code, out, err, _ = desk.sbcard("transit", "concession", "show", card)
    assert code == 0 and "no concession" in out


def test_a_lost_card_gets_no_concession(desk):
    card = desk.issue("wang")
    code, out, err, _ = desk.sbcard("card", "report-lost", card, "--operator", "TJ-C1", "--json")
    assert code == 0, err
    code, out, err, _ = desk.concession("enable", card, "--kind", "elderly")
    assert code == 1 and "lost" in err


def test_a_revocation_is_published_once_as_a_blacklist_version(desk):
    from sbcard.store.unit_of_work import UnitOfWork

    db = hub(desk)
    try:
        with UnitOfWork(db) as uow:
            before = hub_directory.blacklist_version(uow.db)
            first = concession_list.publish_revocation(uow.db, card_number="T0000001X", kind="elderly_free_ride",
                                                       reason="moved", now=NOW)
            again = concession_list.publish_revocation(uow.db, card_number="T0000001X", kind="elderly_free_ride",
                                                       reason="moved", now=NOW)
            uow.commit()
        assert first == again == before + 1
        assert hub_directory.blacklisted_cards(db) == set()  # revoked, not blacklisted
        assert concession_list.revoked_cards(db) == {"T0000001X"}
        assert concession_list.revoked_cards(db, kind="student") == set()
        assert concession_list.revocation_of(db, "T0000001X") == [
            {"version": first, "kind": "elderly_free_ride", "reason": "moved"}]
    finally:
        db.close()


def test_show_and_sync_a_beijing_card_with_beijings_concession(desk):
    card = desk.issue("liu")
    assert desk.concession("enable", card, "--kind", "elderly", operator="BJ-C1")[0] == 0
    code, out, err, shown = desk.concession("show", card)
    assert code == 0, err
    assert shown["elderly_free_ride_from"] == "2010-01-01"  # born 1950-01-01: from the 60th birthday
    assert shown["confidence"] == "secondary" and "bj-elderly-card-guide" in [s["id"] for s in shown["source"]]
    assert shown["expected_0017"] == {"kind": "bj_elderly_free_bus", "region": "110000", "start": "2025-03-03",
                                      "end": None, "status": "enabled"}
    code, out, err, done = desk.concession("sync", card, operator="BJ-C1")
    assert code == 0, err
    assert done["written"] is False  # the chip already holds it
    assert {"source", "confidence", "illustrative"} <= set(done)


def test_a_second_beijing_card_locks_the_concession_on_the_first(desk):
    old = desk.issue("liu")
    assert desk.concession("enable", old, "--kind", "elderly", operator="BJ-C1")[0] == 0
    new = desk.replace(old, node="bj")
    code, out, err, done = desk.concession("enable", new, "--kind", "elderly", operator="BJ-C1")
    assert code == 0, err
    assert done["locked_cards"] == [old]
    assert [r["kind"] for r in concession_list.revocation_of(hub(desk), old)] == ["elderly_free_ride"]


@pytest.mark.parametrize(("holder", "enable_as", "rule", "price"), [
    # 陈淑华, 60 today with a Beijing 居住证: the concession on her card is the elderly card at the park's gate
    ("chen", "BJ-C1", "BJ-SC-001.elderly-card", 0),
    ("chen", None, "BJ-SC-001.senior-half", 1000),  # the same holder, no concession on the card, none shown
    # 王建国 (64), Tianjin's free ride on his Tianjin card: not Beijing's elderly card, the band of everyone
    ("wang", "TJ-C1", "BJ-SC-001.senior-half", 1000),
])
def test_the_summer_palace_gate_reads_beijings_elderly_concession_from_the_card(desk, holder, enable_as, rule,
                                                                                price):
    card = desk.issue(holder)
    desk.move_to(dt.datetime(2025, 3, 10, 9, 0, tzinfo=BEIJING))  # 陈's 60th birthday; 王 is 64
    if enable_as:
        code, _, err, _ = desk.concession("enable", card, "--kind", "elderly", operator=enable_as)
        assert code == 0, err
    if price:
        node = "tj" if holder == "wang" else "bj"
        branch = {"bj": "BJ-110105-02", "tj": "TJ-120103-02"}[node]  # cash at a bank branch (社银合作)
        code, _, err, _ = desk.sbcard("account", "deposit", card, "--amount", "50", "--operator", f"{node.upper()}-C1",
                                      "--outlet", branch, "--json")
        assert code == 0, err
        code, _, err, _ = desk.sbcard("transit", "load", "--reader", f"emulator:{desk.card_path(card)}", "--amount",
                                      "50", "--operator", f"{node.upper()}-C1", "--outlet", OUTLETS[node], "--json")
        assert code == 0, err
    code, _, err, entered = desk.sbcard("venue", "enter", "--reader", f"emulator:{desk.card_path(card)}",
                                        "--venue", "BJ-SC-001", "--json")
    assert code == 0, err
    assert (entered["rule"], entered["price_fen"]) == (rule, price)
    assert ("elderly_card" in entered["statuses"]) is (rule.endswith("elderly-card"))
