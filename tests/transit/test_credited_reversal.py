"""A restored card image never makes money (issue 15, item 2).

The hole: copy the card's file, tear a load at its commit write (the card credits it, the
host never hears), put the old copy back, ``transit recover`` (the card shows the load's
counter, so the host reverses the load: the money goes back to the account), then put the
credited copy back. The card has the money, and so has the account.

The issuer notices when the card later proves the credit — its online counter (and
balance, MAC1-proven) at the next load's INITIALIZE FOR LOAD, or its balance before a
purchase at the issuer's check of the upload — and takes the money back from the account with a correction entry
(``<load>-COR``, kind ``purse_load_correction``); what the account cannot pay is posted to
``PURSE-SHORTFALL`` and the card is blocked (blacklisted). The float backs the purse again.
"""

from __future__ import annotations

import json

from purse_world import DEPOSIT_YUAN, NOW, clock, purse_template, purse_world  # noqa: F401

DEPOSIT = DEPOSIT_YUAN * 100


def restored_credit(pw, holder="liu", yuan="50"):
    """The reproduction: the card keeps a load the host reversed. Returns the reversed load's row."""
    before = pw.path(holder).read_bytes()
    code, _, err, _ = pw.load(holder, yuan, tear=4)  # the commit write lands; the terminal gets no answer
    assert code != 0 and "torn" in err
    credited = pw.path(holder).read_bytes()
    pw.path(holder).write_bytes(before)  # the old image: the load's counter, no credit
    code, _, err, done = pw.recover(holder)
    assert code == 0, err
    assert [s["status"] for s in done["settled"]] == ["reversed"]
    pw.path(holder).write_bytes(credited)  # the credited image again
    [load] = pw.loads(holder)
    return load


def corrections(pw, node="bj"):
    return pw.query(node, "SELECT txn_id, account_no, amount_fen, kind, memo FROM ledger_entries "
                          "WHERE kind = 'purse_load_correction' ORDER BY txn_id, account_no")


def blocks(pw, node="bj"):
    rows = pw.query(node, "SELECT card_number, reason, details FROM card_events WHERE event = 'purse_blocked'")
    for r in rows:
        r["details"] = json.loads(r["details"])
    return rows


def test_the_reproduction_leaves_card_and_account_both_holding_the_money(purse_world):
    """The starting point of every case below (true before and after the fix: nothing has shown the card yet)."""
    restored_credit(purse_world)
    assert purse_world.purse("liu") == 5000
    assert purse_world.account("liu") == DEPOSIT  # given back by the reversal
    assert purse_world.float_balance("bj") == 0  # nothing backs the purse


def test_the_next_load_takes_a_credited_reversal_back_from_the_account(purse_world):
    load = restored_credit(purse_world)
    code, _, err, done = purse_world.load("liu", "20")
    assert code == 0, err
    assert done["balance_fen"] == 7000 == purse_world.purse("liu")
    assert purse_world.account("liu") == DEPOSIT - 7000  # each fen once: in the purse, not in the account
    assert purse_world.float_balance("bj") == 7000  # the float backs the purse again
    [taken_from, into_float] = corrections(purse_world)
    assert taken_from["txn_id"] == into_float["txn_id"] == f"{load['id']}-COR"
    assert (taken_from["account_no"], taken_from["amount_fen"]) == (load["account_no"], -5000)
    assert (into_float["account_no"], into_float["amount_fen"]) == ("FLOAT-PURSE", 5000)
    [row] = [c for c in done["corrections"]]
    assert (row["load_id"], row["taken_fen"], row["short_fen"], row["proof"]) == (load["id"], 5000, 0,
                                                                                  "online_counter")
    assert blocks(purse_world) == []  # the account paid it all: the card goes on


def test_a_second_load_takes_nothing_back_again(purse_world):
    restored_credit(purse_world)
    assert purse_world.load("liu", "20")[0] == 0
    code, _, err, done = purse_world.load("liu", "10")
    assert code == 0, err
    assert done["corrections"] == []
    assert len(corrections(purse_world)) == 2  # the one correction's two entries
    assert purse_world.account("liu") + purse_world.purse("liu") == DEPOSIT
    assert purse_world.float_balance("bj") == purse_world.purse("liu") == 8000


