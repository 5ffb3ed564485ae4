"""Bounds on subsidy money: a row's amount stays within what an account may hold (the file is refused
otherwise), and a payment never takes an account past its maximum (the row fails with its reason)."""

from __future__ import annotations

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import (
    CHECKER, DISTRICT, MAKER, NOW, approved_batch, batch_rows, card_number, row, write_csv,
)

from sbcard.domain.limits import MAX_ACCOUNT_BALANCE_FEN
from sbcard.services.accounts import ledger
from sbcard.store.db import content_digest, open_db


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


@pytest.mark.parametrize("amount", ["1000000.01", "92233720368547758.07", "-1000000.01"],
                         ids=["over-account-max", "int64-max", "negative-beyond"])
def test_a_file_with_an_amount_beyond_any_account_is_refused_whole(sbcard, home, tmp_path, amount):
    rows = [row(1, 0, 30000), {**row(2, 1, 0), "amount": amount}]
    path = write_csv(tmp_path / "b.csv", rows)
    before = digests(home)
    code, out, err, _ = sbcard("subsidy", "import", str(path), "--region", DISTRICT, "--operator", MAKER,
                               "--count", "2", "--total", "1")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "line 3, column 7 (amount)" in err and "beyond any amount a row may hold" in err
    assert digests(home) == before


def test_a_payment_that_would_pass_the_account_maximum_fails_with_its_reason(sbcard, tmp_path, tj):
    batch = approved_batch(sbcard, tmp_path / "b.csv", batch_rows(range(3)))
    account = ledger.account_of_card(tj, card_number(1))
    till = ledger.ensure_internal_account(tj, ledger.cash_account("TJ-120103-02"), "cash", NOW)
    near = MAX_ACCOUNT_BALANCE_FEN - 100
    ledger.post(tj, txn_id="FILL-1", entries=[(account, near), (till, -near)], kind="cash_deposit",
                operator=CHECKER, now=NOW)
    code, _, err, paid = sbcard("subsidy", "pay", batch, "--operator", CHECKER, "--json")
    assert code == 0, err
    assert (paid["paid"], paid["failed"]) == (2, 1)
    assert [r["reason_code"] for r in paid["failed_by_reason"]] == ["account_max_balance"]
    assert ledger.balance(tj, account) == MAX_ACCOUNT_BALANCE_FEN - 100
    failed = tj.execute("SELECT seq, reason FROM subsidy_rows WHERE batch_id = ? AND status = 'failed'",
                        [batch]).fetchall()
    assert failed[0][0] == 2 and failed[0][1].startswith("at pay time: the account holds ¥999999.00")
