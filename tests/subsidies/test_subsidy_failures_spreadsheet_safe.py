"""The failure file is safe to open in a spreadsheet, and still re-imports as the same rows."""

from __future__ import annotations

import csv

from subsidy_import_fixtures import home, template_home, world  # noqa: F401  (fixtures)
from subsidy_import_world import DISTRICT, MAKER, NOW, row, write_csv

from sbcard.services.subsidies import batch_import

FORMULAS = ['=HYPERLINK("http://evil.example","点我")', "@SUM(1+1)", "+86 10 6000", "-1+2"]


def _import(world, path):
    return batch_import.import_batch(world, path, region=DISTRICT, operator=MAKER, now=NOW)


def _stored(world, batch_id):
    return [(r["name"], r["remark"], r["amount_fen"]) for r in world.region("tj").query(
        "SELECT name, remark, amount_fen FROM subsidy_rows WHERE batch_id = ? ORDER BY seq", [batch_id])]


def test_formula_cells_are_guarded_and_the_file_reimports_as_the_same_rows(world, tmp_path) -> None:
    rows = [row(n, "nocard", "20.00", name=formula, remark=formula) for n, formula in enumerate(FORMULAS, start=1)]
    rows.append(row(len(rows) + 1, "ok0", "-5.00", remark="-负数"))  # refused: not positive
    first = _import(world, write_csv(tmp_path / "b.csv", rows))
    out = tmp_path / "failures.csv"
    assert batch_import.failures(world, first["batch_id"], out)["rows"] == len(rows)

    with out.open(encoding="utf-8-sig", newline="") as f:
        written = list(csv.DictReader(f))
    for cells in written:
        for column in ("name", "remark", "reason"):
            assert not cells[column].startswith(("=", "+", "-", "@", "\t", "\r")), cells[column]
    assert [c["name"] for c in written[:4]] == ["'" + f for f in FORMULAS]
    assert written[-1]["amount"] == "-5.00"  # a number in the amount column is written as a number
    assert written[-1]["remark"] == "'-负数"

    with out.open("a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow(["#TOTAL", len(rows), "75.00"])
    again = _import(world, out)
    assert _stored(world, again["batch_id"]) == _stored(world, first["batch_id"])
