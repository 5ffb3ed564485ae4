"""Reading batch files: encodings, .xlsx, the header, the trailer and the control totals; every refusal names
the line and column, and rejects the whole file."""

from __future__ import annotations

from pathlib import Path

import pytest
from subsidy_import_world import SAMPLES, row, total_of, write_csv, write_xlsx

from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.subsidies import ControlTotals, FileRejected
from sbcard.services.subsidies.files import BatchReader, scan

ROWS = [row(1, "ok0", "100.00"), row(2, "ok1", "200.50"), row(3, "王秀英", "0.01", name="王秀英")]


def _read(path: Path, **kw):
    """(the file's verdict, its rows): one pass, as the import reads it."""
    reader = BatchReader(path)
    rows = list(reader.rows())
    return reader.finish(**kw), rows


def _rejected(path: Path, **kw) -> FileRejected:
    with pytest.raises(FileRejected) as rejected:
        scan(path, **kw)
    return rejected.value


# ----------------------------------------------------------------------------- what is read


@pytest.mark.parametrize(("sample", "kind", "encoding", "by"), [
    ("batch-utf8.csv", "csv", "UTF-8", "trailer"),
    ("batch-gbk.csv", "csv", "GBK", "trailer"),
    ("batch.xlsx", "xlsx", None, "trailer"),
])
def test_subsidy_files_samples_read_alike(sample, kind, encoding, by):
    batch, rows = _read(SAMPLES / sample, region="120103")
    assert (batch.kind, batch.encoding, batch.declared_by) == (kind, encoding, by)
    assert (batch.rows, batch.total_fen, batch.declared) == (7, 446000, ControlTotals(7, 446000))
    assert batch.region == "120103" and batch.trailer_line == 9 and len(batch.sha256) == 64
    assert [r.seq for r in rows] == list(range(1, 8)) and [r.line for r in rows] == list(range(2, 9))
    assert rows[6].name == "买买提·艾力" and rows[5].remark == "临时救助 医疗" and rows[3].citizen_id.endswith("X")
    assert rows[4].amount_fen == 118000 and rows[0].card_number == ""


def test_subsidy_files_bom_sample_takes_its_totals_from_the_options():
    batch, rows = _read(SAMPLES / "batch-utf8-bom.csv", count=7, total_fen=446000)
    assert (batch.encoding, batch.declared_by, batch.trailer_line) == ("UTF-8 with BOM", "options", None)
    assert rows[0].name == "王秀英"


def test_subsidy_files_gbk_is_detected_from_the_first_line_that_is_not_ascii(tmp_path):
    rows = [row(1, "ok0", remark="plain"), row(2, "ok1", remark="中文备注")]
    batch, got = _read(write_csv(tmp_path / "gbk.csv", rows, encoding="gbk"))
    assert batch.encoding == "GBK"
    assert [r.remark for r in got] == ["plain", "中文备注"]
    assert scan(write_csv(tmp_path / "gb18030.csv", [row(1, "ok0", remark="㐀")], encoding="gb18030")).encoding == "GBK"


def test_subsidy_files_xlsx_numbers_and_cells(tmp_path):
    rows = [row(1, "ok0", "100.5"), row(2, "ok1", "12")]
    batch, got = _read(write_xlsx(tmp_path / "b.xlsx", rows))
    assert [r.amount_fen for r in got] == [10050, 1200] and batch.total_fen == 11250
    assert got[0].number_cells == frozenset({"seq", "amount"}) and got[0].card_number == ""


def test_subsidy_files_columns_in_any_order_and_optional_ones_left_out(tmp_path):
    header = ("amount", "name", "citizen_id", "seq", "item", "period")
    batch, rows = _read(write_csv(tmp_path / "b.csv", ROWS, header=header))
    assert batch.columns == header
    assert [(r.seq, r.amount_fen, r.card_number, r.remark) for r in rows][1] == (2, 20050, "", "")


def test_subsidy_files_blank_lines_and_a_failures_files_reason_columns_are_ignored(tmp_path):
    header = (*("seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark"), "reason_code",
              "reason")
    rows = [{**r, "reason_code": "no_card", "reason": "x"} for r in ROWS]
    path = write_csv(tmp_path / "b.csv", rows, header=header, extra=[[], [""] * 3])
    assert scan(path).rows == 3


