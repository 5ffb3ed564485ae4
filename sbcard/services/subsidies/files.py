"""Reading subsidy batch files: CSV (UTF-8 with or without BOM, GBK) and .xlsx, streamed.

A batch file is a header naming its columns (``seq,citizen_id,name,card_number,item,
period,amount,remark``, in any order; ``card_number`` and ``remark`` may be left out),
one row per payment, and its control totals: the number of rows and their total in
yuan, declared by a trailer row

    #TOTAL,<count>,<total yuan>[,<region>]

as the file's last row, or by the importer (``--count``/``--total``), or both (then
they must agree). ``<region>``, when given, is the district the file is meant for.

A ``BatchReader`` reads the file once, streaming: ``rows()`` yields each row as soon as
its shape, sequence number and amount are checked, so the rows can be checked against
the registry in the same pass; ``finish()`` then checks what only the whole file can
tell — the trailer, unique sequence numbers, and the declared count and total against
the rows to the fen. Any problem rejects the whole file (``FileRejected``, naming the
line and the column); the importer stores nothing until ``finish()`` has passed.
``scan`` does both for a file on its own.

The encoding of a CSV file is detected, not asked for: a UTF-8 BOM means UTF-8; else
the first line that is not plain ASCII decides — valid UTF-8 means UTF-8, else GBK
(decoded as GB18030, its superset, as government systems export it). A later line
that does not decode in the file's encoding rejects the file, naming the line. An
.xlsx workbook is read from its first worksheet in openpyxl's read-only mode (rows are
streamed, never the whole sheet in memory), values as Excel last saved them.
"""

from __future__ import annotations

import csv
import hashlib
import re
from array import array
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

import attrs

from sbcard.domain.csv_safety import unguard
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.domain.limits import MAX_AMOUNT_FEN
from sbcard.domain.money import format_fen, parse_yuan
from sbcard.domain.regions import validate_region_code
from sbcard.domain.subsidies import (
    COLUMNS,
    IGNORED,
    REQUIRED,
    TRAILER_FIELDS,
    TRAILER_TAG,
    ControlTotals,
    FileRejected,
    SubsidyRow,
    parse_seq,
    totals_differences,
)
from sbcard.reference import load_regions

Progress = Callable[[str, int, int], None]  # (phase, done, total): "checking" bytes or rows of the file, then "storing"

CSV, XLSX = "csv", "xlsx"
UTF8, UTF8_BOM, GBK = "UTF-8", "UTF-8 with BOM", "GBK"
_CODECS = {UTF8: "utf-8", UTF8_BOM: "utf-8", GBK: "gb18030"}
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (Excel 97-2003)
_BOM = b"\xef\xbb\xbf"
_PROGRESS_BYTES = 1 << 20
_PROGRESS_ROWS = 10_000
_KNOWN = frozenset(COLUMNS) | frozenset(IGNORED)
_NONE: frozenset[str] = frozenset()
_FAST_AMOUNT = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,2}))?")  # what nearly every row holds; the rest: parse_yuan


def _seq(text: str) -> int:
    if text.isdigit() and text.isascii() and len(text) < 13:
        value = int(text)
        if value >= 1:
            return value
    return parse_seq(text)


def _amount(text: str) -> int:
    match = _FAST_AMOUNT.fullmatch(text)
    if match is None:
        fen = parse_yuan(text, "amount", allow_negative=True)
    else:
        whole, fraction = match.groups()
        fen = int(whole) * 100 + (int(fraction.ljust(2, "0")) if fraction else 0)
    if abs(fen) > MAX_AMOUNT_FEN:  # no account could take it; rows and totals stay far from SQLite's limit
        raise InvalidInput("amount.too_large", f"{text.strip()!r} is beyond any amount a row may hold "
                           f"({format_fen(MAX_AMOUNT_FEN)}, a financial account's maximum)", "amount")
    return fen


