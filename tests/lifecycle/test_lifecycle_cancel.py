"""注销 through the CLI: the balance paid out in cash, the account closed, the card ended and blacklisted."""

from __future__ import annotations

from lifecycle_world import BANK, OUTLET, blacklist, digests, events, hub_card, query


def test_cancel_pays_out_the_balance_closes_the_account_and_blacklists_the_card(sbcard, home, issue, deposit) -> None:
    card = issue("liu")
    deposit(card, "50.00")
    account_no = sbcard("account", "show", card, "--json")[3]["account_no"]

    code, out, err, done = sbcard("card", "cancel", card, "--operator", "BJ-C1", "--outlet", BANK,
                                  "--reason", "holder died (死亡注销)", "--json")

    assert code == 0, err
    assert (done["status"], done["account_no"], done["payout_fen"]) == ("cancelled", account_no, 5000)
    shown = sbcard("account", "show", card, "--json")[3]
    assert (shown["status"], shown["balance_fen"]) == ("closed", 0)
    assert shown["entries"][-1]["kind"] == "cash_withdrawal" and shown["entries"][-1]["amount_fen"] == -5000
    till = query(home, "bj", "SELECT sum(amount_fen) AS fen FROM ledger_entries WHERE account_no = ?",
                 (f"CASH-{BANK}",))
    assert till[0]["fen"] == 0  # ¥50 in, ¥50 out
    assert hub_card(home, card)["status"] == "cancelled"
    assert card in blacklist(home)[1]
    last = events(home, "bj", card)[-1]
    assert (last["event"], last["operator"], last["outlet"], last["reason"]) == (
        "cancelled", "BJ-C1", BANK, "holder died (死亡注销)")
    assert last["details"] == {"account_no": account_no, "payout_fen": 5000}


def test_cash_is_paid_out_only_at_a_bank_branch_outlet(sbcard, home, issue, deposit) -> None:
    card = issue("liu")
    deposit(card, "12.30")
    before = digests(home)
    for outlet in ((), ("--outlet", OUTLET)):
        code, out, err, _ = sbcard("card", "cancel", card, "--operator", "BJ-C1", "--reason", "moved abroad", *outlet)
        assert code == 1
        assert "the account holds ¥12.30, paid out in cash at one of Beijing's bank-branch outlets" in err
    assert digests(home) == before


def test_a_lost_card_with_an_empty_account_is_cancelled_anywhere(sbcard, home, issue) -> None:
    card = issue("liu")
    sbcard("card", "report-lost", card, "--operator", "BJ-C1")
    code, out, err, done = sbcard("card", "cancel", card, "--operator", "BJ-C1", "--reason", "holder died")
    assert code == 0, err
    assert "closed" in out and "¥0.00" in out
    assert query(home, "bj", "SELECT status FROM accounts")[0]["status"] == "closed"
    assert hub_card(home, card)["status"] == "cancelled" and card in blacklist(home)[1]


def test_an_issued_card_without_an_account_is_cancelled(sbcard, home, issue) -> None:
    card = issue("liu", activate=False)
    code, out, err, done = sbcard("card", "cancel", card, "--operator", "BJ-C1", "--reason", "applied by mistake",
                                  "--json")
    assert code == 0, err
    assert (done["status"], done["account_no"], done["payout_fen"]) == ("cancelled", None, 0)


def test_a_tianjin_account_is_not_paid_out_at_a_beijing_bank(sbcard, home, issue) -> None:
    card = issue("chen", outlet="TJ-120103-01")
    code, out, err, _ = sbcard("account", "deposit", card, "--amount", "5", "--operator", "TJ-C1",
                               "--outlet", "TJ-120101-03")
    assert code == 0, err
    before = digests(home)
    code, out, err, _ = sbcard("card", "cancel", card, "--operator", "BJ-C1", "--outlet", BANK, "--reason", "died")
    assert code == 1 and "paid out in cash at one of Tianjin's bank-branch outlets" in err
    assert digests(home) == before
    code, out, err, done = sbcard("card", "cancel", card, "--operator", "TJ-C1", "--outlet", "TJ-120101-03",
                                  "--reason", "died", "--json")
    assert code == 0, err
    assert done["payout_fen"] == 500
