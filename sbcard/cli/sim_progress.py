"""``sbcard simulate``'s progress on a terminal: a status line that follows the simulated day.

The phases (the set-up, each day, its night) are lines of their own; between them one
line is rewritten in place at each beat of the engine (``sbcard.sim.progress``, a few
times per simulated hour): the day, the simulated time and what has been done. When
stderr is not a terminal nothing is written, so logs and pipes get the summary alone.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from sbcard.cli.output import number, when
from sbcard.sim.progress import Beat

CLEAR = "\r\x1b[K"  # back to the line's start and erase it
WORDS = {"issue": "issued", "load": "loads", "tap": "taps", "medical_claim": "claims", "venue_entry": "visits"}


def status(beat: Beat) -> str:
    """The status line of a beat: "day 1/3 2025-03-03 08:15:00 · 1,234/56,789 events · 4,321 taps · …"."""
    parts = [f"day {beat.day_no}/{beat.days} {when(beat.at)}",
             f"{number(beat.done)}/{number(beat.planned)} events"]
    parts += [f"{number(n)} {WORDS.get(kind, kind)}" for kind, n in beat.totals.items() if n]
    return " · ".join(parts)


class SimProgress:
    """The ``progress`` (phase lines) and ``beat`` (status line) listeners of a ``Simulation``."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.on = self.stream.isatty() if tty is None else tty
        self._status = False  # a status line is showing (to be erased before the next line)

    def line(self, text: str) -> None:
        if not self.on:
            return
        self.stream.write(f"{CLEAR if self._status else ''}{text}\n")
        self.stream.flush()
        self._status = False

    def beat(self, beat: Beat) -> None:
        if not self.on:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would not be rewritten in place
        self.stream.write(CLEAR + status(beat)[:width])
        self.stream.flush()
        self._status = True

    def close(self) -> None:
        """Erase the status line, so the summary (or an error) starts on a clean line."""
        if self.on and self._status:
            self.stream.write(CLEAR)
            self.stream.flush()
            self._status = False
