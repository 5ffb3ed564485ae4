"""``sbcard subsidy pay`` as finance staff and scripts see it: the JSON keys, the one-screen summary, exit
codes, and the whole workflow of a month: import, approve, pay, failures, correct, resubmit, pay."""

from __future__ import annotations

import csv

from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import (
    CHECKER, CLERK, MAKER, NOW, approved_batch, assert_paid_exactly_once, batch_rows, card_number, import_csv, name,
)

from sbcard.services.cards import lifecycle

PAY_KEYS = {"batch_id", "region", "status", "source", "rows", "valid", "invalid", "declared_total_fen",
            "valid_total_fen", "maker", "checker", "reject_reason", "created_at", "approved_at", "paid_at", "paid",
            "paid_fen", "failed", "failed_fen", "to_pay", "to_pay_fen", "failed_by_reason", "reversed",
            "reversed_fen", "lease", "already", "resumed", "took_over", "this_run"}


def test_subsidy_pay_cli_json_has_the_documented_keys(sbcard, tmp_path, tj):
    rows = batch_rows(range(5))
    rows[1]["name"] = "某某某"
    batch = approved_batch(sbcard, tmp_path / "b.csv", rows)
    code, out, err, data = sbcard("subsidy", "pay", batch, "--operator", CHECKER, "--json")
    assert code == 0, err
    assert set(data) == PAY_KEYS
    assert (data["paid"], data["failed"], data["already"]) == (4, 1, False)
    assert data["paid_fen"] + data["failed_fen"] == data["declared_total_fen"]
    assert data["failed_by_reason"] == [{"reason_code": "name_mismatch", "reason": "name does not match the registry",
                                         "rows": 1, "amount_fen": 30002}]
    assert set(data["this_run"]) == {"paid", "paid_fen", "failed", "failed_fen"}
    assert err == ""  # no progress bar when stderr is not a terminal
    code, out, err, again = sbcard("subsidy", "pay", batch, "--operator", CHECKER, "--json")
    assert code == 0 and again["already"] is True and again["this_run"]["paid"] == 0


def test_subsidy_pay_cli_summary_tells_what_happened(sbcard, tmp_path, world, tj):
    rows = batch_rows(range(6))
    rows[2]["name"] = "某某某"
    batch = approved_batch(sbcard, tmp_path / "b.csv", rows)
    lifecycle.report_lost(world, card_number=card_number(4), channel="counter", operator=CLERK,
                          outlet="TJ-120103-01", now=NOW)
    code, out, err, _ = sbcard("subsidy", "pay", batch, "--operator", CHECKER)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Batch {batch} paid for 天津市河西区 (120103), approved by {CHECKER}."
    assert "This run: paid 4 (¥1,200.13), failed 1 (¥300.05) at pay time." in out
    assert "paid      4  ¥1,200.13" in out
    assert "failed    2  ¥600.08  (1 refused at import, 1 at pay time)" in out
    assert "declared  ¥1,800.21  = paid + failed" in out
    assert any(line.startswith("card_lost") and "¥300.05" in line for line in lines)
    assert any(line.startswith("name_mismatch") for line in lines)
    assert f"sbcard subsidy failures {batch} --out FILE.csv --operator CODE" in out
    code, out, err, _ = sbcard("subsidy", "pay", batch, "--operator", CHECKER)
    assert out.startswith(f"Batch {batch} was already paid at ") and "nothing done, nobody paid again" in out


def test_subsidy_pay_cli_refusals_and_bad_input(sbcard, tmp_path):
    code, _, err, _ = sbcard("subsidy", "pay", "TJ-S-20261122-9999", "--operator", CHECKER)
    assert code == 2 and "no subsidy batch TJ-S-20261122-9999" in err
    batch = import_csv(sbcard, tmp_path / "b.csv", batch_rows(range(2)))["batch_id"]
    code, _, err, _ = sbcard("subsidy", "pay", batch, "--operator", CHECKER)
    assert code == 1 and "not approved yet" in err and f"subsidy approve {batch}" in err
    code, _, err, _ = sbcard("subsidy", "pay", batch, "--operator", CHECKER, "--chunk", "0")
    assert code == 2 and "--chunk" in err
    code, _, err, _ = sbcard("subsidy", "approve", batch, "--operator", CHECKER)
    code, _, err, _ = sbcard("subsidy", "pay", batch, "--operator", "nobody")
    assert code == 2 and "no operator 'nobody'" in err


