"""``sbcard subsidy items | import | generate | show | failures | batches``: stable JSON keys, one-line errors
naming the line and column, exit codes."""

from __future__ import annotations

import csv

from subsidy_import_fixtures import frozen, home, template_home, world  # noqa: F401  (fixtures)
from subsidy_import_world import CHECKER, DISTRICT, MAKER, SAMPLES, cid, row, write_csv
from world_template import error_line

IMPORT_KEYS = {"batch_id", "rows", "valid", "invalid", "total_fen", "valid_fen", "invalid_fen", "status", "source",
               "region", "node", "file", "sha256", "format", "encoding", "declared_count", "declared_total_fen",
               "declared_by", "reasons", "noted"}


def _import(sbcard, path, *extra: str):
    return sbcard("subsidy", "import", str(path), "--region", DISTRICT, "--operator", MAKER, *extra, "--json")


def test_subsidy_import_cli_items(sbcard, frozen):
    code, out, err, data = sbcard("subsidy", "items", "--json")
    assert code == 0, err
    assert all({"code", "name", "period", "cap_fen"} <= set(item) for item in data)
    assert {item["name"] for item in data} >= {"耕地地力保护补贴", "高龄津贴", "残疾人两项补贴", "城乡居民基础养老金",
                                             "最低生活保障金", "临时救助"}
    code, out, _, _ = sbcard("subsidy", "items")
    assert code == 0 and "高龄津贴" in out and "¥800.00" in out


def test_subsidy_import_cli_json_keys_and_summary(sbcard, frozen, tmp_path):
    code, out, err, data = _import(sbcard, SAMPLES / "batch-gbk.csv")
    assert code == 0, err
    assert set(data) == IMPORT_KEYS
    assert {k: data[k] for k in ("batch_id", "rows", "valid", "invalid", "total_fen")} == {
        "batch_id": "TJ-S-20261122-0001", "rows": 7, "valid": 7, "invalid": 0, "total_fen": 446000}
    code, out, err, _ = sbcard("subsidy", "import", str(SAMPLES / "batch-utf8-bom.csv"), "--region", DISTRICT,
                               "--operator", MAKER, "--count", "7", "--total", "4460")
    assert code == 0, err
    assert "Imported batch-utf8-bom.csv (CSV, UTF-8 with BOM): batch TJ-S-20261122-0002" in out
    assert "sbcard subsidy approve TJ-S-20261122-0002" in out


def test_subsidy_import_cli_a_bad_file_is_one_line_naming_line_and_column(sbcard, frozen, tmp_path):
    path = write_csv(tmp_path / "b.csv", [row(1, "ok0"), row(2, "ok1")], trailer=["2", "200.01"])
    code, out, err, _ = _import(sbcard, path)
    assert code == 2 and out == ""
    assert error_line(err) == ("error: b.csv line 4, column 3 (total): the trailer declares ¥200.01, the rows add up to ¥200.00 "
                   "(¥0.01 less): the whole file is rejected\n")
    code, _, err, _ = sbcard("subsidy", "batches", "--json")
    assert code == 0


def test_subsidy_import_cli_refusals_and_usage(sbcard, frozen, tmp_path):
    path = write_csv(tmp_path / "b.csv", [row(1, "ok0")])
    assert _import(sbcard, path)[0] == 0
    code, _, err, _ = _import(sbcard, path)
    assert code == 1 and "imported before as batch TJ-S-20261122-0001" in err
    code, _, err, _ = _import(sbcard, tmp_path / "missing.csv")
    assert code == 2 and "no such file" in err
    code, _, err, _ = _import(sbcard, path, "--count", "1")
    assert code == 2 and "--total" in err
    code, _, err, _ = _import(sbcard, path, "--count", "1", "--total", "1,00")
    assert code == 2 and "--total" in err and "thousands" in err


def test_subsidy_import_cli_show_failures_batches(sbcard, frozen, tmp_path):
    rows = [row(1, "ok0"), row(2, "nocard", "20.00"), row(3, "issued", "30.00")]
    code, _, err, data = _import(sbcard, write_csv(tmp_path / "b.csv", rows))
    assert code == 0, err
    batch = data["batch_id"]
    code, out, err, shown = sbcard("subsidy", "show", batch, "--json")
    assert code == 0, err
    assert {"batch_id", "region", "status", "rows", "valid", "invalid", "declared_total_fen", "valid_total_fen",
            "paid_count", "paid_fen", "failed_count", "failed_fen", "statuses", "reasons", "items"} <= set(shown)
    assert [r["reason_code"] for r in shown["reasons"]] == ["card_not_activated", "no_card"]
    code, out, _, _ = sbcard("subsidy", "show", batch)
    assert code == 0 and "no_card" in out and "sbcard subsidy failures" in out
    out_file = tmp_path / "failures.csv"
    code, out, err, written = sbcard("subsidy", "failures", batch, "--out", str(out_file), "--operator", CHECKER,
                                     "--json")
    assert code == 0, err
    assert (written["rows"], written["amount_fen"], written["out"]) == (2, 5000, str(out_file))
    with out_file.open(encoding="utf-8-sig", newline="") as f:
        failures = list(csv.DictReader(f))
    assert [(r["seq"], r["citizen_id"], r["reason_code"]) for r in failures] == [
        ("2", cid("nocard"), "no_card"), ("3", cid("issued"), "card_not_activated")]
    assert all(r["reason"] for r in failures)
    code, out, err, listed = sbcard("subsidy", "batches", "--json")
    assert code == 0 and [b["batch_id"] for b in listed] == [batch]
    code, out, err, _ = sbcard("subsidy", "show", "TJ-S-20990101-0001")
    assert code == 2 and "no subsidy batch" in err


def test_subsidy_import_cli_generate(sbcard, frozen):
    code, out, err, _ = sbcard("subsidy", "generate", "--item", "GLJT", "--region", DISTRICT, "--operator", MAKER)
    assert code == 0, err
    assert "Generated GLJT 202611 for 天津市河西区 (120103) (ages on 2026-11-22): batch TJ-S-20261122-0001" in out


def test_subsidy_import_cli_progress_bars_by_phase(monkeypatch, capsys):
    from sbcard.cli.subsidies import _Bars

    bars = _Bars()
    bars("reading", 10, 100)
    bars("reading", 100, 100)
    bars("checking", 3, 7)
    bars("checking", 7, 7)
    bars.close()
    assert bars.bar is None and bars.done == 7
