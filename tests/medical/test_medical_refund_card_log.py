"""`sbcard medical refund … --reader`: the refund is written into the card's medical log (DF04/EF08), as a settlement is."""

from __future__ import annotations

import pytest
from medical_world import PIN, clock, medical_template, medical_world  # noqa: F401

AMOXICILLIN, CT, BLOOD = "XJ01CAA040", "002103000010000", "002502010010000"
LINES = ((AMOXICILLIN, 40, "12.50"), (CT, 4, "220.00"), (BLOOD, 2, "25.00"))


@pytest.mark.parametrize(("holder", "hospital", "options", "items"), [
    ("liu", "BJH003", (), None),
    ("zhao", "BJH003", ("--pin", PIN), None),  # cross-region, the personal account paying
    ("zhao", "BJH003", ("--pin", PIN), f"{AMOXICILLIN},{BLOOD}"),  # partly: the rest settled again
], ids=["full", "full-cross-account", "partial"])
def test_a_refund_with_the_card_is_written_into_its_medical_log(medical_world, holder, hospital, options, items):
    done = medical_world.ok_settle(holder, hospital, *LINES, options=options)
    more = ("--items", items) if items else ()
    code, refunded = medical_world.refund(done["claim_id"], *more, "--reader", medical_world.reader(holder))
    assert code == 0, refunded
    assert refunded["ef08_written"] is True
    newest, settled = medical_world.medical_log(holder)[:2]
    assert (settled.mode, settled.serial, settled.total_fen) == ("online", int(done["claim_id"].split("-")[1]),
                                                                 done["total_fen"])
    assert (newest.mode, newest.hospital, newest.serial) == ("refund", hospital, settled.serial)
    assert (newest.total_fen, newest.fund_fen, newest.account_fen, newest.self_fen) == (
        refunded["refund_fen"], refunded["fund_fen"], refunded["account_fen"], refunded["self_fen"])
    assert newest.cross_region == done["cross_region"]


def test_the_card_in_the_reader_must_be_the_claims_and_nothing_is_refunded_otherwise(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    before = medical_world.state()
    code, err = medical_world.refund(done["claim_id"], "--reader", medical_world.reader("zhao"))
    assert code == 1 and "--reader" in err and err.count("\n") == 1
    assert medical_world.state() == before
    assert [r.mode for r in medical_world.medical_log("zhao")] == []


def test_a_refund_stands_when_the_card_leaves_before_its_log_is_written(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    log = medical_world.medical_log("liu")
    reader = medical_world.reader("liu", tear=1)  # the card's first write: the log record
    code, refunded = medical_world.refund(done["claim_id"], "--reader", reader)
    assert code == 0, refunded
    assert (refunded["status"], refunded["ef08_written"]) == ("refunded", False)
    assert medical_world.medical_log("liu") == log


def test_without_a_reader_the_log_is_not_touched(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    code, refunded = medical_world.refund(done["claim_id"])
    assert code == 0 and refunded["ef08_written"] is None
    assert [r.mode for r in medical_world.medical_log("liu")] == ["online"]


def test_a_clerk_reads_whether_the_card_got_the_refund(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    code, out, err, _ = medical_world.run("medical", "refund", done["claim_id"], "--reader",
                                          medical_world.reader("liu"))
    assert code == 0, err
    assert "card's medical log" in out and "refund written" in out
