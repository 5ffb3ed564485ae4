"""The injected clock: every timestamp the service records comes from one of these.

Services never call `datetime.now()` themselves (DESIGN.md, Conventions), so a test or
the simulator decides what time it is. Service time is Beijing time: fares, birthdays and
business days follow the local calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo


def _beijing_time() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except Exception:  # no tzdata on this machine: China has had no DST since 1991
        return timezone(timedelta(hours=8), "CST")


BEIJING: tzinfo = _beijing_time()


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"a clock needs a timezone-aware datetime, got {dt!r}")
    return dt


class SystemClock:
    """Wall-clock Beijing time (freezegun can freeze it: it reads `datetime.now`)."""

    def now(self) -> datetime:
        return datetime.now(BEIJING)


class FixedClock:
    """Always the same instant: for tests that compare timestamps exactly."""

    def __init__(self, dt: datetime) -> None:
        self._dt = _require_aware(dt)

    def now(self) -> datetime:
        return self._dt


class SimClock:
    """The simulator's time: it moves only when the scenario advances it."""

    def __init__(self, start: datetime) -> None:
        self._dt = _require_aware(start)

    def now(self) -> datetime:
        return self._dt

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` and return the new time; time never runs backwards."""
        if delta < timedelta(0):
            raise ValueError(f"a simulated clock cannot go back in time ({delta})")
        self._dt = self._dt + delta
        return self._dt
