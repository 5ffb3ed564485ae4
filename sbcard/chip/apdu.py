"""ISO 7816-4 command and response APDUs: encoding and strict decoding.

Cases 1–4, short (Lc/Le one byte) and extended (a 00 marker, then two-byte Lc/Le).
``Command.parse`` is what the card uses on the bytes it receives; it raises
``MalformedApdu`` carrying the status word the card must answer (6700 for a length that
does not add up), so no byte string can make the card raise anything else.
"""

from __future__ import annotations

import attrs

from sbcard.chip import sw as SW


class MalformedApdu(SW.CardStatus):
    """The bytes are not a well-formed command APDU."""


def _le_byte(v: int) -> int:
    return 0 if v == 256 else v


@attrs.frozen
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None  # None: no Le; 256 (short) / 65536 (extended) mean "all"

    def __attrs_post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} must be one byte")
        if len(self.data) > 65535:
            raise ValueError("data longer than 65535 bytes")
        if self.le is not None and not 1 <= self.le <= 65536:
            raise ValueError("le must be 1..65536")

    @property
    def extended(self) -> bool:
        return len(self.data) > 255 or (self.le is not None and self.le > 256)

    def to_bytes(self) -> bytes:
        head = bytes((self.cla, self.ins, self.p1, self.p2))
        n = len(self.data)
        if not self.extended:
            body = b""
            if n:
                body += bytes((n,)) + self.data
            if self.le is not None:
                body += bytes((_le_byte(self.le),))
            return head + body
        body = b"\x00"
        if n:
            body += n.to_bytes(2, "big") + self.data
        if self.le is not None:
            le = 0 if self.le == 65536 else self.le
            body += le.to_bytes(2, "big")
        return head + body

    def hex(self) -> str:
        return self.to_bytes().hex(" ").upper()

    @classmethod
    def parse(cls, raw: bytes) -> "Command":
        if len(raw) < 4:
            raise MalformedApdu(SW.WRONG_LENGTH, "APDU shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:  # case 1
            return cls(cla, ins, p1, p2)
        if len(body) == 1:  # case 2 short
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:  # case 3 or 4 short
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1:]))
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1 : 1 + lc]), le=body[-1] or 256)
            raise MalformedApdu(SW.WRONG_LENGTH, f"Lc={lc} does not match {len(body) - 1} data bytes")
        # extended: body[0] == 0
        if len(body) == 3:  # case 2 extended
            le = int.from_bytes(body[1:3], "big")
            return cls(cla, ins, p1, p2, le=le or 65536)
        if len(body) < 3:
            raise MalformedApdu(SW.WRONG_LENGTH, "truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise MalformedApdu(SW.WRONG_LENGTH, "extended Lc of zero")
        rest = body[3:]
        if len(rest) == lc:
            return cls(cla, ins, p1, p2, bytes(rest))
        if len(rest) == lc + 2:
            le = int.from_bytes(rest[-2:], "big")
            return cls(cla, ins, p1, p2, bytes(rest[:lc]), le=le or 65536)
        raise MalformedApdu(SW.WRONG_LENGTH, f"extended Lc={lc} does not match {len(rest)} bytes")


@attrs.frozen
class Response:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Response":
        if len(raw) < 2:
            raise ValueError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def check(self) -> bytes:
        """The data, or the typed exception for a failed status word."""
        SW.raise_for_sw(self.sw)
        return self.data

    def hex(self) -> str:
        return self.to_bytes().hex(" ").upper()
