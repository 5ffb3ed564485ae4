"""The Reader port: what every terminal application talks to.

Drivers (``terminals/drivers``) implement it for the in-process emulator and for PC/SC.
They raise three distinct kinds of error, so an application can tell "the reader is
gone" from "the card was pulled out" from "the card said no" (the last is a
``sbcard.chip.sw.CardStatus`` raised by ``Response.check``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from sbcard.chip.apdu import Command, Response


class ReaderError(Exception):
    """The reader itself failed: not connected, no such reader, service down."""


class NoCard(ReaderError):
    """The reader has no card in it."""


class NotACard(ReaderError):
    """What is in the reader is no card: a virtual card file that is not one (bad input, not a failing reader)."""


class CardIOError(Exception):
    """Talking to the card failed mid-exchange: the card was removed or torn."""


@runtime_checkable
class Reader(Protocol):
    name: str

    @property
    def atr(self) -> bytes:
        """The answer to reset of the card now in the reader (NoCard if none)."""
        ...

    def card_present(self) -> bool: ...

    def transmit_raw(self, apdu: bytes) -> bytes:
        """Send one command APDU and return the response APDU, data and SW together."""
        ...

    def close(self) -> None: ...


def transmit(reader: Reader, command: Command) -> Response:
    """Send a command and parse its response, following 61xx / 6Cxx as T=0 requires."""
    raw = reader.transmit_raw(command.to_bytes())
    resp = Response.from_bytes(raw)
    data = b""
    while resp.sw & 0xFF00 == 0x6100:  # more data: GET RESPONSE
        data += resp.data
        raw = reader.transmit_raw(Command(0x00, 0xC0, 0, 0, le=(resp.sw & 0xFF) or 256).to_bytes())
        resp = Response.from_bytes(raw)
    if resp.sw & 0xFF00 == 0x6C00:  # wrong Le: resend with the exact length
        raw = reader.transmit_raw(attrs.evolve(command, le=(resp.sw & 0xFF) or 256).to_bytes())
        resp = Response.from_bytes(raw)
    return Response(data + resp.data, resp.sw) if data else resp


class CountingReader:
    """A Reader passing everything through and counting the APDUs: the cost of a flow."""

    def __init__(self, reader: Reader) -> None:
        self._reader, self.name, self.count = reader, reader.name, 0

    @property
    def atr(self) -> bytes:
        return self._reader.atr

    def card_present(self) -> bool:
        return self._reader.card_present()

    def transmit_raw(self, apdu: bytes) -> bytes:
        self.count += 1
        return self._reader.transmit_raw(apdu)

    def close(self) -> None:
        self._reader.close()
