"""补换卡 through the CLI: a new number, the old card blacklisted, the account moved, the purse refunded later."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lifecycle_world import (
    HOLDERS, NOW, OUTLET, PIN, blacklist, card_row, digests, events, hub_card, load_purse, query,
)

REFUND_DUE = NOW + timedelta(days=30)


def _replace(sbcard, card: str, blank: Path, *more: str):
    return sbcard("card", "replace", card, "--reader", f"emulator:{blank}", "--operator", "BJ-C1",
                  "--outlet", OUTLET, *more, "--json")


def test_replacing_with_the_old_card_in_hand(sbcard, home, issue, blanks, deposit, clock) -> None:
    old = issue("liu")
    deposit(old, "100.00")
    load_purse(home, "bj", old, 2500)
    account_no = sbcard("account", "show", old, "--json")[3]["account_no"]
    version, _ = blacklist(home)
    [blank] = blanks()

    code, out, err, done = _replace(sbcard, old, blank, "--old-reader", f"emulator:{card_row(home, 'bj', old)['virtual_path']}",
                                    "--reason", "chip damaged (换卡)")

    assert code == 0, err
    new = done["new_card"]
    assert new != old and done["status"] == "replaced" and done["new_status"] == "issued"
    assert (done["account_no"], done["purse_balance_fen"]) == (account_no, 2500)
    assert done["refund_due_at"] == REFUND_DUE.isoformat()
    # the old card: replaced, on the blacklist in a new version, its successor recorded
    assert card_row(home, "bj", old)["status"] == "replaced"
    assert card_row(home, "bj", new)["replaces"] == old
    assert hub_card(home, old)["status"] == "replaced" and hub_card(home, new)["status"] == "issued"
    new_version, listed = blacklist(home)
    assert new_version == version + 1 and old in listed and new not in listed
    replaced = events(home, "bj", old)[-1]
    assert (replaced["event"], replaced["operator"], replaced["outlet"], replaced["reason"]) == (
        "replaced", "BJ-C1", OUTLET, "chip damaged (换卡)")
    assert replaced["details"]["new_card"] == new
    # the account now answers through the new card; activation keeps it
    assert sbcard("card", "show", HOLDERS["liu"][1]["citizen_id"], "--json")[3]["card_number"] == new
    code, out, err, activated = sbcard("card", "activate", new, "--pin", PIN, "--operator", "BJ-C1", "--json")
    assert code == 0, err
    assert activated["account_no"] == account_no
    assert sbcard("account", "show", new, "--json")[3]["balance_fen"] == 10000

    # the purse refund waits for the clearing window of the old card
    assert [(r["old_card"], r["amount_fen"], r["status"]) for r in sbcard("card", "refunds", "--json")[3]] == [
        (old, 2500, "waiting")]
    clock.move_to(REFUND_DUE - timedelta(seconds=1))
    assert sbcard("card", "refunds", "--pay", "--operator", "BJ-F1", "--json")[3] == []
    clock.move_to(REFUND_DUE)
    code, out, err, paid = sbcard("card", "refunds", "--pay", "--operator", "BJ-F1", "--json")
    assert code == 0, err
    assert [(r["old_card"], r["new_card"], r["status"], r["account_no"]) for r in paid] == [
        (old, new, "paid", account_no)]
    shown = sbcard("account", "show", new, "--json")[3]
    assert shown["balance_fen"] == 12500
    assert (shown["entries"][-1]["kind"], shown["entries"][-1]["amount_fen"]) == ("purse_refund", 2500)
    assert sbcard("card", "refunds", "--pay", "--operator", "BJ-F1", "--json")[3] == []  # paid once
    assert events(home, "bj", old)[-1]["event"] == "purse_refunded"


def test_replacing_a_lost_card_unfreezes_and_moves_the_account(sbcard, home, issue, blanks, deposit) -> None:
    old = issue("liu")
    deposit(old, "20.00")
    sbcard("card", "report-lost", old, "--operator", "BJ-C1", "--outlet", OUTLET)
    version, _ = blacklist(home)
    [blank] = blanks()

    code, out, err, done = _replace(sbcard, old, blank)

    assert code == 0, err
    assert (done["purse_balance_fen"], done["refund_due_at"], done["refund_basis"]) == (
        None, REFUND_DUE.isoformat(), "clearing")
    assert blacklist(home)[0] == version  # it was on the list already
    assert hub_card(home, old)["status"] == "replaced"
    [account] = query(home, "bj", "SELECT * FROM accounts WHERE kind = 'holder'")
    assert (account["card_number"], account["status"]) == (done["new_card"], "active")
    [refund] = query(home, "bj", "SELECT * FROM purse_refunds")  # from the clearing records, when due
    assert (refund["old_card"], refund["basis"], refund["paid_at"]) == (old, "clearing", None)


def test_a_replacement_torn_halfway_records_nothing_and_can_be_run_again(sbcard, home, issue, blanks) -> None:
    old = issue("liu")
    [blank] = blanks()
    code, out, err, _ = sbcard("card", "replace", old, "--reader", f"emulator:{blank}?tear=12", "--operator", "BJ-C1",
                               "--outlet", OUTLET)
    assert code == 3, err
    assert card_row(home, "bj", old)["status"] == "active"
    assert query(home, "bj", "SELECT count(*) AS n FROM cards")[0]["n"] == 1
    assert hub_card(home, old)["status"] == "active" and old not in blacklist(home)[1]

    code, out, err, done = _replace(sbcard, old, blank)  # the same blank, the same application
    assert code == 0, err
    assert query(home, "bj", "SELECT count(*) AS n FROM applications WHERE kind = 'replacement'")[0]["n"] == 1


def test_refused_replacements_change_nothing(sbcard, home, issue, blanks) -> None:
    old = issue("liu")
    other = issue("chen", outlet="TJ-120103-01")
    [blank] = blanks()
    [tianjin_blank] = blanks("TJ-120103-01")
    chip_files = [blank, tianjin_blank, Path(card_row(home, "bj", old)["virtual_path"])]
    before = (digests(home), [p.read_bytes() for p in chip_files])
    old_path = card_row(home, "bj", old)["virtual_path"]
    other_path = card_row(home, "tj", other)["virtual_path"]

    refusals = [
        (("--reader", f"emulator:{tianjin_blank}"), 1, "belongs to the stock of TJ-120103-01"),
        (("--reader", f"emulator:{old_path}"), 1, "was already used for card"),
        (("--reader", f"emulator:{blank}", "--old-reader", f"emulator:{other_path}"), 1,
         f"--old-reader: the card in --old-reader is {other}, not {old}"),
    ]
    for options, exit_code, words in refusals:
        code, out, err, _ = sbcard("card", "replace", old, *options, "--operator", "BJ-C1", "--outlet", OUTLET)
        assert (code, err.count("\n")) == (exit_code, 1), err
        assert words in err
    assert (digests(home), [p.read_bytes() for p in chip_files]) == before

    sbcard("card", "cancel", old, "--operator", "BJ-C1", "--reason", "holder died")
    before = digests(home)
    code, out, err, _ = _replace(sbcard, old, blank)
    assert code == 1 and "is cancelled; only an issued, active or lost card can be replaced" in err
    assert digests(home) == before


def test_a_refund_waits_while_the_account_is_frozen_and_blocks_cancellation(
    sbcard, home, issue, blanks, clock
) -> None:
    old = issue("liu")
    load_purse(home, "bj", old, 800)
    [blank] = blanks()
    done = _replace(sbcard, old, blank, "--old-reader", f"emulator:{card_row(home, 'bj', old)['virtual_path']}")[3]
    new = done["new_card"]
    sbcard("card", "activate", new, "--pin", PIN, "--operator", "BJ-C1")

    before = digests(home)
    code, out, err, _ = sbcard("card", "cancel", new, "--operator", "BJ-C1", "--reason", "holder died")
    assert code == 1 and "the purse refund of ¥8.00 from replaced card" in err
    assert digests(home) == before

    sbcard("card", "report-lost", new, "--operator", "BJ-C1")
    clock.move_to(REFUND_DUE + timedelta(days=1))
    held = sbcard("card", "refunds", "--pay", "--operator", "BJ-F1", "--json")[3]
    assert [(r["status"], r["note"]) for r in held] == [("held", "the holder's account is frozen")]
    sbcard("card", "unblock", new, "--operator", "BJ-C1")
    paid = sbcard("card", "refunds", "--pay", "--operator", "BJ-F1", "--json")[3]
    assert [r["status"] for r in paid] == ["paid"]
    assert sbcard("account", "show", new, "--json")[3]["balance_fen"] == 800


def test_only_finance_staff_of_the_region_pay_refunds(sbcard, home) -> None:
    code, out, err, _ = sbcard("card", "refunds", "--pay", "--operator", "BJ-C1")
    assert code == 1 and "is a counter operator; this needs finance or supervisor" in err
    code, out, err, _ = sbcard("card", "refunds", "--pay")
    assert code == 2 and "--operator" in err


def test_a_tianjin_card_is_replaced_at_a_beijing_outlet(sbcard, home, issue, blanks) -> None:
    old = issue("chen", outlet="TJ-120103-01")
    [blank] = blanks()  # Beijing stock
    code, out, err, done = _replace(sbcard, old, blank)
    assert code == 0, err
    new = done["new_card"]
    assert card_row(home, "tj", new)["replaces"] == old  # the insured region issues and keeps it
    assert card_row(home, "tj", old)["status"] == "replaced"
    [used] = query(home, "bj", "SELECT status, used_for FROM blank_cards WHERE chip_serial = ?", (blank.stem,))
    assert used == {"status": "used", "used_for": new}
    replaced = events(home, "tj", old)[-1]
    assert (replaced["event"], replaced["operator"], replaced["outlet"]) == ("replaced", "BJ-C1", OUTLET)
    assert old in blacklist(home)[1] and hub_card(home, new)["issuing_region"].startswith("12")


MINOR = "xiaoyu"
FATHER = HOLDERS["liu"][1]["citizen_id"]


def test_a_minors_lost_card_is_replaced_with_her_guardian(sbcard, home, issue, blanks) -> None:
    old = issue(MINOR)
    sbcard("card", "report-lost", old, "--operator", "BJ-C1", "--outlet", OUTLET)
    [blank] = blanks()

    code, out, err, done = _replace(sbcard, old, blank, "--guardian-id", FATHER)

    assert code == 0, err
    assert done["guardian_id"] == "110105********1236"
    assert card_row(home, "bj", done["new_card"])["citizen_id"] == HOLDERS[MINOR][1]["citizen_id"]
    [application] = query(home, "bj", "SELECT * FROM applications WHERE kind = 'replacement'")
    assert application["guardian_id"] == FATHER
    assert hub_card(home, old)["status"] == "replaced"


def test_a_minors_card_is_not_replaced_without_her_recorded_guardian(sbcard, home, issue, blanks) -> None:
    old = issue(MINOR)
    sbcard("card", "report-lost", old, "--operator", "BJ-C1", "--outlet", OUTLET)
    [blank] = blanks()
    before = digests(home)
    cases = [
        ((), 1, "a guardian replaces the card"),
        (("--guardian-id", HOLDERS["chen"][1]["citizen_id"]), 1, "not recorded as the applicant's guardian"),
        (("--guardian-id", "110105198506151237"), 2, "--guardian-id"),
    ]
    for more, exit_code, message in cases:
        code, out, err, _ = _replace(sbcard, old, blank, *more)
        assert (code, err.count("\n")) == (exit_code, 1), (more, err)
        assert message in err, (more, err)
    assert digests(home) == before
