"""`sbcard medical settle-owed`: what an offline claim's reconciliation left owed, settled by staff once.

The case: 赵丽 (Hebei) settles offline in Beijing (the deductible taken as unpaid: she pays
more than she owes), then her card is cancelled (her account closed) before the claim is
reconciled: what she is owed back has no account to go to and stays owed (``owed_fen`` < 0).
"""

from __future__ import annotations

import pytest
from medical_world import BANKS, clock, medical_template, medical_world  # noqa: F401

AMOXICILLIN, CT, BLOOD = "XJ01CAA040", "002103000010000", "002502010010000"
LINES = ((AMOXICILLIN, 40, "12.50"), (CT, 4, "220.00"))
DUE = "FUND-MEDICAL-DUE"


@pytest.fixture
def owed(medical_world):
    """(world, claim) with the claim's owed_fen < 0 (the fund owes the holder)."""
    w = medical_world
    assert w.run("operator", "add", "HE-F1", "--name", "刘芳", "--role", "finance", "--region", "130102")[0] == 0
    w.ok_settle("zhao", "HEH001", (BLOOD, 8, "25.00"))  # part of the deductible paid online
    w.link("he", "down")
    offline = w.ok_settle("zhao", "BJH003", *LINES)
    code, _, err, _ = w.run("card", "cancel", w.cards["zhao"].number, "--operator", "HE-C1", "--reason", "test",
                            "--outlet", BANKS["he"])
    assert code == 0, err
    w.link("he", "up")
    code, _, err, done = w.run("medical", "reconcile", "--json")
    assert code == 0, err
    [claim] = done["reconciled"]
    assert claim["claim_id"] == offline["claim_id"] and claim["owed_fen"] < 0
    return w, claim


def _settle(w, claim_id: str, *options: str):
    code, _, err, done = w.run("medical", "settle-owed", claim_id, *options, "--json")
    return code, done if done is not None else err


def test_what_the_fund_owes_is_paid_out_in_cash_once_and_audited(owed):
    w, claim = owed
    due_before = w.balances("he")[DUE]
    assert due_before == -claim["owed_fen"]  # the fund's debt to her
    code, done = _settle(w, claim["claim_id"], "--operator", "HE-F1", "--outlet", BANKS["he"])
    assert code == 0, done
    assert (done["owed_fen"], done["direction"], done["via"], done["settled_now"]) == (
        claim["owed_fen"], "to_holder", "cash", True)
    assert DUE not in w.balances("he")  # settled: 0
    [paid_out] = w.query("he", "SELECT amount_fen FROM ledger_entries WHERE txn_id = ? AND account_no = ?",
                         (done["txn_id"], f"CASH-{BANKS['he']}"))
    assert paid_out["amount_fen"] == -claim["owed_fen"]  # out of the till, as a cash withdrawal is
    [audit] = w.query("he", "SELECT * FROM audit_log WHERE action = 'medical.settle_owed'")
    assert (audit["operator"], audit["outlet"]) == ("HE-F1", BANKS["he"])

    code, again = _settle(w, claim["claim_id"], "--operator", "HE-F1", "--outlet", BANKS["he"])
    assert code == 0 and (again["settled_now"], again["txn_id"], again["via"]) == (False, done["txn_id"], "cash")
    assert len(w.query("he", "SELECT * FROM ledger_entries WHERE txn_id = ?", (done["txn_id"],))) == 2
    assert len(w.query("he", "SELECT * FROM audit_log WHERE action = 'medical.settle_owed'")) == 1
    [shown] = [c for c in w.run("medical", "claims", "--json")[3] if c["claim_id"] == claim["claim_id"]]
    assert shown["owed_settled_at"] == done["settled_at"]


@pytest.mark.parametrize(("options", "exit_code", "says"), [
    (("--operator", "HE-F1"), 1, "no open financial account"),  # her account is closed
    (("--operator", "HE-C1"), 1, "--operator"),  # a counter clerk settles only in cash at a bank counter
    (("--operator", "NOBODY"), 2, "--operator"),
    (("--operator", "HE-F1", "--outlet", "HE-130102-01"), 1, "bank-branch"),  # not a bank-branch outlet
    (("--operator", "HE-F1", "--outlet", BANKS["bj"]), 1, "bank-branch outlet of"),  # not the insured region's
], ids=["no-account", "counter-role", "unknown-operator", "not-a-bank", "other-region"])
def test_refusals_write_nothing(owed, options, exit_code, says):
    w, claim = owed
    before = (w.balances("he"), w.query("he", "SELECT count(*) AS n FROM audit_log"))
    code, err = _settle(w, claim["claim_id"], *options)
    assert (code, err.count("\n")) == (exit_code, 1) and says in err, err
    assert (w.balances("he"), w.query("he", "SELECT count(*) AS n FROM audit_log")) == before


@pytest.mark.parametrize(("claim", "exit_code", "says"), [
    ("BJH003-99999999", 2, "no claim"),
    ("", 2, "CLAIM_ID"),
], ids=["unknown", "empty"])
def test_an_unknown_claim(medical_world, claim, exit_code, says):
    code, err = _settle(medical_world, claim, "--operator", "HE-C1")
    assert (code, err.count("\n")) == (exit_code, 1) and says in err, err


def test_a_claim_that_left_nothing_owed(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", (BLOOD, 1, "25.00"))
    assert medical_world.run("operator", "add", "BJ-F9", "--name", "钱明", "--role", "finance", "--region",
                             "110105")[0] == 0
    code, err = _settle(medical_world, done["claim_id"], "--operator", "BJ-F9")
    assert code == 1 and "nothing owed" in err


def test_a_clerk_reads_the_settlement(owed):
    w, claim = owed
    code, out, err, _ = w.run("medical", "settle-owed", claim["claim_id"], "--operator", "HE-C1", "--outlet",
                              BANKS["he"])
    assert code == 0, err
    assert "paid to the holder in cash" in out and claim["claim_id"] in out
    code, out, err, _ = w.run("medical", "settle-owed", claim["claim_id"], "--operator", "HE-C1", "--outlet",
                              BANKS["he"])
    assert code == 0 and "nothing done now" in out
