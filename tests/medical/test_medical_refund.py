"""`sbcard medical refund` (退费): a full refund restores everything; a partial one leaves what the rest would."""

from __future__ import annotations

import shutil

import pytest
from medical_world import PIN, MedicalWorld, clock, medical_template, medical_world  # noqa: F401

AMOXICILLIN, CT, BLOOD = "XJ01CAA040", "002103000010000", "002502010010000"
LINES = ((AMOXICILLIN, 40, "12.50"), (CT, 4, "220.00"), (BLOOD, 2, "25.00"))


def _warm(w: MedicalWorld, holder: str, hospital: str) -> None:
    """The year's first claim opens the year (and an employee's allocation), which a refund rightly keeps."""
    w.ok_settle(holder, hospital, (BLOOD, 1, "25.00"))


@pytest.mark.parametrize(
    ("holder", "hospital", "options"),
    [
        ("liu", "BJH003", ()),
        ("zhao", "BJH003", ("--pin", PIN)),  # cross-region, the personal account paying
        ("sun", "HEH001", ("--pin", PIN, "--self-pay", "account")),  # the self-pay from the financial account
        ("wang", "TJH002", ("--pin", PIN)),
    ],
    ids=["local-cash", "cross-account", "resident-financial-account", "retired"],
)
def test_a_full_refund_restores_accumulators_personal_account_and_ledger(medical_world, holder, hospital, options):
    _warm(medical_world, holder, hospital)
    before = medical_world.state()
    holder_account = medical_world.account(holder)
    done = medical_world.ok_settle(holder, hospital, *LINES, options=options)
    assert medical_world.state() != before
    code, refunded = medical_world.refund(done["claim_id"])
    assert code == 0, refunded
    assert refunded["status"] == "refunded" and refunded["resettled"] is None
    assert (refunded["refund_fen"], refunded["fund_fen"], refunded["account_fen"], refunded["self_fen"]) == (
        done["total_fen"], done["fund_fen"], done["account_fen"], done["self_fen"])
    assert medical_world.state() == before
    assert medical_world.account(holder) == holder_account


def test_a_partial_refund_leaves_what_the_remaining_items_alone_would(medical_world, medical_template, tmp_path):
    template, cards = medical_template
    alone = MedicalWorld(tmp_path / "alone", dict(cards), tmp_path)
    shutil.copytree(template, alone.home)
    for w in (medical_world, alone):
        _warm(w, "zhao", "BJH003")

    done = medical_world.ok_settle("zhao", "BJH003", *LINES, options=("--pin", PIN))
    code, refunded = medical_world.refund(done["claim_id"], "--items", f"{AMOXICILLIN},{BLOOD}")
    assert code == 0, refunded
    resettled = refunded["resettled"]
    assert resettled["claim_id"] == f"{done['claim_id']}-R" and resettled["refund_of"] == done["claim_id"]
    assert [i["code"] for i in resettled["items"]] == [CT]
    only = alone.ok_settle("zhao", "BJH003", LINES[1], options=("--pin", PIN))
    for key in ("total_fen", "fund_fen", "account_fen", "self_fen", "deductible_fen", "items", "after"):
        assert resettled[key] == only[key], key
    assert refunded["refund_fen"] == done["total_fen"] - only["total_fen"]
    mine, theirs = medical_world.state(), alone.state()
    assert mine["he"] == theirs["he"]
    assert mine["bj"]["ledger"] == theirs["bj"]["ledger"]

    code, _, _, claims = medical_world.run("medical", "claims", "--card", cards["zhao"].number, "--json")
    assert [(c["claim_id"], c["status"]) for c in claims][-2:] == [(done["claim_id"], "refunded"),
                                                                    (resettled["claim_id"], "settled")]


def test_a_resettled_claim_can_be_refunded_in_turn(medical_world):
    _warm(medical_world, "liu", "BJH003")
    before = medical_world.state()
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    _, partial = medical_world.refund(done["claim_id"], "--items", CT)
    code, rest = medical_world.refund(partial["resettled"]["claim_id"])
    assert code == 0, rest
    assert medical_world.state() == before


@pytest.mark.parametrize(
    ("claim", "options", "code", "message"),
    [
        ("BJH003-99999999", (), 2, "no claim BJH003-99999999"),
        ("{claim}", ("--items", "XA00NOTHERE"), 2, "not an item of claim"),
        ("{claim}", ("--items", ","), 2, "--items"),
    ],
    ids=["unknown", "items-not-in-claim", "no-items"],
)
def test_refusals_change_nothing(medical_world, claim, options, code, message):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    before = medical_world.state()
    got, err = medical_world.refund(claim.format(claim=done["claim_id"]), *options)
    assert got == code and message in err
    assert medical_world.state() == before


def test_a_claim_is_refunded_once(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    assert medical_world.refund(done["claim_id"])[0] == 0
    after = medical_world.state()
    code, err = medical_world.refund(done["claim_id"])
    assert code == 1 and "refunded already" in err
    assert medical_world.state() == after
    assert [m["idempotency_key"] for m in medical_world.hub_messages("medical.refund")] == [
        f"medical.refund/{done['claim_id']}"]
