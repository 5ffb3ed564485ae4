"""Parameter types for numbers typed on the command line: strict, and bounded so nothing overflows.

click's ``int`` takes whatever Python's ``int()`` takes — ``"１２"`` (full-width), ``"1_000"``,
``" 7 "`` — and no bound, so ``99999999999999999999`` reaches SQLite and overflows its
64-bit INTEGER (an ``OverflowError``, a traceback). Every integer option and argument of
sbcard uses ``Whole`` instead: ASCII digits with an optional leading ``-``, within
``[min, max]``, and never beyond a signed 64-bit integer; the refusal names the range.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_WHOLE = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _why_not_digits(text: str) -> str:
    if not text.strip():
        return "no number given"
    if any(c.isdigit() and c not in "0123456789" for c in text):
        return f"{text!r} is not a number: only the ASCII digits 0-9 are accepted"
    return f"{text!r} is not a whole number"


class Whole(click.ParamType):
    """A whole number in ``[min, max]`` (each defaulting to the 64-bit limits)."""

    name = "integer"

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min = INT64_MIN if min is None else min
        self.max = INT64_MAX if max is None else max
        if not INT64_MIN <= self.min <= self.max <= INT64_MAX:
            raise ValueError(f"bounds {min}..{max} are not within a 64-bit integer")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value)
            if not _WHOLE.fullmatch(text):
                self.fail(_why_not_digits(text), param, ctx)
            if len(text.lstrip("-")) > 25:  # no need to build a huge int to know it is out of range
                self.fail(f"{text[:12]}… is out of range: {self._range()}", param, ctx)
            number = int(text)
        if not self.min <= number <= self.max:
            self.fail(f"{number} is out of range: {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        if self.max == INT64_MAX:
            return f"at least {self.min}" if self.min != INT64_MIN else "a 64-bit integer"
        if self.min == INT64_MIN:
            return f"at most {self.max}"
        return f"{self.min} to {self.max}"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return None

    def __repr__(self) -> str:
        return f"Whole({self.min}, {self.max})"


class Seconds(click.ParamType):
    """A duration in seconds: ASCII digits with an optional decimal part, at most ``max``; no nan, inf or sign."""

    name = "seconds"

    def __init__(self, max: float) -> None:
        self.max = max

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            text = str(value)
            if not _DECIMAL.fullmatch(text) or len(text) > 20:
                self.fail(f"{text!r} is not a number of seconds (write e.g. 30 or 2.5)", param, ctx)
            number = float(text)
        if not math.isfinite(number) or not 0 <= number <= self.max:
            self.fail(f"{value} is out of range: 0 to {self.max:g} seconds", param, ctx)
        return number