# ----------------------------------------------------------------------------- control totals


def test_subsidy_files_a_trailer_off_by_one_fen_rejects_the_file(tmp_path):
    total = total_of(ROWS)  # 300.51
    error = _rejected(write_csv(tmp_path / "b.csv", ROWS, trailer=["3", "300.52"]))
    assert error.code == "subsidy_file.totals" and (error.line, error.column) == (5, "3 (total)")
    assert "declares ¥300.52, the rows add up to ¥300.51 (¥0.01 less)" in error.message
    error = _rejected(write_csv(tmp_path / "c.csv", ROWS, trailer=["3", "300.50"]))
    assert "(¥0.01 more)" in error.message
    error = _rejected(write_csv(tmp_path / "d.csv", ROWS, trailer=["4", total]))
    assert (error.line, error.column) == (5, "2 (count)") and "declares 4 rows, the file has 3" in error.message


def test_subsidy_files_options_off_by_one_fen_reject_the_file(tmp_path):
    path = write_csv(tmp_path / "b.csv", ROWS, trailer=False)
    error = _rejected(path, count=3, total_fen=30052)
    assert error.field == "b.csv" and "--total declares ¥300.52" in error.message
    assert scan(path, count=3, total_fen=30051).declared_by == "options"
    error = _rejected(path, count=2, total_fen=30051)
    assert "--count declares 2 rows, the file has 3" in error.message


def test_subsidy_files_trailer_and_options_must_agree(tmp_path):
    path = write_csv(tmp_path / "b.csv", ROWS)
    assert scan(path, count=3, total_fen=30051).declared_by == "trailer and options"
    error = _rejected(path, count=3, total_fen=30050)
    assert error.line == 5 and "--total says ¥300.50" in error.message


def test_subsidy_files_without_any_control_totals_the_file_is_rejected(tmp_path):
    error = _rejected(write_csv(tmp_path / "b.csv", ROWS, trailer=False))
    assert error.code == "subsidy_file.no_totals" and "#TOTAL,3,<the department's total>" in error.message
    with pytest.raises(InvalidInput) as half:
        scan(tmp_path / "b.csv", count=3)
    assert half.value.field == "--total"


def test_subsidy_files_xlsx_trailer_off_by_one_fen_names_the_column_letter(tmp_path):
    error = _rejected(write_xlsx(tmp_path / "b.xlsx", ROWS, trailer=[3, 300.5]))
    assert (error.line, error.column) == (5, "C (total)") and "(¥0.01 more)" in error.message


# ----------------------------------------------------------------------------- the header


@pytest.mark.parametrize(("header", "column", "words"), [
    (("seq", "citizen_id", "name", "item", "period", "amount", "bank"), "7 (bank)", "unknown column 'bank'"),
    (("seq", "citizen_id", "name", "item", "period", "amount", "seq"), "7 (seq)", "appears twice"),
    (("seq", "citizen_id", "", "item", "period", "amount"), "3", "without a name"),
])
def test_subsidy_files_unknown_and_doubled_columns(tmp_path, header, column, words):
    error = _rejected(write_csv(tmp_path / "b.csv", ROWS, header=header))
    assert error.code == "subsidy_file.header" and (error.line, error.column) == (1, column) and words in error.message


def test_subsidy_files_missing_columns(tmp_path):
    error = _rejected(write_csv(tmp_path / "b.csv", ROWS, header=("seq", "citizen_id", "name", "item", "remark")))
    assert error.line == 1 and "lacks the column(s) period, amount" in error.message


