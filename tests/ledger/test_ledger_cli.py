"""`sbcard account …`: cash at bank-branch outlets of the card's region, and what the account shows."""

from __future__ import annotations

import pytest
from ledger_helpers import card_holder
from world_template import error_line

from sbcard.services.accounts import ledger
from sbcard.services.outlets.operators import add_operator
from sbcard.store.db import content_digest, open_db
from sbcard.store.world import open_world

BANK = "TJ-120103-02"  # 中国建设银行天津河西支行社保卡服务网点


@pytest.fixture
def card(empty_account_card, home, clock):
    """The folder's Tianjin card and counter operator, with a Tianjin finance and a Beijing counter operator."""
    with open_world(home) as world:
        add_operator(world.region("tj"), code="tj-fin", name="李强", role="finance", region="120103", now=clock.now())
        add_operator(world.region("bj"), code="bj-op", name="李娜", role="counter", region="110105", now=clock.now())
    return empty_account_card


def cash(sbcard, verb, card, amount, *extra, outlet=BANK, operator="tj-op"):
    return sbcard("account", verb, card, "--amount", amount, "--operator", operator, "--outlet", outlet,
                  *extra, "--json")


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


def test_deposit_withdraw_and_show(sbcard, card):
    code, _, err, dep = cash(sbcard, "deposit", card, "100", "--memo", "开户存入")
    assert code == 0, err
    assert (dep["kind"], dep["amount_fen"], dep["balance_fen"], dep["posted"]) == ("deposit", 10000, 10000, True)
    code, _, err, wd = cash(sbcard, "withdraw", card, "12.30")
    assert code == 0, err
    assert wd["balance_fen"] == 8770 and wd["txn_id"] == "TJ-CASH-0000000002"

    code, out, err, shown = sbcard("account", "show", card, "--json")
    assert code == 0, err
    assert (shown["balance_fen"], shown["status"], shown["card_number"]) == (8770, "active", card)
    assert [(e["kind"], e["amount_fen"], e["memo"]) for e in shown["entries"]] == [
        ("cash_deposit", 10000, "开户存入"), ("cash_withdrawal", -1230, None)]
    assert shown["entries"][0]["outlet"] == BANK and shown["entries"][0]["operator"] == "tj-op"

    code, out, _, _ = sbcard("account", "show", card)
    assert shown["account_no"] not in out and shown["account_no"][:6] + "*********" in out and "¥87.70" in out


def test_a_retried_deposit_with_the_same_key_is_not_paid_twice(sbcard, card):
    cash(sbcard, "deposit", card, "50", "--txn-id", "SLIP-0001")
    code, _, _, again = cash(sbcard, "deposit", card, "50", "--txn-id", "SLIP-0001")
    assert code == 0 and again["posted"] is False and again["balance_fen"] == 5000
    code, _, err, _ = sbcard("account", "deposit", card, "--amount", "60", "--operator", "tj-op", "--outlet", BANK,
                             "--txn-id", "SLIP-0001")
    assert code == 2 and err.startswith("error: --txn-id: transaction SLIP-0001 was posted before")


@pytest.mark.parametrize(
    ("verb", "amount", "kw", "exit_code", "message"),
    [
        ("deposit", "0", {}, 2, "error: --amount: the amount must be more than ¥0.00"),
        ("deposit", "1,000", {}, 2, "error: --amount: '1,000' is not an amount in yuan"),
        ("deposit", "10", {"outlet": "TJ-120103-01"}, 1, "error: --outlet: cash is taken and paid out at bank-branch"),
        ("deposit", "10", {"outlet": "BJ-110102-02"}, 1, "error: --outlet: the account is kept by Tianjin's"),
        ("deposit", "10", {"outlet": "TJ-120103-77"}, 2, "error: --outlet: no outlet TJ-120103-77"),
        ("deposit", "10", {"operator": "tj-fin"}, 1, "error: --operator: operator tj-fin is a finance operator"),
        ("deposit", "10", {"operator": "bj-op"}, 2, "error: --operator: no operator 'bj-op' in Tianjin"),
        ("withdraw", "10.01", {}, 1, "error: CARD: account 621120*********"),
    ],
)
def test_refusals_are_one_line_and_change_nothing(sbcard, home, card, verb, amount, kw, exit_code, message):
    cash(sbcard, "deposit", card, "10")
    before = digests(home)
    code, out, err, _ = cash(sbcard, verb, card, amount, **kw)
    assert code == exit_code and error_line(err).startswith(message) and err.count("\n") == 1, err
    assert digests(home) == before


def test_no_cash_on_a_card_that_is_not_active_or_has_no_account(sbcard, home, clock):
    with open_world(home) as world:
        tj = world.region("tj")
        add_operator(tj, code="tj-op", name="王芳", role="counter", region="120103", now=clock.now())
        cid, lost = card_holder(tj, "tj", clock, card_number="T00000018", seq=123, status="lost")
        ledger.open_holder_account(tj, citizen_id=cid, card_number=lost, node="tj", now=clock.now())
        card_holder(tj, "tj", clock, card_number="T00000026", seq=125, status="issued")

    code, _, err, _ = cash(sbcard, "deposit", lost, "10")
    assert code == 0, err  # money in is harmless: a lost card's account still takes deposits
    code, _, err, _ = cash(sbcard, "withdraw", lost, "5")
    assert code == 1 and "card T00000018 is lost" in err
    code, _, err, _ = cash(sbcard, "deposit", "T00000026", "10")
    assert code == 1 and "not activated yet" in err
    code, _, err, _ = sbcard("account", "show", "T00000026")
    assert code == 2 and "not activated yet" in err
    code, _, err, _ = sbcard("account", "show", "T99999999")
    assert code == 2 and "no card T99999999" in err


def test_the_till_mirrors_the_holders_money(sbcard, home, card):
    cash(sbcard, "deposit", card, "100")
    cash(sbcard, "withdraw", card, "30")
    with open_world(home) as world:
        assert ledger.balance(world.region("tj"), "CASH-" + BANK) == -7000