def test_an_account_that_cannot_pay_it_back_blocks_the_card(purse_world):
    """The holder emptied the account after the reversal: what it holds is taken, the rest is the issuer's
    shortfall, and the card goes on the blacklist with the evidence; the float still backs the purse."""
    load = restored_credit(purse_world)
    card = purse_world.cards["liu"]
    code, _, err, _ = purse_world.run("account", "withdraw", card.number, "--amount", "1980", "--operator",
                                      "BJ-C1", "--outlet", "BJ-110105-02", "--json")
    assert code == 0, err
    assert purse_world.account("liu") == 2000
    code, _, err, _ = purse_world.load("liu", "10")
    assert code == 1 and "blocked" in err
    assert purse_world.account("liu") == 0
    assert purse_world.float_balance("bj") == 5000 == purse_world.purse("liu")
    shortfall = purse_world.query("bj", "SELECT coalesce(sum(amount_fen), 0) AS fen FROM ledger_entries "
                                        "WHERE account_no = 'PURSE-SHORTFALL'")[0]["fen"]
    assert shortfall == -3000
    [block] = blocks(purse_world)
    assert block["card_number"] == card.number
    assert block["details"]["rule"] == "credited_reversal"
    assert block["details"]["evidence"][0]["load_id"] == load["id"]
    hub = purse_world.query("hub", "SELECT card_number, action FROM blacklist_entries")
    assert hub == [{"card_number": card.number, "action": "add"}]


def test_the_clearing_of_a_later_purchase_takes_it_back(purse_world):
    """No load came: the balance before the purchase shows the reversed load credited."""
    load = restored_credit(purse_world)
    purse_world.register_terminal()
    record = purse_world.purchase("liu", 300, serial=1)
    assert record.balance_before_fen == 5000
    result = purse_world.upload([record], now=NOW)
    assert result.accepted == 1
    [row] = purse_world.query("bj", "SELECT flags FROM purse_purchases")
    flags = json.loads(row["flags"])
    assert [f["flag"] for f in flags] == ["reversed_load_credited"]
    assert flags[0]["load_id"] == load["id"]
    assert purse_world.account("liu") == DEPOSIT - 5000
    [taken_from, into_float] = corrections(purse_world)
    assert (taken_from["amount_fen"], into_float["amount_fen"]) == (-5000, 5000)
    code, _, err, done = purse_world.run("clearing", "run", "--date", "2025-03-03", "--json")
    assert code == 0, err
    # the float held the load, gave the operator the purchase: it backs what the purse has left
    assert purse_world.float_balance("bj") == 4700 == purse_world.purse("liu")
    [case] = done["corrections"]
    assert (case["load_id"], case["taken_fen"], case["short_fen"], case["proof"]) == (load["id"], 5000, 0,
                                                                                      "balance")
    assert done["settlement"]["reconciliation"]["bj"]["ok"]


def test_the_clearing_report_shows_the_case(purse_world, clock):
    restored_credit(purse_world)
    assert purse_world.load("liu", "20")[0] == 0
    code, out, err, _ = purse_world.run("clearing", "run", "--date", "2025-03-03")
    assert code == 0, err
    assert "credited reversal" in out and "¥50.00" in out
    code, _, err, report = purse_world.run("clearing", "report", "--date", "2025-03-03", "--json")
    assert code == 0, err
    [case] = report["corrections"]
    assert case["card_number"] == purse_world.cards["liu"].number and case["taken_fen"] == 5000
    assert report["totals"]["corrections"] == 1 and report["totals"]["corrected_fen"] == 5000


def test_a_load_truly_never_credited_is_never_taken_back(purse_world):
    """The plain torn load: reversed, and the next load (counter the same) takes nothing back."""
    purse_world.load("liu", "50", tear=1)
    assert purse_world.recover("liu")[0] == 0
    code, _, err, done = purse_world.load("liu", "20")
    assert code == 0, err
    assert done["corrections"] == [] and corrections(purse_world) == []
    assert purse_world.account("liu") == DEPOSIT - 2000


