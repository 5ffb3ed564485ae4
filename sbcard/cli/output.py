"""Printing at the edge: JSON with stable keys for scripts, readable tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click


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
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
