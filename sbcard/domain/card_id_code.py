"""The card identification code (卡识别码): 16 bytes that name one chip nationally.

Layout (CARD-PROFILE.md): issuing region code (6 decimal digits, 3 bytes) + the
ministry's RID ``D156000005`` (5 bytes) + 8 card-unique bytes. A medical terminal
identifies a card by card number + this code; the region tells the hub which region's
service issued the card.
"""

from __future__ import annotations

import re

import attrs

from sbcard.domain.errors import InvalidInput

FIELD = "card_id_code"
RID = "D156000005"
_HEX32 = re.compile(r"[0-9A-F]{32}")
_REGION = re.compile(r"[0-9]{6}")
_WHITESPACE = re.compile(r"\s+")


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(code=f"card_id_code.{code}", message=message, field=FIELD)


def _validate(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str):
        raise _invalid("format", f"expected a string, got {type(value).__name__}")
    if len(value) != 32:
        raise _invalid("length", f"a card identification code has 32 hex digits, got {len(value)}")
    if not _HEX32.fullmatch(value):
        raise _invalid("format", "a card identification code is made of hex digits 0-9/A-F only")
    if not _REGION.fullmatch(value[:6]):
        raise _invalid("region", f"the first 6 characters must be a region code, got {value[:6]!r}")
    if value[6:16] != RID:
        raise _invalid("rid", f"characters 7-16 must be the RID {RID}, got {value[6:16]}")


@attrs.frozen
class CardIdCode:
    """A well-formed card identification code, upper-case hex."""

    value: str = attrs.field(validator=_validate)

    @classmethod
    def parse(cls, text: str) -> CardIdCode:
        """Case-insensitive; whitespace (hex dumps are often grouped) is ignored."""
        if not isinstance(text, str):
            raise _invalid("format", f"expected a string, got {type(text).__name__}")
        normalised = _WHITESPACE.sub("", text).upper()
        if not normalised:
            raise _invalid("empty", "no card identification code given")
        return cls(normalised)

    @classmethod
    def from_bytes(cls, data: bytes) -> CardIdCode:
        """As read from SSSE/EF05 record 01."""
        if len(data) != 16:
            raise _invalid("length", f"a card identification code is 16 bytes, got {len(data)}")
        return cls(bytes(data).hex().upper())

    @classmethod
    def make(cls, region_code: str, unique8: bytes) -> CardIdCode:
        """A new code for a card issued in ``region_code`` with 8 card-unique bytes."""
        if not isinstance(region_code, str) or not _REGION.fullmatch(region_code):
            raise _invalid("region", f"a region code is 6 digits, got {region_code!r}")
        if len(unique8) != 8:
            raise _invalid("unique", f"the card-unique part is 8 bytes, got {len(unique8)}")
        return cls(region_code + RID + bytes(unique8).hex().upper())

    def __str__(self) -> str:
        return self.value

    @property
    def region_code(self) -> str:
        return self.value[:6]

    @property
    def unique(self) -> str:
        """The card-unique part as 16 upper-case hex digits."""
        return self.value[16:]

    @property
    def unique_bytes(self) -> bytes:
        return bytes.fromhex(self.unique)

    def to_bytes(self) -> bytes:
        return bytes.fromhex(self.value)