def test_a_reversed_load_whose_counter_was_used_again_is_not_taken_back(purse_world):
    """After the reversal the old image loads again at the same counter: that load explains the counter."""
    before = purse_world.path("liu").read_bytes()
    purse_world.load("liu", "50", tear=4)
    purse_world.path("liu").write_bytes(before)
    assert purse_world.recover("liu")[0] == 0
    assert purse_world.load("liu", "30")[0] == 0  # counter 0 again, confirmed
    code, _, err, done = purse_world.load("liu", "10")
    assert code == 0, err
    assert done["corrections"] == [] and corrections(purse_world) == []


def test_a_short_account_found_at_the_purchase_check_blocks_the_card_by_the_clearing(purse_world):
    """The purchase path: the correction takes what the account holds; the block reaches the hub's list in the
    clearing run, whose answer shows both the correction and the block."""
    restored_credit(purse_world)
    card = purse_world.cards["liu"]
    code, _, err, _ = purse_world.run("account", "withdraw", card.number, "--amount", "1990", "--operator",
                                      "BJ-C1", "--outlet", "BJ-110105-02", "--json")
    assert code == 0, err
    purse_world.register_terminal()
    purse_world.upload([purse_world.purchase("liu", 300, serial=1)], now=NOW)
    assert purse_world.query("hub", "SELECT * FROM blacklist_entries") == []  # not yet: the clearing tells the hub
    code, _, err, done = purse_world.run("clearing", "run", "--date", "2025-03-03", "--json")
    assert code == 0, err
    [case] = done["corrections"]
    assert (case["taken_fen"], case["short_fen"]) == (1000, 4000)
    [block] = done["blocks"]
    assert (block["card_number"], block["rule"]) == (card.number, "credited_reversal")
    assert purse_world.query("hub", "SELECT card_number FROM blacklist_entries") == [{"card_number": card.number}]
    assert purse_world.float_balance("bj") == 4700 == purse_world.purse("liu")
    assert done["settlement"]["reconciliation"]["bj"]["ok"]


def test_the_old_image_put_back_after_the_correction_is_refused_a_load(purse_world):
    """The corrected load used its counter: the image from before it cannot load at that counter again."""
    before = purse_world.path("liu").read_bytes()
    restored_credit(purse_world)
    assert purse_world.load("liu", "20")[0] == 0  # the correction
    purse_world.path("liu").write_bytes(before)  # online counter 0 again
    code, _, err, _ = purse_world.load("liu", "10")
    assert code == 1 and "was used by load" in err


def test_a_cash_load_credited_after_its_reversal_blocks_the_card(purse_world):
    """The till paid the cash back to the holder: nothing to take back from, so the issuer's shortfall, and the
    card is blocked; the float still backs the purse."""
    before = purse_world.path("liu").read_bytes()
    cash = ("transit", "load", "--amount", "50", "--cash", "--operator", "BJ-C1", "--outlet", "BJ-110105-01")
    code, _, err, _ = purse_world.run(*cash, "--reader", purse_world.reader("liu", tear=4), "--json")
    assert code != 0 and "torn" in err
    credited = purse_world.path("liu").read_bytes()
    purse_world.path("liu").write_bytes(before)
    assert purse_world.recover("liu")[0] == 0
    purse_world.path("liu").write_bytes(credited)
    code, _, err, _ = purse_world.load("liu", "10")
    assert code == 1 and "blocked" in err
    assert purse_world.account("liu") == DEPOSIT  # the account never paid for the cash load
    assert purse_world.float_balance("bj") == 5000 == purse_world.purse("liu")
    [block] = blocks(purse_world)
    assert block["details"]["rule"] == "credited_reversal"


def test_the_load_says_what_it_took_back(purse_world):
    load = restored_credit(purse_world)
    node = purse_world.cards["liu"].node
    code, out, err, _ = purse_world.run("transit", "load", "--reader", purse_world.reader("liu"), "--amount", "20",
                                        "--operator", "BJ-C1", "--outlet", "BJ-110105-01")
    assert code == 0 and node == "bj", err
    assert f"corrected {load['id']}" in out and "¥50.00 taken back from the account" in out