@attrs.frozen
class BatchFile:
    """A file that passed every check that needs no database, with its control totals."""

    path: Path
    kind: str  # csv | xlsx
    encoding: str | None  # UTF-8 (plain ASCII too) | UTF-8 with BOM | GBK; None for xlsx
    sha256: str
    size: int
    columns: tuple[str, ...]  # as the header names them, in its order
    rows: int
    total_fen: int
    declared: ControlTotals
    declared_by: str  # trailer | options | trailer and options
    trailer_line: int | None
    region: str | None  # the region the trailer names, if it does

    @property
    def name(self) -> str:
        return self.path.name


def scan(
    path: Path,
    *,
    count: int | None = None,
    total_fen: int | None = None,
    region: str | None = None,
    progress: Progress | None = None,
) -> BatchFile:
    """Read and check the whole file; a ``BatchFile`` or ``FileRejected`` naming the line and column.

    ``count``/``total_fen`` are the totals the importer declares (both or neither);
    ``region`` is the district the batch is for: a trailer naming another one rejects
    the file.
    """
    path = Path(path)
    check_declared(count, total_fen)
    reader = BatchReader(path)
    for _ in reader.rows(progress):
        pass
    return reader.finish(count=count, total_fen=total_fen, region=region)


def check_declared(count: int | None, total_fen: int | None) -> None:
    """The importer's declared totals: both or neither, and a count that can be one."""
    if (count is None) != (total_fen is None):
        missing = "--total" if total_fen is None else "--count"
        raise InvalidInput("subsidy_file.totals", "give --count and --total together, or neither (the file's "
                           f"{TRAILER_TAG} trailer declares them)", missing)
    if count is not None and count < 0:
        raise InvalidInput("subsidy_file.totals", f"{count} is not a number of rows", "--count")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with _open(path) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- one reading of a file


@attrs.frozen
class _Trailer:
    line: int
    totals: ControlTotals
    region: str | None
    columns: tuple[str, ...]  # how the trailer's count and total columns are named in messages


