"""Status words and their typed exceptions.

Inside the card OS a failed check raises ``CardStatus(sw)``; only the card's boundary
turns it into two bytes. On the terminal side ``raise_for_sw`` maps a response's SW to
the same typed exceptions, so application code catches ``InsufficientBalance`` rather
than comparing ``0x9401``.
"""

from __future__ import annotations

OK = 0x9000
WRONG_LENGTH = 0x6700
SECURITY_NOT_SATISFIED = 0x6982
AUTH_BLOCKED = 0x6983
CONDITIONS_NOT_SATISFIED = 0x6985
WRONG_DATA = 0x6A80
FUNCTION_NOT_SUPPORTED = 0x6A81
FILE_NOT_FOUND = 0x6A82
RECORD_NOT_FOUND = 0x6A83
NOT_ENOUGH_MEMORY = 0x6A84
WRONG_P1P2 = 0x6A86
REFERENCED_DATA_NOT_FOUND = 0x6A88  # ISO 7816-4: referenced data (a key, a PIN, a DGI, a data object) not found
KEY_NOT_FOUND = REFERENCED_DATA_NOT_FOUND  # the same SW where what is missing is a key
WRONG_P1P2_6B = 0x6B00
INS_NOT_SUPPORTED = 0x6D00
CLA_NOT_SUPPORTED = 0x6E00
NO_PRECISE_DIAGNOSIS = 0x6F00
MAC_ERROR = 0x9302
APPLICATION_LOCKED = 0x9303
INSUFFICIENT_BALANCE = 0x9401
KEY_INDEX_NOT_SUPPORTED = 0x9403
MAC_NOT_AVAILABLE = 0x9406

_MEANINGS = {
    OK: "ok",
    WRONG_LENGTH: "wrong length",
    SECURITY_NOT_SATISFIED: "security status not satisfied",
    AUTH_BLOCKED: "authentication method blocked",
    CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    WRONG_DATA: "incorrect data field",
    FUNCTION_NOT_SUPPORTED: "function not supported",
    FILE_NOT_FOUND: "file or application not found",
    RECORD_NOT_FOUND: "record not found",
    NOT_ENOUGH_MEMORY: "not enough memory",
    WRONG_P1P2: "incorrect P1/P2",
    REFERENCED_DATA_NOT_FOUND: "referenced data not found (key, PIN or data object)",
    WRONG_P1P2_6B: "wrong parameters P1/P2",
    INS_NOT_SUPPORTED: "instruction not supported",
    CLA_NOT_SUPPORTED: "class not supported",
    NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
    MAC_ERROR: "MAC error",
    APPLICATION_LOCKED: "application locked",
    INSUFFICIENT_BALANCE: "insufficient balance",
    KEY_INDEX_NOT_SUPPORTED: "key index not supported",
    MAC_NOT_AVAILABLE: "required MAC not available",
}


def describe(sw: int) -> str:
    """Human words for a status word, e.g. ``63C2`` → 'wrong PIN, 2 tries left'."""
    if sw & 0xFFF0 == 0x63C0:
        return f"wrong PIN, {sw & 0x0F} tries left"
    if sw & 0xFF00 == 0x6100:
        return f"{sw & 0xFF} more bytes available"
    if sw & 0xFF00 == 0x6C00:
        return f"wrong Le, exact length {sw & 0xFF}"
    return _MEANINGS.get(sw, "unknown status")


class CardStatus(Exception):
    """A status word other than 9000, raised inside the card or from a response."""

    sw_match: int | None = None

    def __init__(self, sw: int, message: str | None = None) -> None:
        self.sw = sw
        super().__init__(message or f"{sw:04X} {describe(sw)}")


class SecurityNotSatisfied(CardStatus):
    sw_match = SECURITY_NOT_SATISFIED


class AuthenticationBlocked(CardStatus):
    sw_match = AUTH_BLOCKED


class ConditionsNotSatisfied(CardStatus):
    sw_match = CONDITIONS_NOT_SATISFIED


class FileNotFound(CardStatus):
    sw_match = FILE_NOT_FOUND


class RecordNotFound(CardStatus):
    sw_match = RECORD_NOT_FOUND


class MacError(CardStatus):
    sw_match = MAC_ERROR


class ApplicationLocked(CardStatus):
    sw_match = APPLICATION_LOCKED


class InsufficientBalance(CardStatus):
    sw_match = INSUFFICIENT_BALANCE


class MacNotAvailable(CardStatus):
    sw_match = MAC_NOT_AVAILABLE


class ReferencedDataNotFound(CardStatus):
    """6A88: the key, PIN, DGI or data object the command names is not on the card (or PSAM)."""

    sw_match = REFERENCED_DATA_NOT_FOUND


class WrongLength(CardStatus):
    sw_match = WRONG_LENGTH


class WrongPin(CardStatus):
    """63Cx: the PIN was wrong; ``tries_left`` more attempts before it blocks."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        super().__init__(sw, message)
        self.tries_left = sw & 0x0F


_BY_SW = {cls.sw_match: cls for cls in CardStatus.__subclasses__() if cls.sw_match is not None}


def status_error(sw: int) -> CardStatus:
    """The typed exception for a failed status word."""
    if sw & 0xFFF0 == 0x63C0:
        return WrongPin(sw)
    return _BY_SW.get(sw, CardStatus)(sw)


def raise_for_sw(sw: int) -> None:
    if sw != OK:
        raise status_error(sw)
