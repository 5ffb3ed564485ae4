"""Cells safe to open in a spreadsheet: text that a spreadsheet would run is guarded, numbers are not."""

from __future__ import annotations

import pytest

from sbcard.domain.csv_safety import Numeric, safe_cell, safe_row, unguard


@pytest.mark.parametrize(("cell", "written"), [
    ('=HYPERLINK("http://evil.example","点我")', '\'=HYPERLINK("http://evil.example","点我")'),
    ("+86 138 0000 0000", "'+86 138 0000 0000"),
    ("-2+3", "'-2+3"),
    ("-5.00", "'-5.00"),  # text that looks like a number is still text: guarded
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("张伟", "张伟"),
    ("a=b", "a=b"),  # only the first character counts
    ("'quoted", "'quoted"),
    ("", ""),
    (None, None),
    (7, 7),
    (-500, -500),  # a number written as a number is not a formula
    (Numeric("-12.30"), "-12.30"),  # an amount in a numeric column
    (Numeric("12.30"), "12.30"),
    (Numeric("-1+2"), "'-1+2"),  # not a plain number: guarded like text
])
def test_a_cell_is_written_safe(cell, written) -> None:
    assert safe_cell(cell) == written


@pytest.mark.parametrize("text", ['=HYPERLINK("x")', "+86", "-2+3", "@x", "\tx", "\rx", "张伟", "'quoted", "'", ""])
def test_a_guarded_cell_reads_back_as_it_was(text) -> None:
    assert unguard(safe_cell(text)) == text


def test_a_row_is_guarded_cell_by_cell() -> None:
    assert safe_row([1, "=x", Numeric("-3.00"), "ok"]) == [1, "'=x", "-3.00", "ok"]