def test_subsidy_pay_cli_a_month_from_file_to_resubmission(sbcard, tmp_path, world, tj):
    """The operator's month: a batch with a wrong name and a card lost after the import; the failures file is
    corrected and resubmitted; in the end everyone is paid exactly once and the books balance."""
    rows = batch_rows(range(8))
    rows[3]["name"] = "某某某"
    batch = approved_batch(sbcard, tmp_path / "october.csv", rows)
    lifecycle.report_lost(world, card_number=card_number(6), channel="counter", operator=CLERK,
                          outlet="TJ-120103-01", now=NOW)
    code, _, err, paid = sbcard("subsidy", "pay", batch, "--operator", CHECKER, "--json")
    assert code == 0, err
    assert (paid["paid"], paid["failed"]) == (6, 2)

    failures = tmp_path / "failures.csv"
    code, _, err, _ = sbcard("subsidy", "failures", batch, "--out", str(failures), "--operator", CHECKER)
    assert code == 0, err
    with failures.open(encoding="utf-8-sig", newline="") as f:
        failed = list(csv.DictReader(f))
    assert {(r["seq"], r["reason_code"]) for r in failed} == {("4", "name_mismatch"), ("7", "card_lost")}

    # The department corrects the name in the failures file; the holder finds the card (解挂); the corrected
    # file goes in as a new batch (its reason columns are ignored by the import).
    lifecycle.unblock(world, card_number=card_number(6), operator=CLERK, outlet="TJ-120103-01", now=NOW)
    for r in failed:
        if r["seq"] == "4":
            r["name"] = name(3)
    resubmitted = tmp_path / "october-resubmitted.csv"
    with resubmitted.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(failed[0]))
        writer.writeheader()
        writer.writerows(failed)
    total = sum(int(r["amount"].replace(".", "")) for r in failed)
    code, _, err, imported = sbcard("subsidy", "import", str(resubmitted), "--region", "120103", "--operator", MAKER,
                                    "--count", "2", "--total", f"{total // 100}.{total % 100:02d}", "--json")
    assert code == 0, err
    again = imported["batch_id"]
    code, _, err, _ = sbcard("subsidy", "approve", again, "--operator", CHECKER)
    assert code == 0, err
    code, _, err, second = sbcard("subsidy", "pay", again, "--operator", CHECKER, "--json")
    assert code == 0, err
    assert (second["paid"], second["failed"]) == (2, 0)
    assert_paid_exactly_once(tj, batch)
    assert_paid_exactly_once(tj, again)
    code, _, err, shown = sbcard("subsidy", "show", again, "--json")
    assert code == 0, err
    assert shown["status"] == "paid"


def test_subsidy_pay_cli_a_generated_batch_goes_the_same_way(sbcard, tj):
    """免申即享: 高龄津贴 generated from the registry (the holders born 1940-1946 are 80 or over), approved and
    paid like a file."""
    code, _, err, made = sbcard("subsidy", "generate", "--item", "高龄津贴", "--as-of", "2026-11-01",
                                "--region", "120103", "--operator", MAKER, "--json")
    assert code == 0, err
    assert made["valid"] > 0
    code, _, err, _ = sbcard("subsidy", "approve", made["batch_id"], "--operator", MAKER)
    assert code == 1
    code, _, err, _ = sbcard("subsidy", "approve", made["batch_id"], "--operator", CHECKER)
    assert code == 0, err
    code, _, err, paid = sbcard("subsidy", "pay", made["batch_id"], "--operator", CHECKER, "--json")
    assert code == 0, err
    assert paid["source"] == "generated" and paid["paid"] == made["valid"]
    assert_paid_exactly_once(tj, made["batch_id"])
