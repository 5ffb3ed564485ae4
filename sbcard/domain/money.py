"""Money is an ``int`` of fen (分, 0.01 yuan) everywhere; yuan text exists only at the edges.

Parsing is strict on purpose: an amount typed by staff or read from a subsidy file is
either exactly ``digits[.d[d]]`` or refused with the reason, never guessed at ("1,000"
could be one thousand or one; "12.345" would lose a fraction of a fen). No float is
involved anywhere, so no amount is ever rounded.
"""

from __future__ import annotations

import re

from sbcard.domain.errors import InvalidInput

FEN_PER_YUAN = 100
MAX_FEN = 2**63 - 1  # what SQLite's INTEGER holds
YUAN_SIGNS = ("¥", "￥")  # U+00A5 and the full-width U+FFE5 that Chinese input methods type

_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]{1,2}))?")  # [0-9], not \d: ASCII digits only
_EXPONENT = re.compile(r"[0-9]*\.?[0-9]*[eE][+-]?[0-9]*")
_LOOSE_DECIMAL = re.compile(r"[0-9]*\.[0-9]*")


def _invalid(field: str, code: str, text: str, why: str) -> InvalidInput:
    return InvalidInput(code=f"amount.{code}", message=f"{text!r} is not an amount in yuan: {why}", field=field)


def _diagnose(text: str, shown: str, field: str, allow_negative: bool) -> InvalidInput:
    """The most specific reason why ``text`` (``shown`` less its sign and ¥) is not ``digits[.d[d]]``."""
    lowered = text.lower()
    if lowered.startswith(("nan", "inf")):
        return _invalid(field, "not_a_number", shown, "write a number like 12.30")
    if lowered.startswith("0x"):
        return _invalid(field, "format", shown, "hexadecimal is not accepted; write yuan like 12.30")
    if any(c.isdigit() and c not in "0123456789" for c in text):
        return _invalid(field, "format", shown, "only the ASCII digits 0-9 are accepted (no full-width digits)")
    if any(c in ",，_" for c in text):
        return _invalid(field, "format", shown, "no thousands separators; write 1000 rather than 1,000")
    if any(c.isspace() for c in text):
        return _invalid(field, "format", shown, "no spaces inside an amount")
    if text.startswith("+"):
        return _invalid(field, "format", shown, "no '+' sign; write the amount alone")
    if text.startswith("-"):
        if not allow_negative:
            return _invalid(field, "negative", shown, "must not be negative")
        return _invalid(field, "format", shown, "one '-' only, at the start, before any '¥'")
    if _EXPONENT.fullmatch(text) and any(c in "0123456789" for c in text):
        return _invalid(field, "format", shown, "exponent notation is not accepted; write the digits out")
    if text.count(".") > 1:
        return _invalid(field, "format", shown, "more than one decimal point")
    if text != "." and _LOOSE_DECIMAL.fullmatch(text):
        whole, _, frac = text.partition(".")
        if not whole:
            return _invalid(field, "format", shown, f"a digit is needed before the decimal point; write 0.{frac}")
        if not frac:
            return _invalid(field, "format", shown, f"digits are needed after the decimal point; write {whole}")
        return _invalid(field, "decimals", shown, "more than 2 decimal places (the fen is the smallest unit)")
    return _invalid(field, "format", shown, "write digits with at most 2 decimals, like 12.30")


def parse_yuan(text: str, field: str = "amount", allow_negative: bool = False) -> int:
    """Yuan text → fen: "12.30" → 1230, "12.3" → 1230, "12" → 1200, "¥0.01" → 1.

    Surrounding whitespace is ignored. A leading '-' (before any '¥') is accepted only
    with ``allow_negative`` (corrections, net positions).
    """
    if not isinstance(text, str):
        raise InvalidInput(
            code="amount.format", message=f"expected text, got {type(text).__name__}", field=field
        )
    body = text.strip()
    if not body:
        raise InvalidInput(code="amount.empty", message="no amount given", field=field)
    negative = body.startswith("-")
    if negative:
        if not allow_negative:
            raise _invalid(field, "negative", text.strip(), "must not be negative")
        body = body[1:]
    if body.startswith(YUAN_SIGNS):
        body = body[1:]
    if not body:
        raise _invalid(field, "empty", text.strip(), "no digits")
    match = _AMOUNT.fullmatch(body)
    if match is None:
        raise _diagnose(body, text.strip(), field, allow_negative)
    whole, frac = match.group(1), match.group(2) or ""
    if len(whole.lstrip("0")) > len(str(MAX_FEN // FEN_PER_YUAN)):  # before int(): no huge conversions
        raise _invalid(field, "too_large", text.strip(), "too large")
    fen = int(whole) * FEN_PER_YUAN + int(frac.ljust(2, "0"))
    if fen > MAX_FEN:
        raise _invalid(field, "too_large", text.strip(), "too large")
    return -fen if negative else fen


def _check_fen(fen: int) -> None:
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"an amount is an int of fen, got {type(fen).__name__}")


def fen_to_yuan_str(fen: int) -> str:
    """1230 → "12.30", -5 → "-0.05": the form ``parse_yuan`` reads back."""
    _check_fen(fen)
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{cents:02d}"


def format_fen(fen: int) -> str:
    """For people: 1230 → "¥12.30", -5 → "-¥0.05"."""
    _check_fen(fen)
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{fen_to_yuan_str(abs(fen))}"
