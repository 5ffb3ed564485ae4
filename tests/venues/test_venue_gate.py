"""``sbcard venue enter | visits | gate``: the card at a venue's gate, end to end on issued cards."""

from __future__ import annotations

import datetime as dt

import pytest
from venue_world import NOW, clock, venue_template, venues  # noqa: F401

from sbcard.clock import BEIJING

ENTER_KEYS = {"result", "price_fen", "reason", "code", "display", "full_price_fen", "rule", "description", "venue",
              "venue_name", "terminal", "card_number", "app_serial", "issuer_node", "age", "student", "entry_no",
              "balance_fen", "counter", "txn_type", "terminal_serial", "recovered", "at", "visit_id", "statuses",
              "category", "source", "confidence", "illustrative", "provenance"}
VISIT_KEYS = {"id", "venue", "venue_name", "terminal", "card_number", "app_serial", "issuer_node", "day", "at",
              "result", "code", "reason", "price_fen", "full_price_fen", "rule", "student", "age", "entry_no",
              "counter", "terminal_serial", "recovered"}


def test_a_paid_entry_debits_the_purse_and_its_records_clear_with_each_issuer(venues):
    code, done = venues.enter("liu", "BJ-MU-001")  # 故宫, off-peak: ¥40
    assert code == 0, done
    assert set(done) == ENTER_KEYS
    assert (done["result"], done["price_fen"], done["rule"], done["age"], done["entry_no"]) == (
        "ok", 4000, "BJ-MU-001.full", 39, 1)
    assert (done["balance_fen"], done["txn_type"], done["terminal"]) == (16000, "06", "BJ-MU-001-0001")
    assert venues.purse("liu") == 16000
    code, tianjin = venues.enter("chen", "BJ-MU-001")  # a Tianjin card at the Beijing gate
    assert code == 0 and tianjin["issuer_node"] == "tj" and venues.purse("chen") == 16000

    log = venues.gate_log("BJ-MU-001-0001")
    assert [(r["kind"], r["purpose"], r["venue"], r["amount_fen"], r["status"]) for r in log["records"]] == [
        ("entry", "admission", "BJ-MU-001", 4000, "ok"), ("entry", "admission", "BJ-MU-001", 4000, "ok")]
    sent = venues.ok("transit", "upload", "--terminal", "BJ-MU-001-0001")
    assert (sent["sent"], sent["accepted"], sent["rejected"], sent["flagged"]) == (2, 2, 0, 0), sent
    cleared = venues.query("tj", "SELECT status, amount_fen FROM purse_purchases")
    assert cleared == [{"status": "cleared", "amount_fen": 4000}]  # the Tianjin issuer checked its card's TAC
    visits = venues.ok("venue", "visits", "--venue", "BJ-MU-001")
    assert all(set(v) == VISIT_KEYS for v in visits)
    assert [(v["card_number"], v["result"], v["price_fen"], v["counter"]) for v in visits] == [
        (venues.cards["liu"].number, "ok", 4000, 0), (venues.cards["chen"].number, "ok", 4000, 0)]


def test_a_free_entry_leaves_the_card_alone_and_the_daily_limit_refuses_a_second(venues, clock):
    code, first = venues.enter("wang", "BJ-MU-002")  # 中国国家博物馆: free, once a day
    assert code == 0 and (first["price_fen"], first["rule"], first["counter"]) == (0, "BJ-MU-002.free-admission", None)
    assert venues.purse("wang") == 2000
    clock.tick(dt.timedelta(hours=2))
    code, again = venues.enter("wang", "BJ-MU-002")
    assert code == 1 and (again["result"], again["code"]) == ("refused", "daily_limit")
    clock.tick(dt.timedelta(days=1))
    code, tomorrow = venues.enter("wang", "BJ-MU-002")
    assert code == 0 and tomorrow["entry_no"] == 1
    visits = venues.ok("venue", "visits", "--card", venues.cards["wang"].number)
    assert [(v["day"], v["result"], v["code"], v["entry_no"]) for v in visits] == [
        ("2025-03-04", "ok", None, 1), ("2025-03-04", "refused", "daily_limit", None), ("2025-03-05", "ok", None, 1)]
    assert venues.gate_log("BJ-MU-002-0001")["records"] == []  # nothing bought, nothing in the offline log


