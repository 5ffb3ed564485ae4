"""Importing a batch: every row checked against the registry, cards and accounts (every reason code), stored in
one transaction; a rejected file, a file of another region or the same file twice stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from subsidy_import_fixtures import home, template_home, world  # noqa: F401  (fixtures)
from subsidy_import_world import (
    BJ_MAKER,
    CITY_MAKER,
    CLERK,
    DISTRICT,
    MAKER,
    NOW,
    OTHER_MAKER,
    SAMPLES,
    UNREGISTERED,
    cards_of,
    cid,
    row,
    write_csv,
    write_xlsx,
)

from sbcard.domain.errors import NotFound, RuleRefused, SbcardError
from sbcard.domain.subsidies import FileRejected
from sbcard.services.subsidies import batch_import
from sbcard.store.db import content_digest


def _import(world, path: Path, **kw):
    return batch_import.import_batch(world, path, region=kw.pop("region", DISTRICT), operator=kw.pop("operator", MAKER),
                          now=NOW, **kw)


def _rows(world, batch_id: str) -> dict[int, dict]:
    return {r["seq"]: r for r in world.region("tj").query(
        "SELECT * FROM subsidy_rows WHERE batch_id = ? ORDER BY seq", [batch_id])}


def _digests(world) -> dict[str, str]:
    return {node: content_digest(world.region(node)) for node in ("bj", "tj", "he")}


# ----------------------------------------------------------------------------- every reason code, one file


CASES = [
    # (row, expected reason code or None for valid, words in the reason or note)
    (row(1, "ok0"), None, None),
    (row(2, "ok1", person="120103197001011009"), "invalid_id", "check character"),
    (row(3, "ok1", item="NOPE"), "unknown_item", "'NOPE' is not a subsidy item"),
    (row(4, "ok1", period="2026"), "bad_period", "not a month YYYYMM"),
    (row(5, "ok0", "50.00"), "duplicate_in_batch", "already on line 2"),
    (row(6, "ok2", "0"), "amount_not_positive", "not positive"),
    (row(7, "李国华", "800.01"), "amount_over_cap", "cap of ¥800.00"),
    (row(8, "ok3", person=UNREGISTERED, name="无名"), "not_registered", "no registry"),
    (row(9, "beijing"), "other_region", "registered in Beijing"),
    (row(10, "elsewhere"), "other_region", "lives in region 120101"),
    (row(11, "ok3", name="李四"), "name_mismatch", "differs from the registry"),
    (row(12, "ok4", card="T00000018"), "card_mismatch", "not a card of this region"),
    (row(13, "nocard"), "no_card", "no social security card"),
    (row(14, "issued"), "card_not_activated", "not activated yet"),
    (row(15, "lost"), "card_lost", "reported lost"),
    (row(16, "cancelled"), "card_cancelled", "is cancelled"),
    (row(17, "pending", card=cards_of("pending")[0]), "card_replaced", "cannot be paid either"),
    (row(18, "frozen"), "account_frozen", "is frozen"),
    (row(19, "replaced", card=cards_of("replaced")[0]), None, "paid to the current card"),
    (row(20, "lapsed"), "account_frozen", "lapse-losses"),
    (row(21, "ok1", item="高龄津贴", name="测试 二"), None, None),
]


def test_subsidy_import_every_reason_code(world, tmp_path):
    path = write_csv(tmp_path / "batch.csv", [r for r, _, _ in CASES])
    data = _import(world, path)
    expected_invalid = [code for _, code, _ in CASES if code]
    assert (data["rows"], data["valid"], data["invalid"]) == (len(CASES), 3, len(expected_invalid))
    stored = _rows(world, data["batch_id"])
    for r, code, words in CASES:
        got = stored[int(r["seq"])]
        assert (got["status"], got["reason_code"]) == (("invalid", code) if code else ("valid", None)), (r, got)
        if words:
            assert words in (got["reason"] if code else got["note"]), got
    assert sorted(data["reasons"]) == sorted(set(expected_invalid))
    assert data["reasons"]["other_region"] == 2 and data["noted"] == 1
    assert stored[21]["item"] == "GLJT" and stored[21]["citizen_id"] == cid("ok1")  # stored by code, normalised
    assert stored[19]["card_number"] == cards_of("replaced")[0]  # as written; paid to the current card


def test_subsidy_import_every_reason_code_is_covered_here():
    from sbcard.domain.subsidies import Reason

    assert {code for _, code, _ in CASES if code} == {reason.value for reason in Reason} - {"already_paid",
                                                                                          "account_max_balance"}
    # already_paid: test_subsidy_import_a_row_paid_in_an_earlier_batch_is_not_paid_again
    # account_max_balance (at pay time only): test_subsidy_money_bounds.py


def test_subsidy_import_stores_the_batch_and_its_rows(world, tmp_path):
    rows = [row(1, "ok0", "100.00"), row(2, "ok1", "200.00"), row(3, "nocard", "300.00")]
    data = _import(world, write_csv(tmp_path / "b.csv", rows))
    assert data["batch_id"] == "TJ-S-20261122-0001"
    assert {k: data[k] for k in ("rows", "valid", "invalid", "total_fen", "valid_fen", "invalid_fen", "status")} == {
        "rows": 3, "valid": 2, "invalid": 1, "total_fen": 60000, "valid_fen": 30000, "invalid_fen": 30000,
        "status": "imported"}
    assert (data["declared_by"], data["encoding"], data["format"], data["node"]) == ("trailer", "UTF-8", "csv", "tj")
    tj = world.region("tj")
    batch = next(tj.query("SELECT * FROM subsidy_batches WHERE id = ?", [data["batch_id"]]))
    assert batch["maker"] == MAKER and batch["checker"] is None and batch["source"] == "file"
    assert (batch["declared_count"], batch["declared_total_fen"], batch["valid_total_fen"]) == (3, 60000, 30000)
    assert batch["file_name"] == "b.csv" and batch["file_sha256"] == data["sha256"]
    audit = next(tj.query("SELECT * FROM audit_log WHERE action = 'subsidy.import'"))
    assert audit["subject"] == data["batch_id"] and audit["operator"] == MAKER
    second = _import(world, write_csv(tmp_path / "c.csv", rows[:1]))
    assert second["batch_id"] == "TJ-S-20261122-0002"


@pytest.mark.parametrize("sample", ["batch-utf8.csv", "batch-gbk.csv", "batch.xlsx"])
def test_subsidy_import_the_samples(world, sample):
    data = _import(world, SAMPLES / sample)
    assert (data["rows"], data["valid"], data["total_fen"]) == (7, 7, 446000)
    names = [r["name"] for r in _rows(world, data["batch_id"]).values()]
    assert names[0] == "王秀英" and names[6] == "买买提·艾力"


def test_subsidy_import_the_bom_sample_with_totals_as_options(world):
    data = _import(world, SAMPLES / "batch-utf8-bom.csv", count=7, total_fen=446000)
    assert (data["valid"], data["encoding"], data["declared_by"]) == (7, "UTF-8 with BOM", "options")


def test_subsidy_import_an_xlsx_id_held_as_a_number_is_explained(world, tmp_path):
    rows = [row(1, "ok0"), {**row(2, "ok1"), "citizen_id": float(cid("ok1"))}]
    data = _import(world, write_xlsx(tmp_path / "b.xlsx", rows))
    bad = _rows(world, data["batch_id"])[2]
    assert bad["reason_code"] == "invalid_id" and "format the column as text" in bad["reason"]


def test_subsidy_import_a_row_paid_in_an_earlier_batch_is_not_paid_again(world, tmp_path):
    first = _import(world, write_csv(tmp_path / "a.csv", [row(1, "ok0"), row(2, "ok1")]))
    tj = world.region("tj")
    with tj.conn:
        tj.execute("UPDATE subsidy_rows SET status = 'paid', txn_id = 'SUB-x', paid_at = ? WHERE batch_id = ? "
                   "AND seq = 1", [NOW.isoformat(), first["batch_id"]])
    again = _import(world, write_csv(tmp_path / "b.csv", [row(1, "ok0"), row(2, "ok1"), row(3, "ok0", period="202609")]))
    stored = _rows(world, again["batch_id"])
    assert stored[1]["reason_code"] == "already_paid" and first["batch_id"] in stored[1]["reason"]
    assert stored[2]["status"] == "valid"  # in the earlier batch too, but not paid there (pay time decides)
    assert stored[3]["status"] == "valid"  # another period


# ----------------------------------------------------------------------------- nothing stored


@pytest.mark.parametrize("trailer", [["2", "200.01"], ["2", "199.99"], ["3", "200.00"]])
def test_subsidy_import_control_totals_off_store_nothing(world, tmp_path, trailer):
    before = _digests(world)
    with pytest.raises(FileRejected) as rejected:
        _import(world, write_csv(tmp_path / "b.csv", [row(1, "ok0"), row(2, "ok1")], trailer=trailer))
    assert rejected.value.code == "subsidy_file.totals" and rejected.value.line == 4
    assert _digests(world) == before


def test_subsidy_import_options_off_by_one_fen_store_nothing(world, tmp_path):
    before = _digests(world)
    path = write_csv(tmp_path / "b.csv", [row(1, "ok0"), row(2, "ok1")], trailer=False)
    with pytest.raises(FileRejected) as rejected:
        _import(world, path, count=2, total_fen=20001)
    assert "--total declares ¥200.01, the rows add up to ¥200.00 (¥0.01 less)" in rejected.value.message
    assert _digests(world) == before


def test_subsidy_import_a_file_of_another_region_stores_nothing(world, tmp_path):
    before = _digests(world)
    rows = [row(1, "beijing"), row(2, "elsewhere"), row(3, "ok0", person=UNREGISTERED, name="无名")]
    with pytest.raises(FileRejected) as rejected:
        _import(world, write_csv(tmp_path / "b.csv", rows))
    error = rejected.value
    assert error.code == "subsidy_file.other_region" and (error.line, error.column) == (2, "2 (citizen_id)")
    assert "no row of the file is of a person of region 120103" in error.message and "Beijing" in error.message
    with pytest.raises(FileRejected):
        _import(world, write_csv(tmp_path / "c.csv", [row(1, "ok0")], trailer=["1", "100.00", "120101"]))
    assert _digests(world) == before
    # one person of the region is enough for the file to be the region's; the others are refused row by row
    data = _import(world, write_csv(tmp_path / "d.csv", [*rows, row(4, "ok0")]))
    assert (data["valid"], data["reasons"]) == (1, {"other_region": 2, "not_registered": 1})


def test_subsidy_import_the_same_file_twice_is_refused(world, tmp_path):
    path = write_csv(tmp_path / "b.csv", [row(1, "ok0")])
    first = _import(world, path)
    before = _digests(world)
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(RuleRefused) as refused:
        _import(world, copy)
    assert refused.value.code == "subsidy.same_file" and first["batch_id"] in refused.value.message
    assert _digests(world) == before


def test_subsidy_import_the_maker_is_a_finance_operator_of_the_region(world, tmp_path):
    path = write_csv(tmp_path / "b.csv", [row(1, "ok0")])
    before = _digests(world)
    with pytest.raises(RuleRefused) as clerk:
        _import(world, path, operator=CLERK)
    assert clerk.value.code == "operator.role"
    with pytest.raises(RuleRefused) as other:
        _import(world, path, operator=OTHER_MAKER)
    assert other.value.code == "subsidy.maker_region" and "120101" in other.value.message
    with pytest.raises(NotFound):
        _import(world, path, operator=BJ_MAKER)  # Beijing's staff are not Tianjin's
    with pytest.raises(NotFound):
        _import(world, path, operator="nobody")
    assert _digests(world) == before
    assert _import(world, path, operator=CITY_MAKER)["valid"] == 1  # the city's finance office may


def test_subsidy_import_a_region_that_is_not_one(world, tmp_path):
    from sbcard.domain.errors import InvalidInput

    path = write_csv(tmp_path / "b.csv", [row(1, "ok0")])
    for region in ("12010", "310101", "129999"):
        with pytest.raises((InvalidInput, NotFound)) as bad:
            _import(world, path, region=region)
        assert bad.value.field == "--region"


def test_subsidy_import_show_and_failures(world, tmp_path):
    rows = [row(1, "ok0"), row(2, "nocard", "20.00", remark="第二行"), row(3, "lost", "30.00"),
            row(4, "replaced", card=cards_of("replaced")[0])]
    data = _import(world, write_csv(tmp_path / "b.csv", rows))
    shown = batch_import.show(world, data["batch_id"].lower())
    assert shown["status"] == "imported" and shown["statuses"]["invalid"] == {"rows": 2, "amount_fen": 5000}
    assert [(r["reason_code"], r["rows"]) for r in shown["reasons"]] == [("card_lost", 1), ("no_card", 1)]
    assert shown["items"] == [{"item": "GLJT", "period": "202610", "rows": 4, "amount_fen": 25000}]
    assert shown["noted"] == 1 and shown["invalid_total_fen"] == 5000
    out = tmp_path / "failures.csv"
    result = batch_import.failures(world, data["batch_id"], out, operator=MAKER, now=NOW)
    assert (result["rows"], result["amount_fen"]) == (2, 5000)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == "seq,citizen_id,name,card_number,item,period,amount,remark,reason_code,reason"
    assert lines[1].startswith(f"2,{cid('nocard')},无卡,,GLJT,202610,20.00,第二行,no_card,")
    assert not list(tmp_path.glob(".*partial"))
    audit = next(world.region("tj").query("SELECT * FROM audit_log WHERE action = 'subsidy.failures'"))
    assert audit["operator"] == MAKER and audit["subject"] == data["batch_id"]


def test_subsidy_import_a_corrected_failures_file_is_a_batch_file(world, tmp_path):
    data = _import(world, write_csv(tmp_path / "b.csv", [row(1, "ok0"), row(2, "ok1", "900.00")]))
    out = tmp_path / "failures.csv"
    batch_import.failures(world, data["batch_id"], out)
    text = out.read_text(encoding="utf-8-sig").replace(",900.00,", ",800.00,")
    out.write_text(text + "#TOTAL,1,800.00\n", encoding="utf-8-sig")
    again = _import(world, out)
    assert (again["rows"], again["valid"], again["total_fen"]) == (1, 1, 80000)


def test_subsidy_import_unknown_batch(world):
    for batch in ("TJ-S-20990101-0001", "XX-1", ""):
        with pytest.raises(SbcardError) as missing:
            batch_import.show(world, batch)
        assert getattr(missing.value, "field", None) == "BATCH"


def test_subsidy_import_batches_lists_every_region(world, tmp_path):
    first = _import(world, write_csv(tmp_path / "a.csv", [row(1, "ok0")]))
    listed = batch_import.batches(world)
    assert [b["batch_id"] for b in listed] == [first["batch_id"]]
    assert batch_import.batches(world, region="110000") == [] and batch_import.batches(world, status="paid") == []
    assert batch_import.batches(world, region="120000")[0]["valid"] == 1


def test_subsidy_import_items_from_the_catalogue(world):
    listed = batch_import.items(world)
    assert {i["code"] for i in listed} == {"GDDLBH", "GLJT", "CJRLXBT", "CXJMJCYLJ", "ZDSHBZJ", "LSJZ"}
    gljt = next(i for i in listed if i["code"] == "GLJT")
    assert (gljt["name"], gljt["period"], gljt["cap_fen"], gljt["fund_account"]) == (
        "高龄津贴", "monthly", 80000, "FUND-GLJT")
