"""The social security card number (社会保障卡卡号): 8 body characters and a check character.

The number changes on every reissue. Numbers we issue must pass the check; cards exist
in the field whose numbers fail it, so a number read from a card is kept with a warning
rather than refused (CARD-PROFILE.md, Identifiers). A ``CardNumber`` is therefore always
well formed, and ``check_ok`` says whether its check character is right.
"""

from __future__ import annotations

import re

import attrs

from sbcard.domain.errors import InvalidInput

FIELD = "card_number"
WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # value of a character = its index
_BODY = re.compile(r"[0-9A-Z]{8}")
_SHAPE = re.compile(r"[0-9A-Z]{9}")
_WHITESPACE = re.compile(r"\s+")


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(code=f"card_number.{code}", message=message, field=FIELD)


def compute_check_char(body8: str) -> str:
    """r = 11 - (Σ value×weight mod 11); r = 10 → 'X', r = 11 → '0', else the digit r."""
    if not _BODY.fullmatch(body8):
        raise _invalid("format", f"a card number body is 8 characters 0-9/A-Z, got {body8!r}")
    total = sum(_ALPHABET.index(c) * w for c, w in zip(body8, WEIGHTS))
    r = 11 - total % 11
    return {10: "X", 11: "0"}.get(r, str(r))


def _validate_shape(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str):
        raise _invalid("format", f"expected a string, got {type(value).__name__}")
    if len(value) != 9:
        raise _invalid("length", f"a card number has 9 characters, got {len(value)}")
    if not _SHAPE.fullmatch(value):
        raise _invalid("format", f"a card number is made of 0-9 and A-Z only, got {value!r}")


@attrs.frozen
class CardNumber:
    """A well-formed card number, upper case. ``check_ok`` is False only for numbers read from cards."""

    value: str = attrs.field(validator=_validate_shape)

    @classmethod
    def parse(cls, text: str, strict: bool = True) -> CardNumber:
        """Strict (the default) for numbers we issue or staff type; ``strict=False`` for numbers read from a card."""
        if not isinstance(text, str):
            raise _invalid("format", f"expected a string, got {type(text).__name__}")
        normalised = _WHITESPACE.sub("", text).upper()
        if not normalised:
            raise _invalid("empty", "no card number given")
        number = cls(normalised)
        if strict and not number.check_ok:
            raise _invalid("check_char", number.warning)
        return number

    @classmethod
    def from_body(cls, body8: str) -> CardNumber:
        """A new number: the body with its check character appended."""
        return cls(body8 + compute_check_char(body8))

    def __str__(self) -> str:
        return self.value

    @property
    def body(self) -> str:
        return self.value[:8]

    @property
    def check_char(self) -> str:
        return self.value[8]

    @property
    def expected_check_char(self) -> str:
        return compute_check_char(self.body)

    @property
    def check_ok(self) -> bool:
        return self.check_char == self.expected_check_char

    @property
    def warning(self) -> str | None:
        """Why the number fails its check, or None when it passes."""
        if self.check_ok:
            return None
        return f"check character should be {self.expected_check_char!r}, got {self.check_char!r}"