class BatchReader:
    """One pass over a batch file: ``rows()`` streams the checked rows, then ``finish()`` judges the whole file."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        self.path = path
        self.file = path.name
        self.kind = _kind(path)
        self.source: _CsvSource | _XlsxSource = _CsvSource(path) if self.kind == CSV else _XlsxSource(path)
        self.header_line: int | None = None
        self.columns: tuple[str, ...] = ()
        self.trailer: _Trailer | None = None
        self.count = 0
        self.total = 0
        self.sha256 = ""
        self._positions: tuple[int | None, ...] = ()
        self._seqs = array("q")
        self._lines = array("q")
        self._ascending = True

    def rows(self, progress: Progress | None = None) -> Iterator[SubsidyRow]:
        """The file's rows, each checked for shape, sequence number and amount; FileRejected at the first problem."""
        index: dict[str, int] = {}
        last_line = 0
        for line, cells, numeric in self.source.records(progress):
            last_line = line
            if not any(cells):
                continue  # blank lines (and Excel's empty rows) are not rows
            if self.header_line is None:
                index = self._header(line, cells)
                continue
            first = cells[0].upper() if cells else ""
            if self.trailer is not None:
                raise FileRejected("after_trailer", f"a row after the {TRAILER_TAG} trailer of line "
                                   f"{self.trailer.line}: the trailer ends the file", file=self.file, line=line)
            if first.startswith("#"):
                if first != TRAILER_TAG:
                    raise FileRejected("control_row", f"unknown control row {cells[0]!r}: the only one is "
                                       f"{TRAILER_TAG},<count>,<total yuan>[,<region>]", file=self.file, line=line,
                                       column=self._name(0, None))
                self.trailer = self._trailer(line, cells)
                continue
            row = self._row(line, cells, numeric, index)
            self.count += 1
            self.total += row.amount_fen
            yield row
        self.sha256 = self.source.sha256
        if self.header_line is None:
            raise FileRejected("empty", f"the file is empty: it needs the header {','.join(COLUMNS)}, the rows and "
                               f"the {TRAILER_TAG} trailer", file=self.file, line=max(last_line, 1))
        if self.count == 0:
            raise FileRejected("no_rows", "no rows after the header", file=self.file, line=self.header_line + 1)

    # -- the header

    def _header(self, line: int, cells: list[str]) -> dict[str, int]:
        names = [c.strip().lstrip("\ufeff").lower() for c in cells]
        while names and not names[-1]:
            names.pop()
        if not any(n in _KNOWN for n in names):  # do not echo what may be a person's data
            raise FileRejected("header", f"the first line must be the header naming the columns: "
                               f"{','.join(COLUMNS)}", file=self.file, line=line)
        for position, name in enumerate(names):
            if not name:
                raise FileRejected("header", "a column without a name in the header", file=self.file, line=line,
                                   column=self._name(position, None))
            if name not in _KNOWN:
                raise FileRejected("header", f"unknown column {cells[position].strip()!r}; the columns are "
                                   f"{', '.join(COLUMNS)}", file=self.file, line=line,
                                   column=self._name(position, cells[position].strip()))
            if names.index(name) != position:
                raise FileRejected("header", f"column {name} appears twice in the header (also column "
                                   f"{self._name(names.index(name), name)})", file=self.file, line=line,
                                   column=self._name(position, name))
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise FileRejected("header", f"the header lacks the column(s) {', '.join(missing)}; the columns are "
                               f"{', '.join(COLUMNS)}", file=self.file, line=line)
        self.header_line = line
        self.columns = tuple(names)
        index = {name: position for position, name in enumerate(names)}
        self._positions = tuple(index.get(column) for column in COLUMNS)
        return index

    def column(self, name: str) -> str:
        """How the header's column ``name`` is named in messages: ``2 (citizen_id)``, or ``B (citizen_id)``."""
        return self._name(self.columns.index(name), name) if name in self.columns else name

    def _name(self, position: int, name: str | None) -> str:
        """How a column is named in messages: its number (CSV) or letter (xlsx), and its header name."""
        name = name if name is not None else (self.columns[position] if position < len(self.columns) else None)
        where = _letter(position) if self.kind == XLSX else str(position + 1)
        return f"{where} ({name})" if name else where

    # -- a row

    def _row(self, line: int, cells: list[str], numeric: frozenset[int], index: dict[str, int]) -> SubsidyRow:
        width = len(self.columns)
        if len(cells) < width:
            if self.kind == CSV:
                raise FileRejected("shape", f"{len(cells)} fields, the header has {width}", file=self.file,
                                   line=line)
            cells = cells + [""] * (width - len(cells))
        for position in range(width, len(cells)):
            if cells[position]:
                raise FileRejected("shape", f"a value beyond the header's {width} columns", file=self.file,
                                   line=line, column=self._name(position, None))

        seq_at, cid_at, name_at, card_at, item_at, period_at, amount_at, remark_at = self._positions
        try:
            seq = _seq(cells[seq_at])  # type: ignore[index]
        except InvalidInput as e:
            raise FileRejected("seq", e.message, file=self.file, line=line,
                               column=self._name(index["seq"], "seq")) from None
        amount_text = cells[amount_at]  # type: ignore[index]
        try:
            amount = _amount(amount_text)
        except InvalidInput as e:
            hint = " (a formula Excel has not calculated and saved?)" if self.kind == XLSX and not amount_text \
                else ""
            raise FileRejected("amount", e.message + hint, file=self.file, line=line,
                               column=self._name(index["amount"], "amount")) from None
        if self._seqs and seq <= self._seqs[-1]:
            self._ascending = False
        self._seqs.append(seq)
        self._lines.append(line)
        return SubsidyRow(
            line, seq, cells[cid_at], cells[name_at],  # type: ignore[index]
            cells[card_at] if card_at is not None else "", cells[item_at], cells[period_at],  # type: ignore[index]
            amount, cells[remark_at] if remark_at is not None else "",
            frozenset(self.columns[p] for p in numeric if p < width) if numeric else _NONE,
        )

    # -- the trailer

    def _trailer(self, line: int, cells: list[str]) -> _Trailer:
        values = cells[1:] + [""] * max(0, 4 - len(cells))
        columns = tuple(_letter(p) if self.kind == XLSX else str(p + 1) for p in range(len(TRAILER_FIELDS)))

        def column(p: int) -> str:
            return f"{columns[p]} ({TRAILER_FIELDS[p]})"

        for position in range(4, len(cells)):
            if cells[position]:
                raise FileRejected("trailer", f"the trailer is {TRAILER_TAG},<count>,<total yuan>[,<region>]; "
                                   "nothing after the region", file=self.file, line=line,
                                   column=_letter(position) if self.kind == XLSX else str(position + 1))
        count_text, total_text, region_text = values[0], values[1], values[2]
        if not (count_text.isascii() and count_text.isdigit()):
            raise FileRejected("trailer", f"{count_text!r} is not a number of rows (the trailer is "
                               f"{TRAILER_TAG},<count>,<total yuan>[,<region>])", file=self.file, line=line,
                               column=column(1))
        try:
            total = parse_yuan(total_text, "total", allow_negative=True)
        except InvalidInput as e:
            raise FileRejected("trailer", e.message, file=self.file, line=line, column=column(2)) from None
        region = None
        if region_text:
            try:
                region = validate_region_code(region_text)
            except InvalidInput as e:
                raise FileRejected("trailer", e.message, file=self.file, line=line, column=column(3)) from None
        return _Trailer(line, ControlTotals(int(count_text), total), region, (column(1), column(2), column(3)))

    # -- the verdict on the whole file

    def finish(self, *, count: int | None = None, total_fen: int | None = None,
               region: str | None = None) -> BatchFile:
        """The file whole, once every row was read: its control totals (the trailer's, and ``count``/``total_fen``
        when the importer declares them) against the rows to the fen, unique sequence numbers, and the region
        the trailer names against ``region``."""
        check_declared(count, total_fen)
        if self.header_line is None or self.sha256 == "":
            raise SbcardError("subsidy_file.unread", "finish() before every row was read")
        given = ControlTotals(count, total_fen) if count is not None and total_fen is not None else None
        actual = ControlTotals(self.count, self.total)
        trailer = self.trailer
        self._check_seqs()
        if trailer is None and given is None:
            raise FileRejected("no_totals", f"no control totals: end the file with a trailer row {TRAILER_TAG},"
                               f"<count>,<total yuan> (this file: {TRAILER_TAG},{actual.count},"
                               f"<the department's total>) or give --count and --total", file=self.file)
        if trailer is not None and given is not None:
            disagreements = _given_vs_trailer(given, trailer.totals)
            if disagreements:
                what, words = disagreements[0]
                raise FileRejected("totals", f"the trailer {words}", file=self.file, line=trailer.line,
                                   column=trailer.columns[0] if what == "count" else trailer.columns[1])
        declared = trailer.totals if trailer is not None else given
        assert declared is not None
        for what, words in totals_differences(declared, actual):
            if trailer is not None:
                raise FileRejected("totals", f"the trailer {words}: the whole file is rejected", file=self.file,
                                   line=trailer.line, column=trailer.columns[0] if what == "count" else
                                   trailer.columns[1])
            raise FileRejected("totals", f"{'--count' if what == 'count' else '--total'} {words}: the whole file "
                               "is rejected", file=self.file)
        if trailer is not None and trailer.region is not None and region is not None and trailer.region != region:
            raise FileRejected("other_region", f"the file is for region {_region_name(trailer.region)}, not "
                               f"{_region_name(region)}: import it in its own region", file=self.file,
                               line=trailer.line, column=trailer.columns[2])
        by = "trailer and options" if trailer is not None and given is not None else (
            "trailer" if trailer is not None else "options")
        return BatchFile(
            path=self.path, kind=self.kind, encoding=(self.source.encoding or UTF8) if self.kind == CSV else None,
            sha256=self.sha256, size=self.source.size, columns=self.columns, rows=self.count, total_fen=self.total,
            declared=declared, declared_by=by, trailer_line=trailer.line if trailer else None,
            region=trailer.region if trailer else None,
        )

    def check_seqs(self) -> None:
        """The rows read so far have unique sequence numbers (``FileRejected`` naming the first repeat otherwise)."""
        self._check_seqs()

    def _check_seqs(self) -> None:
        """Sequence numbers are unique: the first repeated one is named with both lines."""
        if self._ascending:
            return
        seqs, lines = self._seqs, self._lines
        order = sorted(range(len(seqs)), key=seqs.__getitem__)
        repeats = [(max(lines[a], lines[b]), min(lines[a], lines[b]), seqs[a])
                   for a, b in zip(order, order[1:]) if seqs[a] == seqs[b]]
        if repeats:
            line, earlier, seq = min(repeats)
            raise FileRejected("seq", f"sequence number {seq} is also on line {earlier}", file=self.file, line=line,
                               column=self._name(self.columns.index("seq"), "seq"))


