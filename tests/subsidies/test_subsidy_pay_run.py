"""Paying a batch in-process: every valid row once, re-checked at pay time, in chunks, resumable, refused
politely when another pay holds the batch."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import (
    CLERK, HOLDERS, ITEM, ITEM2, NOW, PERIOD, approved_batch, assert_paid_exactly_once, batch_rows, card_number,
    citizen_id, give_card, ledger_sum, row,
)

from sbcard.domain.errors import RuleRefused, SbcardError
from sbcard.services.accounts import ledger
from sbcard.services.cards import lifecycle
from sbcard.services.subsidies import payment


@pytest.fixture
def approved(sbcard, tmp_path):
    """``approved(rows)`` → the id of a batch imported from a CSV of ``rows`` (``sbcard subsidy import``) and
    approved by the checker."""
    files = iter(range(1, 100))
    return lambda rows: approved_batch(sbcard, tmp_path / f"batch-{next(files)}.csv", rows)


def account_of(tj, n: int) -> str:
    return tj.execute("SELECT account_no FROM accounts WHERE citizen_id = ? AND status != 'closed'",
                      [citizen_id(n)]).fetchone()[0]


def test_subsidy_pay_posts_each_valid_row_once_and_the_totals_add_up(approved, world, tj):
    rows = batch_rows(range(12))
    rows[2]["name"] = "某某某"  # refused at import: name_mismatch
    rows[6] = row(7, HOLDERS + 1, 30007)  # refused at import: no_card
    batch = approved(rows)
    result = payment.pay(world, batch, now=NOW, chunk=5)
    assert (result["paid"], result["failed"]) == (10, 2)
    amounts = {int(r["seq"]): int(r["amount"].replace(".", "")) for r in rows}
    assert result["failed_fen"] == amounts[3] + amounts[7]
    assert result["paid_fen"] == sum(amounts.values()) - result["failed_fen"]
    assert result["paid_fen"] + result["failed_fen"] == result["declared_total_fen"]
    assert result["already"] is False and result["resumed"] is False and result["took_over"] is None
    assert result["this_run"] == {"paid": 10, "paid_fen": result["paid_fen"], "failed": 0, "failed_fen": 0}
    assert {r["reason_code"]: r["rows"] for r in result["failed_by_reason"]} == {"name_mismatch": 1, "no_card": 1}
    assert result["status"] == "paid" and result["paid_at"] == NOW.isoformat()
    for seq, n in enumerate(range(12), start=1):
        if seq not in (3, 7):
            assert ledger.balance(tj, account_of(tj, n)) == amounts[seq]
    assert ledger.balance(tj, account_of(tj, 2)) == 0
    assert ledger.balance(tj, "FUND-GLJT") == -result["paid_fen"]
    entry = tj.execute("SELECT kind, operator, memo FROM ledger_entries WHERE txn_id = ? AND amount_fen > 0",
                       [f"SUB-{batch}-1"]).fetchone()
    assert entry == ("subsidy", "system", f"{ITEM} {PERIOD}")
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_paid_batch_again_does_nothing_and_says_so(approved, world, tj):
    batch = approved(batch_rows(range(4)))
    first = payment.pay(world, batch, now=NOW)
    entries = tj.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    again = payment.pay(world, batch, now=NOW)
    assert again["already"] is True and again["this_run"]["paid"] == 0
    assert (again["paid"], again["paid_fen"]) == (first["paid"], first["paid_fen"])
    assert tj.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == entries
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_rechecks_card_and_account_at_pay_time(approved, world, tj):
    rows = batch_rows(range(6))
    batch = approved(rows)
    # Since the import: holder 0 reported the card lost, holder 1's account was frozen, holder 2's card was
    # cancelled, holder 3's card replaced (the account moved to the new card), holder 4's replaced and the new
    # card not yet activated... as the ledger and the card records say.
    lifecycle.report_lost(world, card_number=card_number(0), channel="phone", operator=CLERK, now=NOW)
    ledger.set_frozen(tj, account_of(tj, 1), frozen=True, now=NOW)
    tj.execute("UPDATE cards SET status = 'cancelled' WHERE card_number = ?", [card_number(2)])
    tj.execute("UPDATE accounts SET status = 'closed', closed_at = ? WHERE citizen_id = ?",
               [NOW.isoformat(), citizen_id(2)])
    tj.execute("UPDATE cards SET status = 'replaced' WHERE card_number = ?", [card_number(3)])
    new = give_card(tj, 3, generation=1, account=False, replaces=card_number(3))
    ledger.move_account(tj, from_card=card_number(3), to_card=new, now=NOW)
    tj.execute("UPDATE cards SET status = 'replaced' WHERE card_number = ?", [card_number(4)])
    give_card(tj, 4, generation=1, status="issued", account=False, replaces=card_number(4))
    ledger.move_account(tj, from_card=card_number(4), to_card=card_number(4, 1), now=NOW)

    result = payment.pay(world, batch, now=NOW)
    got = {r["seq"]: r for r in tj.query("SELECT * FROM subsidy_rows WHERE batch_id = ?", [batch])}
    assert (got[1]["status"], got[1]["reason_code"]) == ("failed", "card_lost")
    assert got[1]["reason"].startswith("at pay time: card " + card_number(0))
    assert (got[2]["status"], got[2]["reason_code"]) == ("failed", "account_frozen")
    assert (got[3]["status"], got[3]["reason_code"]) == ("failed", "card_cancelled")
    assert (got[4]["status"], got[4]["paid_card"]) == ("paid", new)
    assert (got[5]["status"], got[5]["reason_code"]) == ("failed", "card_not_activated")
    assert (got[6]["status"], got[6]["paid_card"]) == ("paid", card_number(5))
    assert result["this_run"]["failed"] == 4 and result["failed"] == 4
    assert {r["reason_code"] for r in result["failed_by_reason"]} == {"card_lost", "account_frozen",
                                                                      "card_cancelled", "card_not_activated"}
    assert ledger.balance(tj, account_of(tj, 3)) == int(rows[3]["amount"].replace(".", ""))
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_named_card_replaced_since_import_pays_the_current_card_and_says_so(approved, world, tj):
    batch = approved([row(1, 7, 12000, card=card_number(7))])
    tj.execute("UPDATE cards SET status = 'replaced' WHERE card_number = ?", [card_number(7)])
    new = give_card(tj, 7, generation=1, account=False, replaces=card_number(7))
    ledger.move_account(tj, from_card=card_number(7), to_card=new, now=NOW)
    payment.pay(world, batch, now=NOW)
    paid = tj.execute("SELECT status, paid_card, note FROM subsidy_rows WHERE batch_id = ?", [batch]).fetchone()
    assert paid == ("paid", new, f"card {card_number(7)} was replaced: paid to the current card {new}")


def test_subsidy_pay_the_same_person_item_and_period_in_two_batches_is_paid_once(approved, world, tj):
    first = approved(batch_rows(range(3)))
    second = approved(batch_rows(range(2, 5)))  # holder 2 in both
    payment.pay(world, first, now=NOW)
    result = payment.pay(world, second, now=NOW)
    assert (result["paid"], result["failed"]) == (2, 1)
    reason = tj.execute("SELECT reason_code, reason FROM subsidy_rows WHERE batch_id = ? AND seq = 1",
                        [second]).fetchone()
    assert reason[0] == "already_paid" and first in reason[1]
    assert_paid_exactly_once(tj, first)
    assert_paid_exactly_once(tj, second)


def test_subsidy_pay_the_database_refuses_a_second_paid_row_for_the_same_person_item_and_period(approved, world, tj):
    first = approved(batch_rows(range(1)))
    second = approved(batch_rows(range(1), amount_fen=20000))
    payment.pay(world, first, now=NOW)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        tj.execute("UPDATE subsidy_rows SET status = 'paid', txn_id = 'X', paid_at = 'now' WHERE batch_id = ?",
                   [second])


def test_subsidy_pay_paid_rows_cannot_be_edited_or_deleted(approved, world, tj):
    batch = approved(batch_rows(range(2)))
    payment.pay(world, batch, now=NOW)
    for sql in ("UPDATE subsidy_rows SET amount_fen = 1 WHERE batch_id = ?",
                "UPDATE subsidy_rows SET status = 'valid' WHERE batch_id = ?",
                "DELETE FROM subsidy_rows WHERE batch_id = ?",
                "UPDATE subsidy_batches SET status = 'approved' WHERE id = ?"):
        with pytest.raises(sqlite3.IntegrityError):
            tj.execute(sql, [batch])


class Crash(Exception):
    """Stands for the process dying at a fault point (the out-of-process tests kill it for real)."""


def crash_at(point: str, chunk_no: int):
    def fault(at: str, n: int) -> None:
        if (at, n) == (point, chunk_no):
            raise Crash(f"{at} {n}")
    return fault


@pytest.mark.parametrize("point,chunk_no", [("lease_taken", 0), ("before_commit", 1), ("after_commit", 1),
                                            ("before_commit", 3), ("before_commit", 4)])
def test_subsidy_pay_interrupted_anywhere_then_run_again_pays_each_row_once(approved, world, tj, point, chunk_no):
    rows = batch_rows(range(9))
    rows[4] = row(5, HOLDERS + 2, 30005)  # refused at import: no_card
    batch = approved(rows)
    with pytest.raises(Crash):
        payment.pay(world, batch, now=NOW, chunk=3, fault=crash_at(point, chunk_no))
    assert ledger_sum(tj) == 0
    committed = {"lease_taken": 0, "before_commit": chunk_no - 1, "after_commit": chunk_no}[point]
    paid = tj.execute("SELECT count(*) FROM subsidy_rows WHERE batch_id = ? AND status = 'paid'", [batch])
    assert paid.fetchone()[0] == min(committed * 3, 8)
    assert tj.execute("SELECT count(*) FROM subsidy_pay_leases").fetchone()[0] == 0  # given back on the way out
    result = payment.pay(world, batch, now=NOW, chunk=3)
    assert result["resumed"] is True and result["paid"] == 8
    assert result["this_run"]["paid"] == 8 - min(committed * 3, 8)
    assert_paid_exactly_once(tj, batch)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_subsidy_pay_a_lease_left_by_a_killed_pay_is_taken_over(approved, world, tj):
    batch = approved(batch_rows(range(4)))
    tj.execute("UPDATE subsidy_batches SET status = 'paying' WHERE id = ?", [batch])
    gone = dead_pid()
    tj["subsidy_pay_leases"].insert({"batch_id": batch, "token": "t", "host": os.uname().nodename, "pid": gone,
                                     "started_at": NOW.isoformat(), "chunks": 3})
    result = payment.pay(world, batch, now=NOW)
    assert result["took_over"] == {"pid": gone, "host": os.uname().nodename, "started_at": NOW.isoformat(),
                                   "chunks": 3, "forced": False}
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_running_pay_makes_the_second_refuse_naming_it(approved, world, tj):
    batch = approved(batch_rows(range(4)))
    tj["subsidy_pay_leases"].insert({"batch_id": batch, "token": "t", "host": os.uname().nodename,
                                     "pid": os.getppid(), "started_at": NOW.isoformat(), "chunks": 2})
    with pytest.raises(payment.PayInProgress) as busy:
        payment.pay(world, batch, now=NOW)
    assert busy.value.code == "subsidy.pay_in_progress" and busy.value.exit_code == 1
    assert f"process {os.getppid()}" in busy.value.message and "2 chunk(s)" in busy.value.message
    assert tj.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == 0
    forced = payment.pay(world, batch, now=NOW, take_over=True)
    assert forced["took_over"]["forced"] is True
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_another_machine_s_lease_is_only_taken_over_when_asked(approved, world, tj):
    batch = approved(batch_rows(range(2)))
    tj["subsidy_pay_leases"].insert({"batch_id": batch, "token": "t", "host": "other-host", "pid": 1,
                                     "started_at": NOW.isoformat(), "chunks": 0})
    with pytest.raises(payment.PayInProgress) as busy:
        payment.pay(world, batch, now=NOW)
    assert "--take-over" in busy.value.message
    assert payment.pay(world, batch, now=NOW, take_over=True)["took_over"]["host"] == "other-host"
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_run_whose_lease_was_taken_stops_before_its_next_chunk(approved, world, tj):
    batch = approved(batch_rows(range(6)))

    def steal(point: str, n: int) -> None:
        if (point, n) == ("after_commit", 1):
            tj.execute("UPDATE subsidy_pay_leases SET token = 'someone else' WHERE batch_id = ?", [batch])

    with pytest.raises(payment.LeaseLost):
        payment.pay(world, batch, now=NOW, chunk=2, fault=steal)
    assert tj.execute("SELECT count(*) FROM subsidy_rows WHERE batch_id = ? AND status = 'paid'",
                      [batch]).fetchone()[0] == 2
    assert tj.execute("SELECT token FROM subsidy_pay_leases").fetchone()[0] == "someone else"  # not ours to drop
    tj.execute("DELETE FROM subsidy_pay_leases")
    payment.pay(world, batch, now=NOW, chunk=2)
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_payment_already_in_the_ledger_is_not_posted_again(approved, world, tj):
    batch = approved(batch_rows(range(3)))
    amount = int(batch_rows(range(3))[1]["amount"].replace(".", ""))
    ledger.ensure_internal_account(tj, "FUND-GLJT", "fund", NOW)
    ledger.post(tj, txn_id=f"SUB-{batch}-2", entries=[("FUND-GLJT", -amount), (account_of(tj, 1), amount)],
                kind="subsidy", operator="system", now=NOW)
    payment.pay(world, batch, now=NOW)
    assert ledger.balance(tj, account_of(tj, 1)) == amount
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_conflicting_ledger_transaction_stops_the_chunk(approved, world, tj):
    batch = approved(batch_rows(range(3)))
    ledger.ensure_internal_account(tj, "FUND-GLJT", "fund", NOW)
    ledger.post(tj, txn_id=f"SUB-{batch}-2", entries=[("FUND-GLJT", -1), (account_of(tj, 1), 1)],
                kind="subsidy", operator="system", now=NOW)
    with pytest.raises(SbcardError) as conflict:
        payment.pay(world, batch, now=NOW)
    assert conflict.value.code == "subsidy.txn_conflict"
    assert tj.execute("SELECT count(*) FROM subsidy_rows WHERE batch_id = ? AND status != 'valid'",
                      [batch]).fetchone()[0] == 0


def test_subsidy_pay_a_frozen_fund_pays_nothing(approved, world, tj):
    batch = approved(batch_rows(range(3)))
    ledger.ensure_internal_account(tj, "FUND-GLJT", "fund", NOW)
    ledger.set_frozen(tj, "FUND-GLJT", frozen=True, now=NOW)
    with pytest.raises(RuleRefused) as refused:
        payment.pay(world, batch, now=NOW)
    assert refused.value.code == "subsidy.fund_frozen" and "nothing" in refused.value.message
    assert tj.execute("SELECT status FROM subsidy_batches WHERE id = ?", [batch]).fetchone()[0] == "approved"


def test_subsidy_pay_rows_of_several_items_draw_on_each_item_s_fund(approved, world, tj):
    rows = [row(1, 0, 10000), row(2, 1, 20000, item=ITEM2), row(3, 2, 30000)]
    batch = approved(rows)
    payment.pay(world, batch, now=NOW)
    assert ledger.balance(tj, "FUND-GLJT") == -40000
    assert ledger.balance(tj, "FUND-ZDSHBZJ") == -20000
    assert_paid_exactly_once(tj, batch)


def test_subsidy_pay_a_lapsed_temporary_loss_whose_account_is_still_frozen_fails_saying_why(approved, world, tj):
    batch = approved(batch_rows(range(2)))
    lifecycle.report_lost(world, card_number=card_number(1), channel="app", operator=CLERK,
                          now=NOW - timedelta(days=6))  # lapsed yesterday; `card lapse-losses` has not run
    payment.pay(world, batch, now=NOW)
    code, reason = tj.execute("SELECT reason_code, reason FROM subsidy_rows WHERE batch_id = ? AND seq = 2",
                              [batch]).fetchone()
    assert code == "account_frozen" and "lapse-losses" in reason


def test_subsidy_pay_reports_progress_after_each_chunk(approved, world):
    batch = approved(batch_rows(range(7)))
    seen = []
    payment.pay(world, batch, now=NOW, chunk=3, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 7), (6, 7), (7, 7)]
