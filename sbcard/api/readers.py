"""The card readers a route drives: the world's emulated cards (``emulator:<path>``), never a path outside.

At an outlet the card in the reader is one of the outlet's blanks (issuance, replacement)
or the holder's card (activation, PIN reset); the simulated service keeps each as a
virtual card file under the world's ``cards/`` directory. A caller may name the reader
(``emulator:<path>[?tear=N]``, the CLI's spec) or leave it to the service: the next
blank of the outlet's stock, the card's own file. A spec naming another driver, or a
file outside the world's cards, is refused: the service does not open what a request
names on its own disk.

Of the emulator's options only ``tear`` (a simulator's fault) is taken: ``trace`` would
print every APDU (PINs in BCD, key-loading commands, the holder's data) on the
server's stderr, so it and any other option are refused, and the service never gives
a reader a trace callback. Paths in answers and errors are relative to the world's
home: the service does not show where its files lie on its disk.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl
from collections.abc import Iterator
from contextlib import contextmanager

from sbcard.chip.commands import GetChipInfo
from sbcard.chip.profile import LifeState
from sbcard.chip.reader import CardIOError, Reader, ReaderError
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.store.world import World
from terminals.drivers.spec import open_reader
from terminals.emulator.faults import Faults

OPTIONS = ("tear",)  # the simulator's faults; never ``trace`` (APDUs with PINs and keys on stderr)


def checked_spec(world: World, spec: str, field: str = "reader") -> str:
    """``spec`` if it is an emulator reader on a card file of this world; InvalidInput naming ``field`` otherwise."""
    driver, sep, rest = (spec or "").strip().partition(":")
    if not sep or driver != "emulator":
        raise InvalidInput("reader.unsupported", "the service drives the outlet's emulated cards only "
                           "(emulator:<path of a card file of the world>)", field)
    path, mark, query = rest.partition("?")
    cards = os.path.realpath(world.paths.cards_dir)
    real = os.path.realpath(world.paths.resolve(path) or "")
    if not path or os.path.commonpath([cards, real]) != cards or not os.path.isfile(real):
        raise InvalidInput("reader.unknown_card", f"{shown_path(world, path)!r} is not a card file of this world",
                           field)
    _check_options(query, field)
    return f"emulator:{real}{mark}{query}"


def _check_options(query: str, field: str) -> None:
    """Only ``tear=N`` may follow the path: refuse ``trace`` and anything else, and a bad ``tear``, here."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise InvalidInput("reader.bad_spec", "cannot read the options after `?` (accepted: tear=N)", field) from None
    keys = [key for key, _ in pairs]
    for key in keys:
        if key not in OPTIONS:
            raise InvalidInput("reader.option", f"option {key!r} is not taken by the service (accepted: tear=N)",
                               field)
    if len(set(keys)) != len(keys):
        raise InvalidInput("reader.bad_spec", "an option is given twice", field)
    try:
        Faults.from_query(dict(pairs))
    except (ValueError, TypeError) as e:
        raise InvalidInput("reader.bad_spec", f"bad fault option: {e}", field) from None


def shown_path(world: World, path: str | os.PathLike[str] | None) -> str | None:
    """A file of the world as an answer shows it: relative to the world's home (a path outside as its name only)."""
    if path is None:
        return None
    home = os.path.realpath(world.paths.home)
    real = os.path.realpath(world.paths.resolve(str(path)) or "")
    if os.path.commonpath([home, real]) == home:
        return os.path.relpath(real, home)
    return os.path.basename(str(path))


def chip_is_blank(path: str) -> bool:
    """Whether the card file's chip may still be personalised (blank, or torn mid-way): not one a torn
    issuance left personalised, nor a file that cannot be read."""
    try:
        with reader_for(file_spec(path)) as reader:
            return GetChipInfo().send(reader).life_state is not LifeState.PERSONALISED
    except (SbcardError, ReaderError, CardIOError, OSError, ValueError):
        return False


def file_spec(path: str) -> str:
    return f"emulator:{path}"


@contextmanager
def reader_for(spec: str) -> Iterator[Reader]:
    """The reader of a checked spec, closed when the block ends; never one that traces its APDUs."""
    _check_options(spec.partition("?")[2], "reader")
    reader = open_reader(spec, trace=None)
    try:
        yield reader
    finally:
        reader.close()
