"""``sbcard simulate`` shows where the day stands: the engine beats a few times per simulated
hour (``sbcard.sim.progress``), a terminal shows a status line, a pipe gets nothing, and the run
is the same with or without anyone listening."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from sbcard.cli.sim_progress import CLEAR, SimProgress, status
from sbcard.clock import BEIJING
from sbcard.sim.engine import Options, Simulation
from sbcard.sim.progress import STEP, Beat, Metronome

DAY = dt.date(2025, 3, 3)


def at(h: int, m: int, s: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(h, m, s), BEIJING)


def beat(h: int = 8, m: int = 15, done: int = 1234, planned: int = 56789) -> Beat:
    return Beat(1, 3, at(h, m), done, planned, {"issue": 0, "load": 1200, "tap": 43210, "medical_claim": 7,
                                                "venue_entry": 0})


def test_the_metronome_beats_once_per_step_of_simulated_time():
    beats: list[Beat] = []
    metronome = Metronome(beats.append)
    metronome.start_day(1, 2, planned=600)
    for minute in range(0, 120, 1):  # an event a minute from 07:00 to 08:59
        when = at(7, 0) + dt.timedelta(minutes=minute)
        if metronome.due(when):
            metronome.beat(when, minute, lambda _kind: 0)
    assert [b.at for b in beats] == [at(7, 0) + i * STEP for i in range(8)]
    assert [b.done for b in beats] == [0, 15, 30, 45, 60, 75, 90, 105]


def test_a_new_day_beats_at_its_first_event_and_a_quiet_hour_does_not_beat():
    beats: list[Beat] = []
    metronome = Metronome(beats.append)
    for day_no in (1, 2):
        metronome.start_day(day_no, 2, planned=3)
        for when in (at(7, 2), at(7, 9, 59), at(13, 40)):
            if metronome.due(when):
                metronome.beat(when, 0, lambda _kind: 0)
    assert [(b.day_no, b.at.time()) for b in beats] == [(1, dt.time(7, 2)), (1, dt.time(13, 40)),
                                                        (2, dt.time(7, 2)), (2, dt.time(13, 40))]


def test_the_status_line_reads_like_the_rest_of_the_output():
    assert status(beat()) == ("day 1/3 2025-03-03 08:15:00 · 1,234/56,789 events · 1,200 loads · 43,210 taps · "
                              "7 claims")


def test_on_a_terminal_one_line_follows_the_day_and_phases_get_lines_of_their_own():
    out = io.StringIO()
    shown = SimProgress(out, tty=True)
    shown.line("day 1/3 (2025-03-03)")
    shown.beat(beat(8, 0))
    shown.beat(beat(8, 15))
    shown.line("day 1/3: night: uploads, clearing and settlement, invariants")
    shown.beat(beat(23, 0))
    shown.close()
    text = out.getvalue()
    assert text.startswith("day 1/3 (2025-03-03)\n" + CLEAR + "day 1/3 2025-03-03 08:00:00")
    assert CLEAR + "day 1/3: night" in text  # the status line is erased before a phase's line
    assert text.endswith(CLEAR)  # and before the summary
    assert text.count("\n") == 2


def test_piped_nothing_is_written():
    out = io.StringIO()
    shown = SimProgress(out, tty=False)
    shown.line("day 1/3 (2025-03-03)")
    shown.beat(beat())
    shown.close()
    assert out.getvalue() == ""


def test_the_run_is_the_same_with_a_listener_and_beats_a_few_times_an_hour(tmp_path: Path):
    options = Options(population=30, days=1, seed=4)
    beats: list[Beat] = []
    lines: list[str] = []
    heard = Simulation(tmp_path / "heard", options, progress=lines.append, beat=beats.append)
    heard.run()
    quiet = Simulation(tmp_path / "quiet", options)
    quiet.run()
    assert heard.tally.to_json() == quiet.tally.to_json() and heard.settlements == quiet.settlements
    assert beats and all(b.day_no == 1 and b.days == 1 and 0 <= b.done < b.planned for b in beats)
    per_hour: dict[int, int] = {}
    for b in beats:
        per_hour[b.at.hour] = per_hour.get(b.at.hour, 0) + 1
    assert max(per_hour.values()) <= 4
    assert [b.at for b in beats] == sorted(b.at for b in beats)
    assert any("night" in line for line in lines)
