"""The card readers a route drives: the world's emulated cards (``emulator:<path>``), never a path outside.

At an outlet the card in the reader is one of the outlet's blanks (issuance, replacement)
or the holder's card (activation, PIN reset); the simulated service keeps each as a
virtual card file under the world's ``cards/`` directory. A caller may name the reader
(``emulator:<path>[?tear=N]``, the CLI's spec) or leave it to the service: the next
blank of the outlet's stock, the card's own file. A spec naming another driver, or a
file outside the world's cards, is refused: the service does not open what a request
names on its own disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sbcard.chip.reader import Reader
from sbcard.domain.errors import InvalidInput
from sbcard.store.world import World
from terminals.drivers.spec import open_reader


def checked_spec(world: World, spec: str, field: str = "reader") -> str:
    """``spec`` if it is an emulator reader on a card file of this world; InvalidInput naming ``field`` otherwise."""
    driver, sep, rest = (spec or "").strip().partition(":")
    if not sep or driver != "emulator":
        raise InvalidInput("reader.unsupported", f"{spec!r}: the service drives the outlet's emulated cards only "
                           "(emulator:<path of a card file of the world>)", field)
    path, mark, query = rest.partition("?")
    cards = os.path.realpath(world.paths.cards_dir)
    real = os.path.realpath(world.paths.resolve(path) or "")
    if not path or os.path.commonpath([cards, real]) != cards or not os.path.isfile(real):
        raise InvalidInput("reader.unknown_card", f"{path!r} is not a card file of this world", field)
    return f"emulator:{real}{mark}{query}"


def file_spec(path: str) -> str:
    return f"emulator:{path}"


@contextmanager
def reader_for(spec: str) -> Iterator[Reader]:
    """The reader of a checked spec, closed when the block ends."""
    reader = open_reader(spec)
    try:
        yield reader
    finally:
        reader.close()
