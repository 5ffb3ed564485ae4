"""ISO 7816-4 command and response APDUs: encoding and strict decoding.

Cases 1–4, short (Lc/Le one byte) and extended (a 00 marker, then two-byte Lc/Le).
``Command.parse`` is what the card uses on the bytes it receives; it raises
``MalformedApdu`` carrying the status word the card must answer (6700 for a length that
does not add up), so no byte string can make the card raise anything else.
"""

from __future__ import annotations

import attrs

from sbcard.chip import sw as status_words


class MalformedApdu(status_words.CardStatus):
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
        if not (0 <= self.cla <= 0xFF and 0 <= self.ins <= 0xFF and 0 <= self.p1 <= 0xFF and 0 <= self.p2 <= 0xFF):
            for name in ("cla", "ins", "p1", "p2"):  # (the loop only to name the field: every command comes here)
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
        le = self.le
        if n <= 255 and (le is None or le <= 256):  # short, not ``extended``
            if n:
                head += bytes((n,)) + self.data
            return head if le is None else head + bytes((_le_byte(le),))
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
    def _parsed(cls, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> "Command":
        """A command ``parse`` decoded: its fields are in range by construction (one byte each,
        Lc and Le from one or two bytes), so the checks of ``__init__`` are not run again.
        The card parses every APDU it receives."""
        cmd = object.__new__(cls)
        set_cla, set_ins, set_p1, set_p2, set_data, set_le = _SETTERS
        set_cla(cmd, cla)
        set_ins(cmd, ins)
        set_p1(cmd, p1)
        set_p2(cmd, p2)
        set_data(cmd, data)
        set_le(cmd, le)
        return cmd

    @classmethod
    def parse(cls, raw: bytes) -> "Command":
        n = len(raw)
        if n < 4:
            raise MalformedApdu(status_words.WRONG_LENGTH, "APDU shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        make = cls._parsed
        if n == 4:  # case 1
            return make(cla, ins, p1, p2)
        if n == 5:  # case 2 short
            return make(cla, ins, p1, p2, le=raw[4] or 256)
        lc = raw[4]
        if lc != 0:  # case 3 or 4 short
            if n == 5 + lc:
                return make(cla, ins, p1, p2, bytes(raw[5:]))
            if n == 6 + lc:
                return make(cla, ins, p1, p2, bytes(raw[5 : 5 + lc]), le=raw[-1] or 256)
            raise MalformedApdu(status_words.WRONG_LENGTH, f"Lc={lc} does not match {n - 5} data bytes")
        # extended: the body starts with 00
        body = raw[4:]
        if len(body) == 3:  # case 2 extended
            le = int.from_bytes(body[1:3], "big")
            return make(cla, ins, p1, p2, le=le or 65536)
        if len(body) < 3:
            raise MalformedApdu(status_words.WRONG_LENGTH, "truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise MalformedApdu(status_words.WRONG_LENGTH, "extended Lc of zero")
        rest = body[3:]
        if len(rest) == lc:
            return make(cla, ins, p1, p2, bytes(rest))
        if len(rest) == lc + 2:
            le = int.from_bytes(rest[-2:], "big")
            return make(cla, ins, p1, p2, bytes(rest[:lc]), le=le or 65536)
        raise MalformedApdu(status_words.WRONG_LENGTH, f"extended Lc={lc} does not match {len(rest)} bytes")


def _setter(cls: type, name: str):  # noqa: ANN202
    """How a frozen attrs class sets its own field: its slot's ``__set__`` (else ``object.__setattr__``)."""
    slot = cls.__dict__.get(name)
    if slot is not None and type(slot).__name__ == "member_descriptor":
        return slot.__set__
    return lambda obj, value: object.__setattr__(obj, name, value)


_SETTERS = tuple(_setter(Command, name) for name in ("cla", "ins", "p1", "p2", "data", "le"))


@attrs.frozen
class Response:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == status_words.OK

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Response":
        if len(raw) < 2:
            raise ValueError(f"response of {len(raw)} bytes has no status word")
        # What ``cls(data, sw)`` makes, without the generated ``__init__`` (no validators or
        # converters to run): every response of every command comes here.
        response = object.__new__(cls)
        _SET_DATA(response, bytes(raw[:-2]))
        _SET_SW(response, raw[-2] << 8 | raw[-1])
        return response

    def check(self) -> bytes:
        """The data, or the typed exception for a failed status word."""
        status_words.raise_for_sw(self.sw)
        return self.data

    def hex(self) -> str:
        return self.to_bytes().hex(" ").upper()


_SET_DATA, _SET_SW = (_setter(Response, name) for name in ("data", "sw"))
