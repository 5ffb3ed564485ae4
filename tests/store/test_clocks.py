"""Time is injected: Beijing wall-clock time in production, chosen time in tests."""

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from sbcard.clock import BEIJING, FixedClock, SimClock, SystemClock


def test_the_system_clock_tells_beijing_time_and_can_be_frozen():
    with freeze_time("2025-01-01 00:00:00"):  # UTC
        now = SystemClock().now()
    assert now == datetime(2025, 1, 1, 8, 0, tzinfo=BEIJING)
    assert now.utcoffset() == timedelta(hours=8)


def test_a_fixed_clock_always_says_the_same():
    at = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)
    clock = FixedClock(at)
    assert clock.now() == clock.now() == at


def test_a_simulated_clock_moves_only_when_advanced():
    clock = SimClock(datetime(2025, 3, 1, 23, 59, tzinfo=BEIJING))
    assert clock.advance(timedelta(minutes=2)) == datetime(2025, 3, 2, 0, 1, tzinfo=BEIJING)
    assert clock.now() == datetime(2025, 3, 2, 0, 1, tzinfo=BEIJING)
    with pytest.raises(ValueError, match="back in time"):
        clock.advance(timedelta(seconds=-1))


def test_clocks_refuse_naive_datetimes():
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2025, 3, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2025, 3, 1))
    FixedClock(datetime(2025, 3, 1, tzinfo=timezone.utc))  # any zone will do
