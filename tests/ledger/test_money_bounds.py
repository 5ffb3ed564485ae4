"""Bounds on money at the counter: a cash deposit below the large-value threshold, an account never past its
maximum, no amount near SQLite's integer limit, and an idempotency key that is never silently blank."""

from __future__ import annotations

import pytest

from sbcard.domain import limits
from sbcard.domain.errors import RuleRefused
from sbcard.services.accounts import ledger
from sbcard.store.db import content_digest, open_db

BANK = "TJ-120103-02"  # 中国建设银行天津河西支行社保卡服务网点


@pytest.fixture
def card(empty_account_card):
    return empty_account_card


def cash(sbcard, verb, card, amount, *extra):
    return sbcard("account", verb, card, "--amount", amount, "--operator", "tj-op", "--outlet", BANK, *extra)


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


def fill(sbcard, card, yuan: int) -> None:
    """Deposit ``yuan`` in slips under the cash maximum."""
    while yuan > 0:
        slip = min(yuan, 49_999)
        code, _, err, _ = cash(sbcard, "deposit", card, str(slip))
        assert code == 0, err
        yuan -= slip


@pytest.mark.parametrize(
    ("verb", "amount", "extra", "exit_code", "field", "words"),
    [
        ("deposit", "50000", (), 1, "--amount", "large-value cash transaction"),
        ("deposit", "49999.99", ("--txn-id", ""), 2, "--txn-id", "empty value"),
        ("deposit", "10", ("--txn-id", "   "), 2, "--txn-id", "empty value"),
        ("withdraw", "10", ("--txn-id", "\t"), 2, "--txn-id", "empty value"),
        ("deposit", "10", ("--txn-id", "S" * 65), 2, "--txn-id", "at most 64"),
        ("deposit", "1000000.01", (), 2, "--amount", "more than any account may hold"),
        ("deposit", "92233720368547758.07", (), 2, "--amount", "more than any account may hold"),
        ("deposit", "92233720368547758.08", (), 2, "--amount", "too large"),
        ("withdraw", "92233720368547758.07", (), 2, "--amount", "more than any account may hold"),
    ],
    ids=["deposit-at-large-cash", "txn-id-empty", "txn-id-blank", "withdraw-txn-id-tab", "txn-id-too-long",
         "over-account-max", "int64-max", "past-int64", "withdraw-int64-max"],
)
def test_a_deposit_out_of_bounds_is_refused_in_one_line_and_writes_nothing(
        sbcard, home, card, verb, amount, extra, exit_code, field, words):
    before = digests(home)
    code, out, err, _ = cash(sbcard, verb, card, amount, *extra)
    assert (code, out) == (exit_code, "")
    assert err.startswith(f"error: {field}: ") and err.count("\n") == 1 and words in err
    assert digests(home) == before


def test_the_largest_cash_deposit_is_just_below_the_large_value_threshold(sbcard, card):
    code, _, err, _ = cash(sbcard, "deposit", card, "49999.99", "--json")
    assert code == 0, err
    assert limits.MAX_CASH_DEPOSIT_FEN == 4_999_999 == limits.LARGE_CASH_FEN - 1


def test_an_account_is_filled_to_its_maximum_and_not_a_fen_beyond(sbcard, home, card):
    fill(sbcard, card, 999_999)
    code, _, err, _ = cash(sbcard, "deposit", card, "1")
    assert code == 0, err  # exactly ¥1,000,000.00
    before = digests(home)
    code, out, err, _ = cash(sbcard, "deposit", card, "0.01")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("error: --amount: ") and "maximum of ¥1000000.00" in err
    assert digests(home) == before
    code, _, err, _ = cash(sbcard, "withdraw", card, "0.01")
    assert code == 0, err  # money goes out as ever


def test_a_retried_deposit_at_the_maximum_is_still_answered_as_posted_before(sbcard, card):
    fill(sbcard, card, 999_990)
    assert cash(sbcard, "deposit", card, "10", "--txn-id", "SLIP-9")[0] == 0
    code, out, err, _ = cash(sbcard, "deposit", card, "10", "--txn-id", " SLIP-9 ")
    assert code == 0 and "already posted" in out, err


def test_the_ledger_itself_refuses_a_holder_credit_past_the_maximum(world, clock, card):
    db = world.region("tj")
    account = ledger.account_of_card(db, card)
    till = ledger.ensure_internal_account(db, ledger.cash_account(BANK), "cash", clock.now())
    with pytest.raises(RuleRefused) as refused:
        ledger.post(db, txn_id="T-1", entries=[(account, limits.MAX_ACCOUNT_BALANCE_FEN + 1),
                                              (till, -limits.MAX_ACCOUNT_BALANCE_FEN - 1)],
                    kind="cash_deposit", operator="tj-op", now=clock.now())
    assert refused.value.code == "account.max_balance"
    assert ledger.balance(db, account) == 0


@pytest.mark.parametrize("kind", sorted(ledger.RETURNING_KINDS))
def test_money_coming_back_to_its_account_is_never_refused_for_the_maximum(world, clock, card, kind):
    db = world.region("tj")
    account = ledger.account_of_card(db, card)
    till = ledger.ensure_internal_account(db, ledger.cash_account(BANK), "cash", clock.now())
    full = limits.MAX_ACCOUNT_BALANCE_FEN
    ledger.post(db, txn_id="FILL", entries=[(account, full), (till, -full)], kind="cash_deposit", operator="tj-op",
                now=clock.now())
    assert ledger.post(db, txn_id="BACK", entries=[(account, 500), (till, -500)], kind=kind, operator="tj-op",
                       now=clock.now())
    assert ledger.balance(db, account) == full + 500
