"""Where a simulated day stands, for whoever shows the run's progress (``sbcard simulate`` on a terminal).

The engine hands each event's simulated time to a ``Metronome``; the metronome calls its
listener with a ``Beat`` at most once per ``STEP`` of simulated time (a few times an
hour), so a status line moves with the day without slowing it. A beat only reads: the
run is the same with a listener or without one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import attrs

STEP = dt.timedelta(minutes=15)  # of simulated time between two beats
SHOWN = ("issue", "load", "tap", "medical_claim", "venue_entry")  # the totals a beat carries


@attrs.frozen
class Beat:
    """The run at one moment of a day: the simulated time, the day's plan done so far, a few totals."""

    day_no: int
    days: int
    at: dt.datetime  # simulated, Beijing time
    done: int  # events of the day's plan carried out
    planned: int  # events in the day's plan
    totals: Mapping[str, int]  # kind → all regions' count since the run began (``SHOWN``)


Listener = Callable[[Beat], None]


class Metronome:
    """Calls ``listener`` with a ``Beat`` when the day's simulated time has moved on by ``step``."""

    def __init__(self, listener: Listener, step: dt.timedelta = STEP) -> None:
        self.listener, self.step = listener, step
        self.day_no = self.days = self.planned = 0
        self.next_at: dt.datetime | None = None

    def start_day(self, day_no: int, days: int, planned: int) -> None:
        self.day_no, self.days, self.planned, self.next_at = day_no, days, planned, None

    def due(self, at: dt.datetime) -> bool:
        """Whether a beat is due at ``at`` (cheap: the engine asks at every event)."""
        return self.next_at is None or at >= self.next_at

    def beat(self, at: dt.datetime, done: int, totals: Callable[[str], int]) -> None:
        """Tell the listener where the day stands; the next beat is due one ``step`` after ``at``'s."""
        start = at.replace(minute=0, second=0, microsecond=0)
        steps = (at - start) // self.step
        self.next_at = start + (steps + 1) * self.step
        self.listener(Beat(self.day_no, self.days, at, done, self.planned, {k: totals(k) for k in SHOWN}))
