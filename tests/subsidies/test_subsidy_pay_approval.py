"""Maker–checker: the operator who imported a batch cannot approve it; only an imported batch is approved or
rejected; a rejected or unapproved batch is never paid."""

from __future__ import annotations

import sqlite3

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import CHECKER, CLERK, MAKER, NOW, SUPERVISOR, batch_rows, import_csv, insert_batch
from world_template import error_line

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.services.subsidies import payment


@pytest.fixture
def batch(sbcard, tmp_path) -> str:
    """A batch of five rows imported by the maker (``sbcard subsidy import``)."""
    return import_csv(sbcard, tmp_path / "batch.csv", batch_rows(range(5)))["batch_id"]


def status(tj, batch: str) -> str:
    return tj.execute("SELECT status FROM subsidy_batches WHERE id = ?", [batch]).fetchone()[0]


def test_subsidy_approval_the_maker_cannot_check_their_own_batch(world, tj, batch):
    with pytest.raises(RuleRefused) as refused:
        payment.approve(world, batch, operator=MAKER, now=NOW)
    assert refused.value.code == "subsidy.maker_checker"
    assert MAKER in refused.value.message and "second operator" in refused.value.message
    with pytest.raises(RuleRefused) as refused:
        payment.reject(world, batch, operator=MAKER, reason="looks wrong", now=NOW)
    assert refused.value.code == "subsidy.maker_checker"
    assert status(tj, batch) == "imported"


def test_subsidy_approval_needs_a_known_finance_or_supervisor_operator(world, tj, batch):
    with pytest.raises(NotFound) as unknown:
        payment.approve(world, batch, operator="nobody", now=NOW)
    assert unknown.value.code == "operator.unknown" and unknown.value.field == "--operator"
    with pytest.raises(RuleRefused) as clerk:
        payment.approve(world, batch, operator=CLERK, now=NOW)
    assert clerk.value.code == "operator.role"
    assert status(tj, batch) == "imported"
    assert payment.approve(world, batch, operator=SUPERVISOR, now=NOW)["checker"] == SUPERVISOR


def test_subsidy_approval_by_a_second_operator_is_recorded(world, tj, batch):
    header = payment.approve(world, batch, operator=CHECKER, now=NOW)
    assert header["status"] == "approved" and header["checker"] == CHECKER and header["maker"] == MAKER
    assert header["approved_at"] == NOW.isoformat() and header["valid"] == 5
    audit = tj.execute("SELECT operator, action FROM audit_log WHERE subject = ?", [batch]).fetchall()
    assert (CHECKER, "subsidy.approve") in audit
    with pytest.raises(RuleRefused) as again:
        payment.approve(world, batch, operator=SUPERVISOR, now=NOW)
    assert again.value.code == "subsidy.approved" and CHECKER in again.value.message


def test_subsidy_approval_a_rejected_batch_is_never_approved_nor_paid(world, tj, batch):
    with pytest.raises(InvalidInput) as no_reason:
        payment.reject(world, batch, operator=CHECKER, reason="  ", now=NOW)
    assert no_reason.value.field == "--reason"
    rejected = payment.reject(world, batch, operator=CHECKER, reason="amounts are last month's", now=NOW)
    assert rejected["status"] == "rejected" and rejected["reject_reason"] == "amounts are last month's"
    with pytest.raises(RuleRefused) as approve:
        payment.approve(world, batch, operator=SUPERVISOR, now=NOW)
    assert approve.value.code == "subsidy.rejected" and "last month" in approve.value.message
    with pytest.raises(RuleRefused) as pay:
        payment.pay(world, batch, now=NOW)
    assert pay.value.code == "subsidy.rejected"
    assert tj.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == 0


def test_subsidy_approval_an_unapproved_batch_is_not_paid(world, tj, batch):
    with pytest.raises(RuleRefused) as refused:
        payment.pay(world, batch, now=NOW)
    assert refused.value.code == "subsidy.not_approved" and "approve" in refused.value.message
    assert status(tj, batch) == "imported"
    assert tj.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == 0


def test_subsidy_approval_the_database_also_refuses_maker_as_checker(tj, batch):
    with pytest.raises(sqlite3.IntegrityError):
        tj.execute("UPDATE subsidy_batches SET status = 'approved', checker = maker, approved_at = 'x' WHERE id = ?",
                   [batch])


def test_subsidy_approval_a_header_that_disagrees_with_its_rows_is_not_approved(world, tj):
    # Never made by the import: a batch written into the tables by hand, its header off by one fen.
    batch = insert_batch(tj, "TJ-S-20261122-0901", batch_rows(range(5)))
    tj.execute("UPDATE subsidy_batches SET valid_total_fen = valid_total_fen + 1 WHERE id = ?", [batch])
    with pytest.raises(SbcardError) as refused:
        payment.approve(world, batch, operator=CHECKER, now=NOW)
    assert refused.value.code == "subsidy.header_mismatch"
    assert status(tj, batch) == "imported"


def test_subsidy_approval_an_unknown_batch_is_named(world):
    with pytest.raises(NotFound) as unknown:
        payment.approve(world, "TJ-S-20261122-9999", operator=CHECKER, now=NOW)
    assert unknown.value.code == "subsidy.unknown_batch" and "TJ-S-20261122-9999" in unknown.value.message


def test_subsidy_approval_through_the_command_line(sbcard, batch, tj):
    code, _, err, _ = sbcard("subsidy", "approve", batch, "--operator", MAKER, "--json")
    assert code == 1 and "cannot also approve" in err and error_line(err).startswith("error: --operator:")
    code, out, err, data = sbcard("subsidy", "approve", batch, "--operator", CHECKER, "--json")
    assert code == 0, err
    assert {k: data[k] for k in ("batch_id", "status", "maker", "checker")} == {
        "batch_id": batch, "status": "approved", "maker": MAKER, "checker": CHECKER}
    code, _, err, _ = sbcard("subsidy", "reject", batch, "--operator", SUPERVISOR, "--reason", "late")
    assert code == 1 and "already approved by tj-fin-li" in err


def test_subsidy_approval_reject_through_the_command_line(sbcard, batch):
    code, out, err, _ = sbcard("subsidy", "reject", batch, "--operator", CHECKER, "--reason", "wrong month")
    assert code == 0, err
    assert out.strip() == f"Batch {batch} rejected by {CHECKER}: wrong month"
    code, _, err, _ = sbcard("subsidy", "pay", batch, "--operator", CHECKER, "--json")
    assert code == 1 and "was rejected by tj-fin-li" in err and "wrong month" in err