def _given_vs_trailer(given: ControlTotals, trailer: ControlTotals) -> list[tuple[str, str]]:
    found = []
    if given.count != trailer.count:
        found.append(("count", f"declares {trailer.count:,} rows, --count says {given.count:,}"))
    if given.total_fen != trailer.total_fen:
        found.append(("total", f"declares {format_fen(trailer.total_fen)}, --total says {format_fen(given.total_fen)}"))
    return found


def _region_name(code: str) -> str:
    regions = load_regions()
    return f"{code} {regions.get(code).name}" if regions.is_known(code) else code


def _letter(position: int) -> str:
    """Spreadsheet column letters: 0 → A, 25 → Z, 26 → AA."""
    letters = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


# ----------------------------------------------------------------------------- the two formats


def _open(path: Path) -> IO[bytes]:
    try:
        return Path(path).open("rb")
    except FileNotFoundError:
        raise NotFound("subsidy_file.missing", f"no such file: {path}", "FILE") from None
    except IsADirectoryError:
        raise InvalidInput("subsidy_file.missing", f"{path} is a directory, not a file", "FILE") from None


def _kind(path: Path) -> str:
    with _open(path) as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        return XLSX
    if head.startswith(_OLE_MAGIC):
        raise FileRejected("format", "an .xls (Excel 97-2003) workbook: save it as .xlsx or as CSV", file=path.name)
    return CSV


