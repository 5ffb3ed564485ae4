"""Reader specs, as given to ``--reader``, and the list ``sbcard reader list`` shows.

Accepted forms:

- ``emulator:PATH`` — the virtual card stored in PATH, in-process; options after ``?``:
  ``tear=N`` (tear the card at its N-th persistent write since power-on, see
  ``terminals.emulator.faults``) and ``trace=1`` (print every APDU as hex on stderr),
  e.g. ``emulator:world/cards/188347080.card?tear=3&trace=1``;
- ``pcsc:NAME`` — the PC/SC reader of that exact name or unique name prefix (a name
  that matches none or several is bad input, exit 2);
- ``pcsc:`` — the PC/SC reader with a card in it; refused (exit 2, naming them) when
  cards are in several readers, so the wrong card is never written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from sbcard.chip.reader import Reader, ReaderError
from sbcard.domain.errors import InvalidInput
from terminals.drivers import pcsc
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator.card_file import CARD_FILE_SUFFIX
from terminals.emulator.faults import Faults

FORMS = "emulator:PATH[?tear=N&trace=1], pcsc:NAME or pcsc:"
READER_OPTIONS = ("trace",)
FAULT_OPTIONS = ("tear",)  # handed to terminals.emulator.faults.Faults.from_query
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bad(message: str) -> InvalidInput:
    return InvalidInput("reader.bad_spec", message, field="reader")


def _stderr_trace(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _parse_options(spec: str, query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError as e:
        raise _bad(f"cannot read the options of --reader {spec!r}: {e}") from e
    accepted = ", ".join(sorted(READER_OPTIONS + FAULT_OPTIONS))
    for key, value in pairs:
        if key not in READER_OPTIONS and key not in FAULT_OPTIONS:
            raise _bad(f"unknown option {key!r} in --reader {spec!r} (accepted: {accepted})")
        if key in options:
            raise _bad(f"option {key!r} given twice in --reader {spec!r}")
        options[key] = value
    return options


def _emulator_reader(spec: str, rest: str, trace: Callable[[str], None] | None) -> Reader:
    path, _, query = rest.partition("?")
    if not path:
        raise _bad(f"--reader {spec!r} names no card file; expected {FORMS}")
    options = _parse_options(spec, query)
    if "trace" in options:
        value = options.pop("trace").lower()
        if value in _TRUE or value == "":
            trace = trace or _stderr_trace
        elif value in _FALSE:
            trace = None
        else:
            raise _bad(f"option trace={value!r} in --reader {spec!r} must be 1 or 0")
    faults = None
    if options:  # only fault options are left
        try:
            faults = Faults.from_query(options)
        except (ValueError, TypeError) as e:
            raise _bad(f"bad fault option in --reader {spec!r}: {e}") from e
    return EmulatorReader(Path(path), faults, trace)


def open_reader(spec: str, *, trace: Callable[[str], None] | None = None) -> Reader:
    """The reader a ``--reader`` spec names (see the module doc for the forms).

    A malformed spec raises ``InvalidInput("reader.bad_spec", …, field="reader")``;
    opening a PC/SC reader may raise ``InvalidInput`` (no such reader, an ambiguous
    name, ``pcsc:`` with cards in several readers), ``ReaderError`` (service down, no
    reader at all) or ``NoCard`` (``pcsc:`` with no card anywhere).
    """
    driver, sep, rest = spec.partition(":")
    if not sep:
        raise _bad(f"--reader {spec!r} is not a reader spec; expected {FORMS}")
    if driver == "emulator":
        return _emulator_reader(spec, rest, trace)
    if driver == "pcsc":
        return pcsc.PcscReader(rest or None, trace=trace)
    raise _bad(f"--reader {spec!r}: unknown driver {driver!r}; expected {FORMS}")


def _entry(driver: str, spec: str | None, name: str | None, **kw: Any) -> dict[str, Any]:
    entry = {
        "driver": driver,
        "spec": spec,
        "name": name,
        "available": True,
        "card_present": False,
        "atr_hex": None,
        "error": None,
    }
    entry.update(kw)
    return entry


def card_files(cards_dir: Path) -> list[Path]:
    """The virtual card files (``*.card``) anywhere below a world's ``cards/`` directory, sorted.

    Hidden files, and whatever lies in a hidden directory, are left out.
    """
    if not cards_dir.is_dir():
        return []
    return sorted(
        p for p in cards_dir.rglob(f"*{CARD_FILE_SUFFIX}")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(cards_dir).parts)
    )


def list_readers(home_cards_dir: Path | None) -> list[dict[str, Any]]:
    """Every reader a ``--reader`` spec can name, for ``sbcard reader list``.

    Each entry has the same keys: ``driver`` (``pcsc`` | ``emulator``), ``spec`` (what
    to pass to ``--reader``), ``name``, ``available``, ``card_present``, ``atr_hex`` and
    ``error``. If PC/SC cannot be used, one ``pcsc`` entry says why (``available``
    false, ``error`` the one-line reason) — never a traceback. Virtual cards are the
    ``*.card`` files below ``home_cards_dir`` (``card_files``), named by their path relative
    to it and listed without being loaded (``atr_hex`` null).
    """
    entries: list[dict[str, Any]] = []
    try:
        for r in pcsc.list_pcsc_readers():
            entries.append(
                _entry("pcsc", f"pcsc:{r['name']}", r["name"], card_present=r["card_present"], atr_hex=r["atr_hex"])
            )
    except ReaderError as e:
        entries.append(_entry("pcsc", None, None, available=False, error=str(e)))
    except Exception as e:  # noqa: BLE001 - a broken PC/SC install must not break the list
        entries.append(_entry("pcsc", None, None, available=False, error=f"PC/SC unavailable: {e}"))
    if home_cards_dir is not None:
        cards_dir = Path(home_cards_dir)
        for p in card_files(cards_dir):
            entries.append(_entry("emulator", f"emulator:{p}", p.relative_to(cards_dir).as_posix(), card_present=True))
    return entries