@pytest.mark.parametrize(("when", "price", "rule", "age"), [
    (NOW, 2000, "full", 59),                                   # the day before 陈静's 60th birthday
    (NOW + dt.timedelta(days=1), 1000, "senior-half", 60),     # the birthday itself
])
def test_the_price_follows_the_holders_age_on_the_day(venues, clock, when, price, rule, age):
    clock.move_to(when)
    code, done = venues.enter("chen", "BJ-SC-001")  # 颐和园, off-peak ¥20: 60+ half, 65+ free
    assert code == 0 and (done["price_fen"], done["rule"], done["age"]) == (price, f"BJ-SC-001.{rule}", age)
    assert venues.purse("chen") == 20000 - price


def test_students_seniors_and_the_card_discount(venues):
    assert venues.enter("liu", "HE-SC-001", "--student")[1]["price_fen"] == 4500      # 避暑山庄 off-peak ¥90, half
    assert venues.enter("liu", "TJ-SC-001")[1]["rule"] == "TJ-SC-001.card-discount"   # 天津之眼: 20% off for the card
    assert venues.purse("liu") == 20000 - 4500 - 5600
    code, elder = venues.enter("wang", "HE-SC-001")                                  # 74: free (70+)
    assert code == 0 and (elder["price_fen"], elder["rule"]) == (0, "HE-SC-001.senior-free")


@pytest.mark.parametrize(("when", "flags", "price", "rule", "category", "statuses", "confidence", "rule_confidence"), [
    (NOW, ("--elderly-card",), 2000, "full", None, ["elderly_card"], "secondary", None),   # 59: nothing yet
    (NOW + dt.timedelta(days=1), ("--elderly-card",), 0, "elderly-card", "elderly_card", ["elderly_card"], "secondary",
     "official"),                                                                          # the 60th birthday
    (NOW + dt.timedelta(days=1), (), 1000, "senior-half", "senior", [], "illustrative", "illustrative"),
    (NOW + dt.timedelta(days=1), ("--student", "--elderly-card"), 0, "elderly-card", "elderly_card",
     ["elderly_card", "student"], "secondary", "official"),
])
def test_the_beijing_elderly_card_at_a_city_park(venues, clock, when, flags, price, rule, category, statuses,
                                                 confidence, rule_confidence):
    clock.move_to(when)
    code, done = venues.enter("chen", "BJ-SC-001", *flags)  # 陈静 (a Tianjin card; a Beijing 居住证 and its card)
    assert code == 0, done
    assert (done["price_fen"], done["rule"], done["category"], done["statuses"]) == (
        price, f"BJ-SC-001.{rule}", category, statuses)
    assert (done["confidence"], done["illustrative"]) == (confidence, confidence == "illustrative")
    assert done["provenance"]["venue"]["confidence"] == "secondary"
    assert (done["provenance"]["rule"] or {}).get("confidence") == rule_confidence
    assert all({"id", "title", "issuer", "date", "url", "kind"} <= set(s) for s in done["source"])
    [visit] = venues.ok("venue", "visits", "--card", venues.cards["chen"].number)
    assert (visit["rule"], visit["price_fen"], visit["student"]) == (f"BJ-SC-001.{rule}", price, "--student" in flags)


def test_a_student_pays_the_palace_museums_flat_student_price(venues, clock):
    clock.move_to(dt.datetime(2025, 7, 1, 10, 0, tzinfo=BEIJING))  # the peak season: ¥60, half would be ¥30
    code, done = venues.enter("liu", "BJ-MU-001", "--student")
    assert code == 0 and (done["price_fen"], done["full_price_fen"], done["rule"], done["student"]) == (
        2000, 6000, "BJ-MU-001.student", True)
    assert done["description"] == "student: ¥20.00" and done["confidence"] == "secondary"
    assert venues.purse("liu") == 18000
    log = venues.gate_log("BJ-MU-001-0001")
    assert [(r["amount_fen"], r["rule"]) for r in log["records"]] == [(2000, "BJ-MU-001.student")]


