"""Medical claims in the clearing: the insured region's fund owes the hospital's region, net of refunds."""

from __future__ import annotations

import datetime as dt

from medical_world import NOW, PIN, clock, medical_template, medical_world  # noqa: F401

from sbcard.services.clearing import purse_records as clearing, settlement
from sbcard.store.world import open_world

AMOXICILLIN, CT, BLOOD = "XJ01CAA040", "002103000010000", "002502010010000"
LINES = ((AMOXICILLIN, 40, "12.50"), (CT, 4, "220.00"))
DAY, NIGHT = NOW.date(), NOW.replace(hour=23, minute=30)


def _run(w, day=DAY, now=NIGHT):
    with open_world(w.home) as world:
        return clearing.run_clearing(world, day, now=now).to_dict()


def _owed(done) -> int:
    """What the hospital is owed for a claim: everything but a cash self-pay."""
    return done["total_fen"] - (done["self_fen"] if done["self_pay"] == "cash" else 0)


def test_claims_become_lines_insured_region_to_hospital_and_the_hospitals_are_paid(medical_world):
    cross = medical_world.ok_settle("zhao", "BJH003", *LINES, options=("--pin", PIN))  # Hebei insured, Beijing
    local = medical_world.ok_settle("liu", "BJH003", *LINES)  # Beijing insured, Beijing hospital, cash self-pay
    result = _run(medical_world)
    lines = {(x["payer"], x["payee"], x["party"]): (x["count"], x["amount_fen"]) for x in result["lines"]}
    assert lines == {("he", "bj", "BJH003"): (1, _owed(cross)), ("bj", "bj", "BJH003"): (1, _owed(local))}
    bj, he = medical_world.balances("bj"), medical_world.balances("he")
    assert bj["HOSPITAL-BJH003"] == _owed(cross) + _owed(local)
    assert bj["CLEARING-he"] == -_owed(cross) and he["CLEARING-bj"] == _owed(cross)  # they cancel out
    assert "CLEARING-bj" not in bj  # Beijing's own claims: owed and paid within Beijing
    assert result["settlement"]["net"] == {"bj": _owed(cross), "tj": 0, "he": -_owed(cross)}
    assert result["settlement"]["operators"]["BJH003"]["from"] == {"bj": _owed(local), "he": _owed(cross)}
    assert [c["clearing_day"] for c in medical_world.query("he", "SELECT clearing_day FROM medical_claims")] == [
        "2025-03-03"]
    for node in ("bj", "tj", "he"):
        assert medical_world.query(node, "SELECT txn_id FROM ledger_entries GROUP BY txn_id "
                                         "HAVING sum(amount_fen) != 0") == []


def test_a_refund_the_same_day_nets_to_nothing_and_a_later_one_is_a_negative_line(medical_world, clock):
    same = medical_world.ok_settle("wang", "TJH002", *LINES, options=("--pin", PIN))
    code, _ = medical_world.refund(same["claim_id"])
    assert code == 0
    later = medical_world.ok_settle("zhao", "BJH003", *LINES, options=("--pin", PIN))
    first = _run(medical_world)
    lines = {(x["payer"], x["payee"], x["party"]): (x["count"], x["amount_fen"], x["refunds"])
             for x in first["lines"]}
    assert lines == {("tj", "tj", "TJH002"): (1, 0, 1), ("he", "bj", "BJH003"): (1, _owed(later), 0)}
    clock.tick(dt.timedelta(days=1))
    code, _ = medical_world.refund(later["claim_id"])
    assert code == 0
    second = _run(medical_world, DAY + dt.timedelta(days=1), NIGHT + dt.timedelta(days=1))
    assert [(x["payer"], x["payee"], x["count"], x["amount_fen"], x["refunds"]) for x in second["lines"]] == [
        ("he", "bj", 0, -_owed(later), 1)]
    assert medical_world.balances("bj").get("HOSPITAL-BJH003", 0) == 0
    assert medical_world.balances("bj").get("CLEARING-he", 0) == 0 == medical_world.balances("he").get("CLEARING-bj", 0)
    assert second["settlement"]["net"] == {"bj": -_owed(later), "tj": 0, "he": _owed(later)}


def test_an_offline_claim_is_cleared_the_day_it_is_reconciled(medical_world, clock):
    medical_world.link("he", "down")
    offline = medical_world.ok_settle("zhao", "BJH003", *LINES)
    first = _run(medical_world)
    assert first["lines"] == [] and first["regions"]["he"]["status"] == "unreachable"
    clock.tick(dt.timedelta(days=1))
    medical_world.link("he", "up")
    code, _, err, done = medical_world.run("medical", "reconcile", "--json")
    assert code == 0, err
    [claim] = done["reconciled"]
    second = _run(medical_world, DAY + dt.timedelta(days=1), NIGHT + dt.timedelta(days=1))
    [line] = second["lines"]
    assert (line["payer"], line["payee"], line["count"], line["amount_fen"]) == (
        "he", "bj", 1, claim["total_fen"] - offline["self_fen"])
    with open_world(medical_world.home) as world:
        assert settlement.day_settlement(world, DAY + dt.timedelta(days=1))["net"]["bj"] == line["amount_fen"]
