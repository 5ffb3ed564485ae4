"""`ledger.post` and `ledger.post_many`: balanced, idempotent per txn_id, never overdrawing a holder,
nothing half-written."""

from __future__ import annotations

import sqlite3

import pytest
from ledger_helpers import card_holder

from sbcard.domain.errors import InvalidInput, RuleRefused, SbcardError
from sbcard.domain.limits import MAX_ACCOUNT_BALANCE_FEN
from sbcard.services.accounts import ledger
from sbcard.services.accounts.ledger import Posting
from sbcard.store.unit_of_work import UnitOfWork

TILL = "CASH-TJ-120103-02"


@pytest.fixture
def accounts(world, clock):
    tj = world.region("tj")
    cid, card = card_holder(tj, "tj", clock)
    holder = ledger.open_holder_account(tj, citizen_id=cid, card_number=card, node="tj", now=clock.now())
    ledger.ensure_internal_account(tj, TILL, "cash", clock.now())
    ledger.ensure_internal_account(tj, "FUND-ELDERLY", "fund", clock.now())
    return tj, holder


def post(db, clock, txn_id, entries, **kw):
    return ledger.post(UnitOfWork(db), txn_id=txn_id, entries=entries, kind=kw.pop("kind", "test"), operator="op",
                       now=clock.now(), **kw)


def test_a_posting_moves_money_and_lists_entries(accounts, clock):
    tj, holder = accounts
    assert post(tj, clock, "T1", [(holder, 10000), (TILL, -10000)], outlet="TJ-120103-02", memo="deposit")
    assert post(tj, clock, "T2", [(holder, -2500), (TILL, 2500)])

    assert ledger.balance(tj, holder) == 7500 and ledger.balance(tj, TILL) == -7500
    assert [(e["txn_id"], e["amount_fen"], e["memo"]) for e in ledger.entries(tj, holder)] == [
        ("T1", 10000, "deposit"), ("T2", -2500, None)]


def test_posting_the_same_transaction_again_does_nothing(accounts, clock):
    tj, holder = accounts
    assert post(tj, clock, "SUB-2025-03-0001", [(holder, 500), ("FUND-ELDERLY", -500)]) is True
    assert post(tj, clock, "SUB-2025-03-0001", [("FUND-ELDERLY", -500), (holder, 500)]) is False
    assert ledger.balance(tj, holder) == 500 and tj["ledger_entries"].count == 2
    with pytest.raises(SbcardError) as exc:
        post(tj, clock, "SUB-2025-03-0001", [(holder, 600), ("FUND-ELDERLY", -600)])
    assert exc.value.code == "ledger.txn_conflict"


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([("H", 100)], "ledger.unbalanced"),
        ([("H", 100), (TILL, -99)], "ledger.unbalanced"),
        ([("H", 0), (TILL, 0)], "ledger.amount"),
        ([("H", 1.5), (TILL, -1.5)], "ledger.amount"),
        ([("H", True), (TILL, -1)], "ledger.amount"),
    ],
)
def test_malformed_transactions_are_refused(accounts, clock, entries, code):
    tj, holder = accounts
    entries = [(holder if a == "H" else a, amount) for a, amount in entries]
    with pytest.raises(SbcardError) as exc:
        post(tj, clock, "BAD", entries)
    assert exc.value.code == code
    assert tj["ledger_entries"].count == 0


def test_a_holder_account_never_goes_below_zero(accounts, clock):
    tj, holder = accounts
    post(tj, clock, "T1", [(holder, 1000), (TILL, -1000)])
    with pytest.raises(RuleRefused) as exc:
        post(tj, clock, "T2", [(holder, -1001), (TILL, 1001)])
    assert exc.value.code == "account.insufficient" and "¥10.00" in exc.value.message
    assert ledger.balance(tj, holder) == 1000 and tj["ledger_entries"].count == 2


def test_frozen_and_closed_accounts_take_no_entries(accounts, clock):
    tj, holder = accounts
    ledger.set_frozen(tj, holder, frozen=True, now=clock.now())
    with pytest.raises(RuleRefused) as exc:
        post(tj, clock, "T1", [(holder, 100), (TILL, -100)])
    assert exc.value.code == "account.frozen"
    ledger.set_frozen(tj, holder, frozen=False, now=clock.now())
    ledger.close_account(tj, holder, clock.now())
    with pytest.raises(RuleRefused) as exc:
        post(tj, clock, "T2", [(holder, 100), (TILL, -100)])
    assert exc.value.code == "account.closed"
    assert tj["ledger_entries"].count == 0