def test_subsidy_files_no_header_does_not_echo_the_data(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("1,120103197001011003,张三,,GLJT,202610,100.00,\n", encoding="utf-8")
    error = _rejected(path)
    assert error.line == 1 and "must be the header" in error.message and "张三" not in str(error)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n", b" , ,\r\n"])
def test_subsidy_files_an_empty_file_is_rejected(tmp_path, content):
    path = tmp_path / "b.csv"
    path.write_bytes(content)
    error = _rejected(path)
    assert error.code == "subsidy_file.empty" and error.line >= 1 and "the file is empty" in error.message


def test_subsidy_files_a_header_without_rows_is_rejected(tmp_path):
    error = _rejected(write_csv(tmp_path / "b.csv", [], trailer=["0", "0"]))
    assert error.code == "subsidy_file.no_rows" and error.line == 2


def test_subsidy_files_an_empty_workbook_is_rejected(tmp_path):
    import openpyxl

    openpyxl.Workbook().save(tmp_path / "b.xlsx")
    assert _rejected(tmp_path / "b.xlsx").code == "subsidy_file.empty"


# ----------------------------------------------------------------------------- rows


@pytest.mark.parametrize(("amount", "words"), [
    ("12.345", "more than 2 decimal places"), ("1,000", "no thousands separators"), ("", "no amount given"),
    ("abc", "is not an amount in yuan"), ("1e3", "exponent"),
])
def test_subsidy_files_an_unreadable_amount_names_line_and_column(tmp_path, amount, words):
    rows = [*ROWS[:2], {**ROWS[2], "amount": amount}]
    error = _rejected(write_csv(tmp_path / "b.csv", rows, trailer=["3", "300.51"]))
    assert error.code == "subsidy_file.amount" and (error.line, error.column) == (4, "7 (amount)")
    assert words in error.message


def test_subsidy_files_negative_and_zero_amounts_are_rows_to_refuse_not_file_errors(tmp_path):
    rows = [row(1, "ok0", "-5.00"), row(2, "ok1", "0")]
    batch, got = _read(write_csv(tmp_path / "b.csv", rows))
    assert batch.total_fen == -500 and [r.amount_fen for r in got] == [-500, 0]


def test_subsidy_files_sequence_numbers_are_unique(tmp_path):
    rows = [row(3, "ok0"), row(1, "ok1"), row(2, "ok2"), row(1, "ok3")]
    error = _rejected(write_csv(tmp_path / "b.csv", rows))
    assert (error.line, error.column) == (5, "1 (seq)") and "sequence number 1 is also on line 3" in error.message
    error = _rejected(write_csv(tmp_path / "c.csv", [row(1, "ok0"), {**row(2, "ok1"), "seq": "2a"}]))
    assert (error.line, error.column) == (3, "1 (seq)")


def test_subsidy_files_rows_of_the_wrong_width(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("seq,citizen_id,name,item,period,amount\n1,X,Y,GLJT,202610\n", encoding="utf-8")
    error = _rejected(path)
    assert error.line == 2 and "5 fields, the header has 6" in error.message
    path.write_text("seq,citizen_id,name,item,period,amount\n1,X,Y,GLJT,202610,1,,\n#TOTAL,1,1\n", encoding="utf-8")
    assert scan(path).rows == 1  # empty fields beyond the header are what spreadsheets write
    path.write_text("seq,citizen_id,name,item,period,amount\n1,X,Y,GLJT,202610,1,,z\n#TOTAL,1,1\n", encoding="utf-8")
    error = _rejected(path)
    assert (error.line, error.column) == (2, "8")


def test_subsidy_files_the_trailer_ends_the_file(tmp_path):
    error = _rejected(write_csv(tmp_path / "b.csv", ROWS, extra=[["4", "x"]]))
    assert error.code == "subsidy_file.after_trailer" and error.line == 6 and "trailer of line 5" in error.message
    error = _rejected(write_csv(tmp_path / "c.csv", [*ROWS[:1], {**ROWS[1], "seq": "#COMMENT"}, *ROWS[2:]]))
    assert error.code == "subsidy_file.control_row" and (error.line, error.column) == (3, "1 (seq)")
    assert "#COMMENT" in error.message


@pytest.mark.parametrize(("trailer", "column", "words"), [
    (["three", "300.51"], "2 (count)", "not a number of rows"),
    (["3", "300.511"], "3 (total)", "more than 2 decimal places"),
    (["3", "300.51", "12345"], "4 (region)", "6 digits"),
    (["3", "300.51", "120103", "x"], "5", "nothing after the region"),
])
def test_subsidy_files_a_malformed_trailer(tmp_path, trailer, column, words):
    error = _rejected(write_csv(tmp_path / "b.csv", ROWS, trailer=trailer))
    assert (error.line, error.column) == (5, column) and words in error.message


def test_subsidy_files_a_file_of_another_region_by_its_trailer(tmp_path):
    path = write_csv(tmp_path / "b.csv", ROWS, trailer=["3", "300.51", "110105"])
    error = _rejected(path, region="120103")
    assert error.code == "subsidy_file.other_region" and (error.line, error.column) == (5, "4 (region)")
    assert "for region 110105 朝阳区, not 120103 河西区" in error.message
    assert scan(path, region="110105").region == "110105"


# ----------------------------------------------------------------------------- encodings gone wrong


def test_subsidy_files_a_line_in_another_encoding_is_named(tmp_path):
    rows = [ROWS[0], {**ROWS[1], "remark": "备注"}, {**ROWS[2], "remark": "中文"}]
    path = write_csv(tmp_path / "b.csv", rows)  # UTF-8, decided by line 3's remark
    path.write_bytes(path.read_bytes().replace("中文".encode(), "中文".encode("gbk")))  # line 4 pasted from GBK
    error = _rejected(path)
    assert error.code == "subsidy_file.encoding" and error.line == 4
    assert "not valid UTF-8 although the lines before it are" in error.message


def test_subsidy_files_bytes_that_are_neither_utf8_nor_gbk(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"seq,citizen_id,name,item,period,amount\n1,X,\xff\xff,GLJT,202610,1\n#TOTAL,1,1\n")
    error = _rejected(path)
    assert error.line == 2 and "neither UTF-8 nor GBK" in error.message


def test_subsidy_files_old_excel_and_broken_workbooks_are_refused(tmp_path):
    path = tmp_path / "b.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    assert "save it as .xlsx or as CSV" in _rejected(path).message
    path = tmp_path / "b.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert "not a readable .xlsx workbook" in _rejected(path).message


def test_subsidy_files_a_missing_file(tmp_path):
    with pytest.raises(NotFound) as missing:
        scan(tmp_path / "nothing.csv")
    assert missing.value.field == "FILE"


def test_subsidy_files_rows_come_before_the_verdict_on_the_whole_file(tmp_path):
    from sbcard.domain.errors import SbcardError

    reader = BatchReader(write_csv(tmp_path / "b.csv", ROWS, trailer=["3", "300.52"]))
    rows = reader.rows()
    assert next(rows).seq == 1  # streamed: the first row comes before the file is read to its end
    with pytest.raises(SbcardError):
        reader.finish()
    assert [r.seq for r in rows] == [2, 3]
    with pytest.raises(FileRejected) as rejected:
        reader.finish()
    assert rejected.value.code == "subsidy_file.totals"


@pytest.mark.parametrize(("amount", "fen"), [("1", 100), ("1.5", 150), ("0.05", 5), ("¥12.30", 1230),
                                            ("-3.10", -310), ("000012.00", 1200)])
def test_subsidy_files_amounts_in_yuan_to_fen(tmp_path, amount, fen):
    batch, [got] = _read(write_csv(tmp_path / "b.csv", [row(1, "ok0", amount)]))
    assert got.amount_fen == fen == batch.total_fen


def test_subsidy_files_an_xlsx_cell_of_a_kind_no_batch_holds_rejects_the_file(tmp_path):
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark"])
    sheet.append([1, ROWS[0]["citizen_id"], ROWS[0]["name"], "", "GLJT", "202503", dt.timedelta(hours=1), ""])
    book.save(tmp_path / "duration.xlsx")
    error = _rejected(tmp_path / "duration.xlsx")
    assert error.code == "subsidy_file.cell" and error.line == 2 and "timedelta" in error.message


def test_subsidy_files_an_xlsx_cut_short_or_without_a_sheet_rejects_the_file(tmp_path):
    import zipfile

    source = write_xlsx(tmp_path / "b.xlsx", ROWS)
    for name, keep in (("cut.xlsx", lambda n, data: data[: len(data) // 2] if n.endswith("sheet1.xml") else data),
                       ("nosheet.xlsx", lambda n, data: None if "worksheets/" in n else data)):
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(tmp_path / name, "w") as out:
            for item in src.infolist():
                data = keep(item.filename, src.read(item.filename))
                if data is not None:
                    out.writestr(item, data)
        assert _rejected(tmp_path / name).code == "subsidy_file.format"
