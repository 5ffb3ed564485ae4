"""Inputs that once crashed the subsidy commands with a traceback: each is now one line naming the field, exit 2."""

from __future__ import annotations

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import NOW, SUPERVISOR, approved_batch, batch_rows, row

from sbcard.services.subsidies import payment


@pytest.fixture
def paid(sbcard, tmp_path, world) -> str:
    batch = approved_batch(sbcard, tmp_path / "batch.csv", batch_rows(range(3)))
    payment.pay(world, batch, now=NOW)
    return batch


@pytest.mark.parametrize("seq", ["99999999999999999999", "9223372036854775808", "0", "１"])
def test_subsidy_reverse_a_sequence_number_beyond_any_row_is_bad_input(sbcard, paid, seq):
    code, out, err, _ = sbcard("subsidy", "reverse", paid, seq, "--operator", SUPERVISOR, "--reason", "typo")
    assert code == 2 and err.startswith("error: SEQ: ") and err.count("\n") == 1, err


def test_subsidy_import_the_same_seq_twice_is_refused_naming_both_lines(sbcard, tmp_path):
    from subsidy_pay_world import write_csv

    rows = batch_rows(range(3))
    rows[2] = {**rows[2], "seq": rows[0]["seq"]}
    path = write_csv(tmp_path / "twice.csv", rows)
    code, out, err, _ = sbcard("subsidy", "import", str(path), "--region", "120103", "--operator", "tj-fin-wang")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert "also on line" in err
