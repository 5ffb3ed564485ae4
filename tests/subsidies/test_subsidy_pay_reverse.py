"""Reversing one payment made in error: a new ledger transaction, never an edit; refused when the holder's
balance no longer covers it, or the row was never paid, or already reversed."""

from __future__ import annotations

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import (
    CHECKER, CLERK, NOW, SUPERVISOR, approved_batch, assert_paid_exactly_once, batch_rows, citizen_id, ledger_sum,
    row,
)

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.services.accounts import ledger
from sbcard.services.subsidies import payment
from sbcard.store.unit_of_work import UnitOfWork


@pytest.fixture
def paid(sbcard, tmp_path, world) -> str:
    """A batch of three rows, imported, approved and paid; row 2 (holder 1) was paid in error."""
    batch = approved_batch(sbcard, tmp_path / "batch.csv", batch_rows(range(3)))
    payment.pay(world, batch, now=NOW)
    return batch


def account_of(tj, n: int) -> str:
    return tj.execute("SELECT account_no FROM accounts WHERE citizen_id = ? AND status != 'closed'",
                      [citizen_id(n)]).fetchone()[0]


def test_subsidy_reverse_posts_a_new_transaction_back_to_the_fund(world, tj, paid):
    amount = 30002
    entries_before = tj.execute("SELECT * FROM ledger_entries ORDER BY id").fetchall()
    result = payment.reverse(world, paid, 2, operator=SUPERVISOR, reason="holder moved to Beijing in October", now=NOW)
    assert result["txn_id"] == f"SUBREV-{paid}-2" and result["payment_txn_id"] == f"SUB-{paid}-2"
    assert result["amount_fen"] == amount and result["balance_fen"] == 0 and result["fund_account"] == "FUND-GLJT"
    assert ledger.balance(tj, account_of(tj, 1)) == 0
    after = tj.execute("SELECT * FROM ledger_entries ORDER BY id").fetchall()
    assert after[:len(entries_before)] == entries_before  # nothing edited
    assert [(e[1], e[3], e[4]) for e in after[len(entries_before):]] == [
        (f"SUBREV-{paid}-2", -amount, "subsidy_reversal"), (f"SUBREV-{paid}-2", amount, "subsidy_reversal")]
    assert ledger_sum(tj) == 0
    assert tj.execute("SELECT status, txn_id FROM subsidy_rows WHERE batch_id = ? AND seq = 2",
                      [paid]).fetchone() == ("reversed", f"SUB-{paid}-2")
    assert tj.execute("SELECT operator, reason FROM subsidy_reversals").fetchall() == [
        (SUPERVISOR, "holder moved to Beijing in October")]
    assert tj.execute("SELECT operator FROM audit_log WHERE action = 'subsidy.reverse'").fetchall() == [(SUPERVISOR,)]
    summary = payment.summary(UnitOfWork(tj), paid)
    assert (summary["reversed"], summary["reversed_fen"]) == (1, amount)
    assert (summary["paid"], summary["paid_fen"]) == (3, 30001 + 30002 + 30003)  # what pay did stays on record
    assert_paid_exactly_once(tj, paid)


def test_subsidy_reverse_twice_is_refused_naming_the_first(world, paid):
    payment.reverse(world, paid, 2, operator=CHECKER, reason="error", now=NOW)
    with pytest.raises(RuleRefused) as again:
        payment.reverse(world, paid, 2, operator=SUPERVISOR, reason="error", now=NOW)
    assert again.value.code == "subsidy.already_reversed" and CHECKER in again.value.message


def test_subsidy_reverse_is_refused_when_the_balance_no_longer_covers_it(world, tj, paid):
    ledger.ensure_internal_account(tj, "CASH-TJ-120103-01", "cash", NOW)
    ledger.post(tj, txn_id="spent", entries=[(account_of(tj, 1), -100), ("CASH-TJ-120103-01", 100)],
                kind="cash_withdrawal", operator=CLERK, now=NOW)
    with pytest.raises(RuleRefused) as short:
        payment.reverse(world, paid, 2, operator=SUPERVISOR, reason="error", now=NOW)
    assert short.value.code == "subsidy.balance_short"
    assert "holds ¥299.02, less than the ¥300.02 paid" in short.value.message and "nothing" in short.value.message
    assert tj.execute("SELECT count(*) FROM subsidy_reversals").fetchone()[0] == 0
    assert tj.execute("SELECT status FROM subsidy_rows WHERE batch_id = ? AND seq = 2", [paid]).fetchone()[0] == "paid"


def test_subsidy_reverse_is_refused_on_a_frozen_account(world, tj, paid):
    ledger.set_frozen(tj, account_of(tj, 1), frozen=True, now=NOW)
    with pytest.raises(RuleRefused) as frozen:
        payment.reverse(world, paid, 2, operator=SUPERVISOR, reason="error", now=NOW)
    assert frozen.value.code == "account.frozen"


def test_subsidy_reverse_only_a_paid_row_by_finance_or_a_supervisor(sbcard, tmp_path, world, paid):
    with pytest.raises(RuleRefused) as clerk:
        payment.reverse(world, paid, 2, operator=CLERK, reason="error", now=NOW)
    assert clerk.value.code == "operator.role"
    with pytest.raises(InvalidInput):
        payment.reverse(world, paid, 2, operator=SUPERVISOR, reason=" ", now=NOW)
    with pytest.raises(NotFound):
        payment.reverse(world, paid, 9, operator=SUPERVISOR, reason="error", now=NOW)
    rows = batch_rows(range(5, 7))
    rows[1]["name"] = "某某"
    other = approved_batch(sbcard, tmp_path / "other.csv", rows)
    with pytest.raises(RuleRefused) as unpaid:
        payment.reverse(world, other, 1, operator=SUPERVISOR, reason="error", now=NOW)
    assert unpaid.value.code == "subsidy.not_paid" and "is valid" in unpaid.value.message
    payment.pay(world, other, now=NOW)
    with pytest.raises(RuleRefused) as invalid:
        payment.reverse(world, other, 2, operator=SUPERVISOR, reason="error", now=NOW)
    assert invalid.value.code == "subsidy.not_paid" and "name_mismatch" in invalid.value.message


def test_subsidy_reverse_frees_the_period_for_a_corrected_payment(sbcard, tmp_path, world, tj, paid):
    payment.reverse(world, paid, 2, operator=SUPERVISOR, reason="wrong amount", now=NOW)
    corrected = approved_batch(sbcard, tmp_path / "corrected.csv", [row(1, 1, 25000)])
    result = payment.pay(world, corrected, now=NOW)
    assert result["paid"] == 1 and ledger.balance(tj, account_of(tj, 1)) == 25000
    assert_paid_exactly_once(tj, corrected)


def test_subsidy_reverse_through_the_command_line(sbcard, paid, tj):
    code, out, err, data = sbcard("subsidy", "reverse", paid, "2", "--operator", SUPERVISOR, "--reason", "error",
                                  "--json")
    assert code == 0, err
    assert set(data) == {"batch_id", "seq", "txn_id", "payment_txn_id", "amount_fen", "card_number", "account_no",
                         "fund_account", "balance_fen", "operator", "reason", "at"}
    code, out, err, _ = sbcard("subsidy", "reverse", paid, "2", "--operator", SUPERVISOR, "--reason", "error")
    assert code == 1 and "already reversed" in err
