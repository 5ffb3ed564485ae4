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
                self.fail(f"{text[:12]}… is out of range: {self._range(int(text[0] != '-'))}", param, ctx)
            number = int(text)
        if not self.min <= number <= self.max:
            self.fail(f"{number} is out of range: {self._range(number > self.max)}", param, ctx)
        return number

    def _range(self, too_large: bool = False) -> str:
        """The allowed range as a person reads it; past the 64-bit limit, that limit (not "at least 1")."""
        if self.max == INT64_MAX:
            if too_large:
                return f"at most {self.max:,} (the largest whole number sbcard stores)"
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


# ----------------------------------------------------------------------------- text

MAX_TEXT = 1000  # characters in one option or argument; a name, code, memo or reason is far shorter
_BIDI_AND_INVISIBLE = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                "\u2066\u2067\u2068\u2069\ufeff")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a value typed on the command line, or None.

    Refused everywhere, before any rule sees it: an empty or blank value (an option given
    must say something), control characters (NUL, newlines, escapes), lone surrogates (bytes
    that were not UTF-8), invisible and bidirectional formatting marks (text that reads
    differently from what it holds), and more than ``MAX_TEXT`` characters.
    """
    if not text.strip():
        return "empty value (give a value, or leave the option out)"
    if len(text) > MAX_TEXT:
        return f"{len(text):,} characters, more than the {MAX_TEXT:,} a value may have"
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0:
            return f"control character U+{code:04X} in the value"
        if 0xD800 <= code < 0xE000:
            return "bytes that are not UTF-8 in the value"
        if ch in _BIDI_AND_INVISIBLE:
            return f"invisible formatting character U+{code:04X} in the value"
    return None


class Checked(click.ParamType):
    """Any of click's types (text, path, choice, date) behind ``text_problem``'s check of what was typed."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name
        self.envvar_list_splitter = inner.envvar_list_splitter

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                self.fail(problem, param, ctx)
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return self.inner.get_metavar(param, ctx)  # type: ignore[arg-type]

    def get_missing_message(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return self.inner.get_missing_message(param, ctx)  # type: ignore[arg-type]

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        return self.inner.shell_complete(ctx, param, incomplete)

    def to_info_dict(self) -> dict[str, Any]:
        return self.inner.to_info_dict()


class ReaderSpec(click.ParamType):
    """A ``--reader`` spec checked for its form when typed (``terminals.drivers.spec``), before any command acts.

    An emulator spec is opened (lazily: no file is read) and closed again, so a spec naming
    no file, an unknown driver or a bad option is refused before the world is touched. A
    PC/SC reader is only looked for when the command uses it.
    """

    name = "spec"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from sbcard.domain.errors import InvalidInput
        from terminals.drivers.spec import open_reader

        text = str(value)
        if not text.startswith("pcsc:"):
            try:
                open_reader(text).close()
            except InvalidInput as e:
                error = click.BadParameter(e.message, ctx, param)
                error.sbcard_code = e.code  # type: ignore[attr-defined]
                raise error from None
        return text


READER_PARAMS = ("reader_spec", "old_reader_spec")  # how the commands name their --reader / --old-reader


def check_all_text(command: click.Command) -> None:
    """Put every text-like parameter of ``command`` and its subcommands behind ``Checked`` (once); a reader
    spec behind ``ReaderSpec`` as well."""
    for param in command.params:
        if isinstance(param.type, (Checked, Whole, Seconds, click.types.BoolParamType)):
            continue
        if param.name in READER_PARAMS and isinstance(param.type, click.types.StringParamType):
            param.type = Checked(ReaderSpec())
            continue
        if isinstance(param.type, (click.types.StringParamType, click.Path, click.Choice, click.DateTime,
                                   click.File)):
            param.type = Checked(param.type)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            check_all_text(sub)
