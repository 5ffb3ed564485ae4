"""The card's financial account number (金融账户): 16–19 digits ending in a Luhn check digit.

Subsidies are paid to this account, so a mistyped number must be refused on entry rather
than come back from the bank a day later as a failed payment.
"""

from __future__ import annotations

import re

import attrs

from sbcard.domain.errors import InvalidInput
from sbcard.domain.masking import mask_middle

FIELD = "bank_account"
MIN_LENGTH = 16
MAX_LENGTH = 19
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: full-width digits are refused
_WHITESPACE = re.compile(r"\s+")


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(code=f"bank_account.{code}", message=message, field=FIELD)


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body`` + digit pass the Luhn (mod 10) check."""
    if not _DIGITS.fullmatch(body):
        raise _invalid("format", f"a Luhn body is made of digits 0-9 only, got {body!r}")
    total = 0
    # Double every second digit counting from the right of the body (the check digit goes after it).
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _validate(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str):
        raise _invalid("format", f"expected a string, got {type(value).__name__}")
    if not _DIGITS.fullmatch(value):
        raise _invalid("format", "an account number is made of digits 0-9 only")
    if not MIN_LENGTH <= len(value) <= MAX_LENGTH:
        raise _invalid(
            "length", f"an account number has {MIN_LENGTH} to {MAX_LENGTH} digits, got {len(value)}"
        )
    expected = luhn_check_digit(value[:-1])
    if value[-1] != expected:
        raise _invalid("check_digit", f"Luhn check digit should be {expected!r}, got {value[-1]!r}")


@attrs.frozen
class BankAccount:
    """An account number that passed the length and Luhn checks."""

    value: str = attrs.field(validator=_validate)

    @classmethod
    def parse(cls, text: str) -> BankAccount:
        """Spaces anywhere are ignored: account numbers are usually written in groups of 4."""
        if not isinstance(text, str):
            raise _invalid("format", f"expected a string, got {type(text).__name__}")
        normalised = _WHITESPACE.sub("", text)
        if not normalised:
            raise _invalid("empty", "no account number given")
        return cls(normalised)

    @classmethod
    def make(cls, prefix_bin: str, body: str) -> BankAccount:
        """A new number: the bank's BIN, the account body, then the Luhn check digit."""
        if not _DIGITS.fullmatch(prefix_bin):
            raise _invalid("format", f"a BIN is made of digits 0-9 only, got {prefix_bin!r}")
        return cls(prefix_bin + body + luhn_check_digit(prefix_bin + body))

    def __str__(self) -> str:
        return self.value

    def masked(self) -> str:
        """First 6 (the BIN) and last 4 digits, a star for each hidden digit."""
        return mask_middle(self.value, 6, 4)
