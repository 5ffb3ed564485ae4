"""Holder accounts: numbered per region, one open per person, they follow the person."""

from __future__ import annotations

import pytest
from ledger_helpers import card_holder, insert_card

from sbcard.domain.bank_account import BankAccount
from sbcard.domain.errors import NotFound, RuleRefused, SbcardError
from sbcard.services.accounts import ledger


@pytest.mark.parametrize(("node", "card", "bin_"), [("bj", "B00000011", "621110"), ("tj", "T00000018", "621120"),
                                                    ("he", "H00000015", "621130")])
def test_a_holder_account_has_the_regions_bin_a_sequence_and_a_luhn_digit(world, clock, node, card, bin_):
    db = world.region(node)
    cid, _ = card_holder(db, node, clock, card_number=card)

    account_no = ledger.open_holder_account(db, citizen_id=cid, card_number=card, node=node, now=clock.now())

    assert account_no == BankAccount.make(bin_, "000000000001").value and len(account_no) == 19
    assert ledger.account_of_card(db, card) == account_no
    assert ledger.balance(db, account_no) == 0 and ledger.entries(db, account_no) == []
    assert ledger.get_account(db, account_no)["status"] == "active"


def test_numbers_follow_the_sequence_and_a_refusal_burns_none(world, clock):
    tj = world.region("tj")
    first, card1 = card_holder(tj, "tj", clock, card_number="T00000018", seq=123)
    second, card2 = card_holder(tj, "tj", clock, card_number="T00000026", seq=125)
    a1 = ledger.open_holder_account(tj, citizen_id=first, card_number=card1, node="tj", now=clock.now())
    with pytest.raises(RuleRefused) as exc:
        ledger.open_holder_account(tj, citizen_id=first, card_number=card1, node="tj", now=clock.now())
    assert exc.value.code == "account.exists"
    a2 = ledger.open_holder_account(tj, citizen_id=second, card_number=card2, node="tj", now=clock.now())
    assert (a1[6:18], a2[6:18]) == ("000000000001", "000000000002")


def test_an_account_is_kept_in_its_own_regions_ledger(world, clock):
    tj = world.region("tj")
    cid, card = card_holder(tj, "tj", clock)
    with pytest.raises(SbcardError) as exc:
        ledger.open_holder_account(tj, citizen_id=cid, card_number=card, node="bj", now=clock.now())
    assert exc.value.code == "ledger.wrong_node"


def test_the_account_moves_to_the_replacement_card_with_its_balance(world, clock):
    tj = world.region("tj")
    cid, old = card_holder(tj, "tj", clock)
    account = ledger.open_holder_account(tj, citizen_id=cid, card_number=old, node="tj", now=clock.now())
    ledger.pay_in(tj, account_no=account, outlet="TJ-120103-02", amount_fen=5000, txn_id="D1", operator="op",
                  now=clock.now())
    tj.execute("UPDATE cards SET status = 'replaced' WHERE card_number = ?", [old])
    insert_card(tj, card_number="T00000026", citizen=cid, status="issued")

    assert ledger.move_account(tj, from_card=old, to_card="T00000026", now=clock.now()) == account
    assert ledger.account_of_card(tj, old) is None
    assert ledger.account_of_card(tj, "T00000026") == account
    assert ledger.balance(tj, account) == 5000
    assert ledger.move_account(tj, from_card=old, to_card="T00000026", now=clock.now()) is None


def test_only_an_empty_account_closes(world, clock):
    tj = world.region("tj")
    cid, card = card_holder(tj, "tj", clock)
    account = ledger.open_holder_account(tj, citizen_id=cid, card_number=card, node="tj", now=clock.now())
    ledger.pay_in(tj, account_no=account, outlet="TJ-120103-02", amount_fen=1230, txn_id="D1", operator="op",
                  now=clock.now())
    with pytest.raises(RuleRefused) as exc:
        ledger.close_account(tj, account, clock.now())
    assert exc.value.code == "account.not_empty" and "¥12.30" in exc.value.message
    assert account not in exc.value.message  # masked

    ledger.pay_out(tj, account_no=account, outlet="TJ-120103-02", amount_fen=1230, txn_id="W1", operator="op",
                   now=clock.now())
    ledger.close_account(tj, account, clock.now())
    assert ledger.get_account(tj, account)["status"] == "closed"
    assert ledger.account_of_card(tj, card) is None
    with pytest.raises(RuleRefused):
        ledger.close_account(tj, account, clock.now())
    # A closed account frees the person for a new one (a new card after cancellation).
    tj.execute("UPDATE cards SET status = 'cancelled' WHERE card_number = ?", [card])
    insert_card(tj, card_number="T00000026", citizen=cid, status="issued")
    assert ledger.open_holder_account(tj, citizen_id=cid, card_number="T00000026", node="tj", now=clock.now())


def test_internal_accounts_are_opened_once_and_keep_their_kind(world, clock):
    tj = world.region("tj")
    assert ledger.ensure_internal_account(tj, "FLOAT-PURSE", "purse_float", clock.now()) == "FLOAT-PURSE"
    assert ledger.ensure_internal_account(tj, "FLOAT-PURSE", "purse_float", clock.now()) == "FLOAT-PURSE"
    assert tj["accounts"].count == 1
    with pytest.raises(SbcardError):
        ledger.ensure_internal_account(tj, "FLOAT-PURSE", "cash", clock.now())
    with pytest.raises(SbcardError):
        ledger.ensure_internal_account(tj, "X", "holder", clock.now())


def test_an_unknown_account_is_not_found(world):
    with pytest.raises(NotFound):
        ledger.balance(world.region("tj"), "6211200000000000001")
