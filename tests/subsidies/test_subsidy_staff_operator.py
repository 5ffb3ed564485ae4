"""Paying a batch and taking out its unpaid rows are staff acts: ``--operator`` is required, never "system"."""

from __future__ import annotations

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import CHECKER, approved_batch, batch_rows

from sbcard.store.db import content_digest, open_db


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


@pytest.mark.parametrize("operator", [None, "", "   "], ids=["missing", "empty", "blank"])
@pytest.mark.parametrize("command", ["pay", "failures"])
def test_a_subsidy_staff_act_without_an_operator_is_a_usage_error_and_writes_nothing(
        sbcard, home, tmp_path, command, operator):
    batch = approved_batch(sbcard, tmp_path / "b.csv", batch_rows(range(3)))
    out = tmp_path / "failures.csv"
    args = ["subsidy", command, batch] + (["--out", str(out)] if command == "failures" else [])
    before = digests(home)
    code, stdout, err, _ = sbcard(*args, *([] if operator is None else ["--operator", operator]))
    assert code == 2 and stdout == ""
    assert "--operator" in err.strip().splitlines()[-1]
    assert digests(home) == before and not out.exists()


def test_the_checker_who_pays_is_recorded_on_the_entries(sbcard, tmp_path, tj):
    batch = approved_batch(sbcard, tmp_path / "b.csv", batch_rows(range(2)))
    code, _, err, _ = sbcard("subsidy", "pay", batch, "--operator", f"  {CHECKER} ", "--json")
    assert code == 0, err
    assert {r[0] for r in tj.execute("SELECT operator FROM ledger_entries WHERE kind = 'subsidy'")} == {CHECKER}
