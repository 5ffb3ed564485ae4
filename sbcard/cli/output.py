"""Printing at the edge: JSON with stable keys for scripts, readable tables for people.

Human output reads the same in every command through the helpers below (docs/human-output.md):
``money`` ¥12,345.60 as the simulation report shows it, ``number`` 12,345, ``when`` Beijing
time to the second, ``named_region`` 北京市朝阳区 (110105), and ``warn`` / ``refusal`` / ``alert`` /
``caution`` for what must stand out: coloured on a terminal, plain when piped or when
``NO_COLOR`` is set. JSON never goes through them: its keys and values stay as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import click

from sbcard.clock import BEIJING


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False, default=str))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned table; width counts CJK characters as two columns."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [_width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _width(cell))
    lines = ["  ".join(_pad(h, widths[i]) for i, h in enumerate(headers))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_pad(c, widths[i]) for i, c in enumerate(row)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column "label  value" block for one thing."""
    items = [(k, "—" if v is None else str(v)) for k, v in pairs]
    width = max((_width(k) for k, _ in items), default=0)
    return "\n".join(f"{_pad(k, width)}  {v}" for k, v in items)


def _width(text: str) -> int:
    if "\x1b" in text:  # a coloured cell: its escapes take no room
        text = click.unstyle(text)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


# --------------------------------------------------------------------------- values for people

NONE = "—"


def money(fen: int | None) -> str:
    """Fen for people, as the simulation report shows them: 1234560 → "¥12,345.60", -5 → "-¥0.05"."""
    if fen is None:
        return NONE
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"an amount is an int of fen, got {type(fen).__name__}")
    yuan, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}¥{yuan:,}.{cents:02d}"


def number(n: int | None) -> str:
    """A count with thousands separators: 12345 → "12,345"."""
    return NONE if n is None else f"{n:,}"


def when(value: dt.datetime | dt.date | str | None) -> str:
    """A moment in Beijing time to the second, "2025-03-01 09:30:00": no microseconds, no offset.

    An aware time (or ISO text with an offset) is converted to Beijing time; a naive one is
    Beijing time already (the cards and terminals keep local time). A date alone, or text
    that is not an ISO time, is shown as it is.
    """
    if value is None or value == "":
        return NONE
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 10:  # a date (or nothing parseable as a moment)
            return text
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
    if not isinstance(value, dt.datetime):  # a date
        return value.isoformat()
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(BEIJING)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def named_region(code: str | None) -> str:
    """A region code with its name in front: "北京市朝阳区 (110105)"; an unknown code alone."""
    if code is None or not str(code).strip():
        return NONE
    code = str(code).strip()
    try:
        from sbcard.reference import load_regions

        regions = load_regions()
        if code in regions:
            return f"{regions.full_name(code)} ({code})"
    except Exception:  # noqa: BLE001 - a name is a courtesy: without the table, the code alone
        pass
    return code


# --------------------------------------------------------------------------- what must stand out


def _colour() -> bool | None:
    """None lets click decide (colour on a terminal, none when piped); ``NO_COLOR`` turns it off."""
    return False if os.environ.get("NO_COLOR") else None


def _styled(text: str, **style: Any) -> str:
    return text if os.environ.get("NO_COLOR") else click.style(text, **style)


def alert(text: str) -> str:
    """``text`` marked as wrong or refused (bold red on a terminal), to put in a line or a table cell."""
    return _styled(text, fg="red", bold=True)


def caution(text: str) -> str:
    """``text`` marked as needing attention (yellow on a terminal)."""
    return _styled(text, fg="yellow")


def warn(message: str) -> None:
    """A warning the command gives beside its result: "warning: …" on stderr, yellow on a terminal."""
    click.secho(f"warning: {message}", fg="yellow", err=True, color=_colour())


def refusal(line: str, *, err: bool = False) -> None:
    """A refusal the command reports itself (a tap refused at the gate…): bold red on a terminal."""
    click.secho(line, fg="red", bold=True, err=err, color=_colour())