def test_entries_are_append_only(accounts, clock):
    tj, holder = accounts
    post(tj, clock, "T1", [(holder, 100), (TILL, -100)])
    with pytest.raises(sqlite3.IntegrityError):
        tj.execute("UPDATE ledger_entries SET amount_fen = 1")


def test_a_refused_posting_inside_a_use_case_leaves_the_callers_work(accounts, clock):
    tj, holder = accounts
    with UnitOfWork(tj) as uow:
        ledger.post(uow, txn_id="T1", entries=[(holder, 100), (TILL, -100)], kind="test", operator="op",
                    now=clock.now())
        with pytest.raises(RuleRefused):
            ledger.post(uow, txn_id="T2", entries=[(holder, -500), (TILL, 500)], kind="test", operator="op",
                        now=clock.now())
        uow.commit()
    assert ledger.balance(tj, holder) == 100


def post_many(db, clock, postings, **kw):
    return ledger.post_many(UnitOfWork(db), postings, kind=kw.pop("kind", "test"), operator="op", now=clock.now(),
                            **kw)


def test_post_many_writes_each_transaction_once_and_says_which(accounts, clock):
    tj, holder = accounts
    first = [Posting("B-1", [("FUND-ELDERLY", -500), (holder, 500)], "one"),
             Posting("B-2", [("FUND-ELDERLY", -700), (holder, 700)], "two")]
    assert post_many(tj, clock, first) == ["B-1", "B-2"]
    again = [*first, Posting("B-3", [("FUND-ELDERLY", -100), (holder, 100)])]
    assert post_many(tj, clock, again) == ["B-3"]
    assert ledger.balance(tj, holder) == 1300 and tj["ledger_entries"].count == 6
    assert [(e["txn_id"], e["memo"]) for e in ledger.entries(tj, holder)] == [("B-1", "one"), ("B-2", "two"),
                                                                            ("B-3", None)]
    assert ledger.posted(UnitOfWork(tj), ["B-2", "B-9"]) == {"B-2": {("FUND-ELDERLY", -700): 1, (holder, 700): 1}}


def test_post_many_is_all_or_none(accounts, clock):
    tj, holder = accounts
    with pytest.raises(InvalidInput) as exc:  # one posted before with other entries refuses the whole batch
        post(tj, clock, "B-1", [(holder, 500), ("FUND-ELDERLY", -500)])
        post_many(tj, clock, [Posting("B-2", [("FUND-ELDERLY", -1), (holder, 1)]),
                              Posting("B-1", [("FUND-ELDERLY", -2), (holder, 2)])])
    assert exc.value.code == "ledger.txn_conflict"
    with pytest.raises(RuleRefused) as refused:  # the bounds hold on each account's net movement over the batch
        post_many(tj, clock, [Posting("B-3", [("FUND-ELDERLY", -600), (holder, 600)]),
                              Posting("B-4", [(holder, -1200), (TILL, 1200)])])
    assert refused.value.code == "account.insufficient"
    with pytest.raises(RuleRefused) as refused:
        post_many(tj, clock, [Posting(f"B-{n}", [("FUND-ELDERLY", -MAX_ACCOUNT_BALANCE_FEN // 2), (holder,
                                                   MAX_ACCOUNT_BALANCE_FEN // 2)]) for n in (5, 6)])
    assert refused.value.code == "account.max_balance"
    with pytest.raises(SbcardError) as twice:
        post_many(tj, clock, [Posting("B-7", [(TILL, -1), (holder, 1)]), Posting("B-7", [(TILL, -1), (holder, 1)])])
    assert twice.value.code == "ledger.txn_twice"
    assert ledger.balance(tj, holder) == 500 and tj["ledger_entries"].count == 2


def test_post_many_trusts_batch_facts_only_while_they_are_current(accounts, clock):
    tj, holder = accounts
    with UnitOfWork(tj) as uow:
        facts = ledger.batch_facts(uow, ["F-1"], [holder])
        assert facts.posted == {} and facts.balances == {holder: 0} and facts.current(uow)
        ledger.post(uow, txn_id="F-0", entries=[("FUND-ELDERLY", -300), (holder, 300)], kind="test",
                    operator="op", now=clock.now())
        assert not facts.current(uow)  # written since: post_many reads the balance again
        with pytest.raises(RuleRefused) as refused:
            ledger.post_many(uow, [Posting("F-1", [(holder, -400), (TILL, 400)])], kind="test", operator="op",
                             now=clock.now(), facts=facts)
        assert refused.value.code == "account.insufficient" and "¥3.00" in refused.value.message
        uow.commit()
    outside = ledger.batch_facts(tj, ["F-0"], [holder])  # read outside a transaction: never current
    assert outside.balances == {holder: 300} and not outside.current(UnitOfWork(tj))