@pytest.mark.parametrize(("when", "code"), [
    (dt.datetime(2025, 3, 10, 10, 0, tzinfo=BEIJING), "closed_day"),   # 故宫 on a Monday
    (dt.datetime(2025, 3, 4, 8, 0, tzinfo=BEIJING), "closed_hour"),
    (dt.datetime(2025, 3, 4, 16, 30, tzinfo=BEIJING), "closed_hour"),
])
def test_a_closed_venue_refuses_and_the_visit_says_why(venues, clock, when, code):
    clock.move_to(when)
    status, done = venues.enter("liu", "BJ-MU-001")
    assert status == 1 and (done["result"], done["code"], done["price_fen"]) == ("refused", code, 0)
    assert done["confidence"] == "illustrative"  # 故宫's hours: the last admission is the project's own
    assert venues.purse("liu") == 20000
    [visit] = venues.ok("venue", "visits")
    assert (visit["result"], visit["code"], visit["reason"]) == ("refused", code, done["reason"])


def test_too_little_in_the_purse_is_refused_with_the_price_due(venues):
    code, done = venues.enter("wang", "TJ-SC-001")  # ¥70 less 20%: more than the ¥20 on the card
    assert code == 1 and (done["code"], done["price_fen"], done["balance_fen"]) == ("insufficient_balance", 5600, 2000)
    assert (done["rule"], done["confidence"], done["illustrative"]) == ("TJ-SC-001.card-discount", "illustrative", True)
    assert venues.purse("wang") == 2000


def test_a_blacklisted_card_is_refused_and_blocked_at_the_gate(venues):
    number = venues.cards["liu"].number
    venues.ok("card", "report-lost", number, "--operator", "BJ-C1", "--outlet", "BJ-110105-01")
    code, done = venues.enter("liu", "BJ-SC-002")  # its gate is made now, with the hub's list
    assert code == 1 and (done["code"], done["card_number"]) == ("blacklisted", number)
    assert (done["source"], done["confidence"], done["illustrative"]) == ([], None, False)  # no figure was used
    assert venues.locked("liu") and venues.purse("liu") == 20000
    log = venues.gate_log("BJ-SC-002-0001")
    assert [e["kind"] for e in log["events"]] == ["card_blocked"]
    [visit] = venues.ok("venue", "visits", "--card", number)
    assert (visit["result"], visit["code"]) == ("refused", "blacklisted")


def test_a_card_listed_after_the_gate_was_made_is_refused_once_the_gate_syncs(venues):
    assert venues.enter("chen", "TJ-MU-001")[0] == 0
    venues.ok("card", "report-lost", venues.cards["chen"].number, "--operator", "TJ-C1", "--outlet", "TJ-120103-01")
    venues.ok("terminal", "sync", "TJ-MU-001-0001")
    code, done = venues.enter("chen", "TJ-MU-001")
    assert code == 1 and done["code"] == "blacklisted"


def test_gates_are_added_listed_and_chosen(venues):
    added = venues.ok("venue", "gate", "add", "HE-MU-001")
    assert (added["terminal"], added["venue"], added["node"], added["terminal_no"][:6]) == (
        "HE-MU-001-0001", "HE-MU-001", "he", "130000")
    second = venues.ok("venue", "gate", "add", "HE-MU-001")["terminal"]
    assert [g["terminal"] for g in venues.ok("venue", "gate", "list", "--venue", "HE-MU-001")] == [
        "HE-MU-001-0001", second]
    assert second in {t["terminal"] for t in venues.ok("terminal", "list")}
    code, done = venues.enter("wang", "HE-MU-001", "--terminal", second)
    assert code == 0 and done["terminal"] == second
    code, err = venues.enter("wang", "HE-SC-002", "--terminal", second)
    assert code == 2 and "not a gate of HE-SC-002" in err
    code, _, err, _ = venues.run("venue", "gate", "add", "XX-MU-001", "--json")
    assert code == 2 and "no venue" in err
