"""The in-process reader: a virtual card file in an imaginary reader.

The card is in the reader while its file exists. It is powered on (loaded from its file)
at first use, so a card already there when the reader is opened counts as inserted.
A card that tears (fault injection) leaves the reader: the command raises
``CardIOError`` and every later call ``NoCard`` until the reader is opened again (or
closed and used again) — that is, until the card is tapped again, which reloads it from
its file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sbcard.chip.reader import CardIOError, NoCard, NotACard, ReaderError
from terminals.emulator.card import CardTorn, VirtualCard


class EmulatedCard(Protocol):
    """What the reader needs of a card (``terminals.emulator.card.VirtualCard``)."""

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def process(self, apdu: bytes) -> bytes: ...


def _default_loader(path: Path, faults: Any) -> EmulatedCard:
    return VirtualCard.load(path, faults)


_PATH = type(Path())


_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # what ``Path.exists`` takes for "no file"


def _exists(path: str) -> bool:
    """``Path.exists`` on a path already made a string: the reader asks before every command."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno not in _ABSENT and getattr(e, "winerror", None) not in (21, 123, 1921):
            raise
        return False
    except ValueError:
        return False
    return True


def _hex(b: bytes) -> str:
    return b.hex(" ").upper()


class EmulatorReader:
    """Implements ``sbcard.chip.reader.Reader`` for a card file, in this process.

    ``trace(line)``, if given, receives ``> 00 A4 …`` for each command and ``< 90 00``
    for each response. ``loader(path, faults)`` defaults to ``VirtualCard.load``.
    """

    def __init__(
        self,
        path: Path | str,
        faults: Any = None,
        trace: Callable[[str], None] | None = None,
        *,
        loader: Callable[[Path, Any], EmulatedCard] | None = None,
    ) -> None:
        self.path = path if type(path) is _PATH else Path(path)  # a tap's reader: no new Path of a Path
        self._file = os.fspath(self.path)
        self.name = f"emulator:{self._file}"
        self.faults = faults
        self._trace = trace
        self._load = loader or _default_loader
        self._torn_types: tuple[type[BaseException], ...] = (CardTorn,)
        self._card: EmulatedCard | None = None
        self._atr: bytes | None = None
        self._torn = False

    def __repr__(self) -> str:
        return f"EmulatorReader({str(self.path)!r})"

    def _powered(self) -> EmulatedCard:
        if self._torn:
            raise NoCard(f"the card {self.path} was torn out of the reader; tap it again")
        if not _exists(self._file):
            self._card = self._atr = None
            raise NoCard(f"no card in {self.name} (no file {self.path})")
        if self._card is None:
            try:
                card = self._load(self.path, self.faults)
            except FileNotFoundError as e:
                raise NoCard(f"no card in {self.name} (no file {self.path})") from e
            except ValueError as e:
                raise NotACard(f"{self.path} is not a virtual card file: {e}") from e
            self._atr = card.power_on()
            self._card = card
        return self._card

    @property
    def atr(self) -> bytes:
        self._powered()
        assert self._atr is not None
        return self._atr

    def card_present(self) -> bool:
        return not self._torn and _exists(self._file)

    def transmit_raw(self, apdu: bytes) -> bytes:
        card = self._powered()
        if self._trace:
            self._trace("> " + _hex(apdu))
        try:
            response = card.process(bytes(apdu))
        except self._torn_types as e:
            self._card = self._atr = None
            self._torn = True
            if self._trace:
                self._trace("< (card torn: no response)")
            raise CardIOError(f"card torn during the command ({e}); it is out of the reader") from e
        if self._trace:
            self._trace("< " + _hex(response))
        return response

    def close(self) -> None:
        """Power the card off; using the reader again counts as a new tap."""
        card, self._card, self._atr = self._card, None, None
        self._torn = False
        if card is not None:
            card.power_off()

    def __enter__(self) -> "EmulatorReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
