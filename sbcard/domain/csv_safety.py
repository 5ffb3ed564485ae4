"""Cells safe to open in a spreadsheet (the usual CSV-injection defence), and the guard taken off again.

A spreadsheet program reads a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula
(``=HYPERLINK(…)``, ``@SUM(…)``, ``-2+3``), and a leading tab or carriage return hides one from
the eye. Every CSV sbcard writes passes its text cells through ``safe_cell``, which puts a
single quote in front of such a cell: the spreadsheet shows the text as typed and runs
nothing. An importer takes the guard off with ``unguard``, so a file sbcard wrote re-imports
as the same rows.

Numbers are not formulas: a cell sbcard writes as a number (a sequence, an amount such as
``-12.30`` in a numeric column) is marked ``Numeric`` and written as it is, so a spreadsheet
still adds up the column. A ``Numeric`` that is not a plain decimal number is guarded like text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


class Numeric(str):
    """A cell written as a number (an amount in yuan, a count): never read as a formula."""


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet shows it without running it: text starting with a trigger gets a ``'``."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(value)
    if isinstance(value, Numeric) and _NUMBER.fullmatch(text):
        return text
    return GUARD + text if text.startswith(TRIGGERS) else text


def safe_row(cells: Iterable[Any]) -> list[Any]:
    return [safe_cell(cell) for cell in cells]


def unguard(text: str) -> str:
    """A cell as it was before ``safe_cell`` guarded it (text a person typed is left alone)."""
    if text.startswith(GUARD) and text[1:2] and text[1:].startswith(TRIGGERS):
        return text[1:]
    return text
