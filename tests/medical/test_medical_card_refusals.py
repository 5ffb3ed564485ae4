"""The point of sale refuses a card that cannot claim, and a wrong or blocked PIN: nothing written."""

from __future__ import annotations

import pytest
from medical_world import DEPOSIT_YUAN, PIN, clock, medical_template, medical_world  # noqa: F401

DEPOSIT_FEN = DEPOSIT_YUAN * 100
LINES = (("XJ01CAA040", 4, "12.50"), ("002502010010000", 1, "25.00"))


def _nothing_claimed(w, before) -> None:
    assert w.state() == before
    assert w.query("bj", "SELECT * FROM medical_claims") == w.query("he", "SELECT * FROM medical_claims") == []
    assert w.hub_messages("medical.settle") == []


@pytest.mark.parametrize(
    ("pins", "codes", "message"),
    [
        (["111111"], [1], "wrong PIN: 2 tries left"),
        (["111111", "222222"], [1, 1], "wrong PIN: 1 tries left"),
        (["111111", "222222", "333333"], [1, 1, 1], "the PIN is now blocked"),
        (["111111", "222222", "333333", PIN], [1, 1, 1, 1], "PIN blocked: reset at a counter"),
    ],
    ids=["one", "two", "three", "blocked"],
)
def test_a_wrong_or_blocked_pin(medical_world, pins, codes, message):
    before = medical_world.state()
    results = [medical_world.settle("zhao", "BJH003", *LINES, options=("--pin", pin)) for pin in pins]
    assert [code for code, _ in results] == codes
    assert message in results[-1][1] and "--pin" in results[-1][1]
    _nothing_claimed(medical_world, before)
    assert medical_world.medical_log("zhao") == []


def test_the_right_pin_after_a_wrong_one(medical_world):
    assert medical_world.settle("zhao", "BJH003", *LINES, options=("--pin", "111111"))[0] == 1
    assert medical_world.ok_settle("zhao", "BJH003", *LINES, options=("--pin", PIN))["use_account"]


@pytest.mark.parametrize(
    ("life", "message"),
    [
        (("card", "cancel", "{card}", "--operator", "HE-C1", "--reason", "holder left", "--outlet", "HE-130108-01"),
         "cancelled"),
        (("card", "report-lost", "{card}", "--operator", "HE-C1"), "reported lost"),
    ],
    ids=["cancelled", "lost"],
)
def test_a_card_that_cannot_claim_is_refused(medical_world, life, message):
    number = medical_world.cards["zhao"].number
    code, _, err, _ = medical_world.run(*(a.format(card=number) for a in life))
    assert code == 0, err
    before = medical_world.state()
    code, err = medical_world.settle("zhao", "BJH003", *LINES)
    assert code == 1 and message in err
    _nothing_claimed(medical_world, before)


def test_a_resident_has_no_personal_account(medical_world):
    code, err = medical_world.settle("sun", "HEH001", *LINES, options=("--pin", PIN))
    assert code == 1 and "no personal account" in err


def test_a_self_pay_from_the_account_needs_the_pin(medical_world):
    code, err = medical_world.settle("liu", "BJH003", *LINES, options=("--self-pay", "account"))
    assert code == 2 and "--pin" in err


def test_a_self_pay_larger_than_the_account_is_refused(medical_world):
    from sbcard.reference import medical as ref
    from sbcard.domain.money import fen_to_yuan_str

    item = max(ref.catalogue("130000").values(), key=lambda i: i.price_fen)
    quantity = DEPOSIT_FEN // item.price_fen + 2  # more than the ¥2,000.00 in the account, whatever the fund pays
    quantity = min(quantity * 4, 9_999)
    before = medical_world.state()
    code, err = medical_world.settle("sun", "HEH001", (item.code, quantity, fen_to_yuan_str(item.price_fen)),
                                     options=("--pin", PIN, "--self-pay", "account"))
    assert code == 1 and "less than" in err
    _nothing_claimed(medical_world, before)


def test_referral_and_emergency_are_exclusive(medical_world):
    code, err = medical_world.settle("zhao", "BJH003", *LINES, options=("--referral", "--emergency"))
    assert code == 2 and "--emergency" in err


def test_a_pin_of_the_wrong_shape(medical_world):
    code, err = medical_world.settle("zhao", "BJH003", *LINES, options=("--pin", "12ab"))
    assert code == 2 and "--pin" in err
