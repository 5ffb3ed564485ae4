"""The rule for a PIN a holder chooses: six digits nobody guesses first.

Three wrong tries block the PIN, so an attacker holding a lost card gets three guesses;
the refused PINs are the ones tried first: one digit six times (111111), a run up or
down (123456, 654321, 012345, 890123 — runs wrap round after 9), and the holder's own
birthday as YYMMDD or MMDDYY, which is printed on documents kept with the card.
"""

from __future__ import annotations

import datetime as dt

from sbcard.domain.errors import InvalidInput

FIELD = "--pin"
PIN_DIGITS = 6
RULE = (
    "a PIN is 6 digits, not one digit repeated (111111), not a run up or down (123456, 654321) "
    "and not the holder's birth date (YYMMDD or MMDDYY)"
)


def _is_run(pin: str, step: int) -> bool:
    digits = [int(c) for c in pin]
    return all((b - a) % 10 == step % 10 for a, b in zip(digits, digits[1:]))


def birth_date_pins(birth_date: dt.date) -> frozenset[str]:
    """The birthday spelt as the PINs people choose from it."""
    return frozenset({birth_date.strftime("%y%m%d"), birth_date.strftime("%m%d%y")})


def check_new_pin(pin: str, *, birth_date: dt.date | None = None, field: str = FIELD) -> str:
    """``pin`` if a holder may choose it; otherwise InvalidInput ``pin.format`` / ``pin.trivial``.

    The message names the rule, never the PIN.
    """
    if not isinstance(pin, str) or len(pin) != PIN_DIGITS or not (pin.isascii() and pin.isdigit()):
        raise InvalidInput("pin.format", f"a PIN is exactly {PIN_DIGITS} digits 0-9", field)
    if len(set(pin)) == 1:
        raise InvalidInput("pin.trivial", f"one digit repeated is too easy to guess; {RULE}", field)
    if _is_run(pin, 1) or _is_run(pin, -1):
        raise InvalidInput("pin.trivial", f"a run of digits is too easy to guess; {RULE}", field)
    if birth_date is not None and pin in birth_date_pins(birth_date):
        raise InvalidInput("pin.trivial", f"the holder's birth date is too easy to guess; {RULE}", field)
    return pin