class _CsvSource:
    """The file's CSV records with their first line's number, decoded in the detected encoding."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.encoding: str | None = None  # not decided yet (ASCII so far)
        self.sha256 = ""
        self.size = path.stat().st_size

    def records(self, progress: Progress | None) -> Iterator[tuple[int, list[str], frozenset[int]]]:
        digest = hashlib.sha256()
        read = reported = consumed = 0  # consumed: lines handed to csv (a quoted field may span lines)

        def lines(f: IO[bytes]) -> Iterator[str]:
            nonlocal read, reported, consumed
            for number, raw in enumerate(f, start=1):
                digest.update(raw)
                read += len(raw)
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                    self.encoding = self.encoding or UTF8_BOM
                consumed = number
                yield self._decode(raw, number)
                if progress is not None and read - reported >= _PROGRESS_BYTES:
                    reported = read
                    progress("checking", read, self.size)

        with _open(self.path) as f:
            reader = csv.reader(lines(f))
            empty: frozenset[int] = frozenset()
            while True:
                start = consumed + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    raise FileRejected("csv", f"not readable as CSV ({e}): an unbalanced quote?",
                                       file=self.path.name, line=start) from None
                yield start, [unguard(field.strip()).strip() for field in fields], empty
        self.sha256 = digest.hexdigest()
        if progress is not None:
            progress("checking", read, self.size)

    def _decode(self, raw: bytes, number: int) -> str:
        if self.encoding is not None:
            try:
                return raw.decode(_CODECS[self.encoding])
            except UnicodeDecodeError:
                earlier = " although the lines before it are" if self.encoding != GBK else ""
                raise FileRejected("encoding", f"the line is not valid {self.encoding.split()[0]}{earlier}: the "
                                   "file is damaged or mixes encodings; save it again as UTF-8",
                                   file=self.path.name, line=number) from None
        if raw.isascii():
            return raw.decode("ascii")
        for encoding in (UTF8, GBK):
            try:
                text = raw.decode(_CODECS[encoding])
            except UnicodeDecodeError:
                continue
            self.encoding = encoding
            return text
        raise FileRejected("encoding", "the line is neither UTF-8 nor GBK: save the file as UTF-8",
                           file=self.path.name, line=number)


class _XlsxSource:
    """The first worksheet's rows, each cell as text; which cells held numbers or dates."""

    encoding = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256 = ""
        self.size = path.stat().st_size

    def records(self, progress: Progress | None) -> Iterator[tuple[int, list[str], frozenset[int]]]:
        import openpyxl  # only when a workbook comes: it takes a while to import
        from openpyxl.utils.exceptions import InvalidFileException

        self.sha256 = sha256_of(self.path)
        with _open(self.path) as f:
            try:
                book = openpyxl.load_workbook(f, read_only=True, data_only=True)
            except (InvalidFileException, KeyError, ValueError, OSError) as e:
                raise FileRejected("format", f"not a readable .xlsx workbook ({e})", file=self.path.name) from None
            except Exception as e:  # zipfile.BadZipFile and the XML parser's errors
                raise FileRejected("format", f"not a readable .xlsx workbook ({type(e).__name__}: {e})",
                                   file=self.path.name) from None
            try:
                try:
                    sheet = book.worksheets[0]
                    total = sheet.max_row or 0
                    rows = sheet.iter_rows(values_only=True)
                except Exception as e:  # no worksheet, or one openpyxl cannot read: the file, not us
                    raise FileRejected("format", f"not a readable .xlsx workbook ({type(e).__name__})",
                                       file=self.path.name) from None
                number = 0
                while True:
                    try:
                        values = next(rows, None)
                    except Exception as e:  # a worksheet cut short or malformed halfway
                        raise FileRejected("format", f"not a readable .xlsx workbook ({type(e).__name__})",
                                           file=self.path.name, line=number + 1) from None
                    if values is None:
                        break
                    number += 1
                    try:
                        cells, numeric = _cells(values)
                    except FileRejected as e:
                        raise FileRejected("cell", e.message, file=self.path.name, line=number) from None
                    yield number, cells, numeric
                    if progress is not None and number % _PROGRESS_ROWS == 0:
                        progress("checking", number, max(total, number))
                if progress is not None:
                    progress("checking", max(total, 1), max(total, 1))
            finally:
                book.close()
        if sha256_of(self.path) != self.sha256:
            raise FileRejected("changed", "the file changed while it was being read: import it again",
                               file=self.path.name)


def _cells(values: tuple[Any, ...]) -> tuple[list[str], frozenset[int]]:
    cells: list[str] = []
    numeric: list[int] = []
    for position, value in enumerate(values):
        if value is None:
            cells.append("")
            continue
        if isinstance(value, str):
            cells.append(unguard(value.strip()).strip())
            continue
        numeric.append(position)
        cells.append(_number_text(value))
    return cells, frozenset(numeric)


def _number_text(value: Any) -> str:
    """A number or date cell as text: integers without '.0', others as Python writes them back exactly."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    raise FileRejected("cell", f"a cell holds a {type(value).__name__}, not a number, date or text")
