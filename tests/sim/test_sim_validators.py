"""The day's taps done in a process of their own (a big world's way) make the same world as taps done
at once in the engine's process: the same summary, the same databases, card files and terminal logs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sim_helpers import differing, world_digest

from sbcard.sim import report
from sbcard.sim.engine import Options, Simulation
from sbcard.clock import BEIJING
from sbcard.sim.validators import TapRequest, WorkerLane, engine_taps

POPULATION, DAYS, SEED = 400, 2, 11


def _run(home: Path, faults: str, *, tap_worker: bool) -> dict:
    sim = Simulation(home, Options(population=POPULATION, days=DAYS, seed=SEED, faults=faults),
                     tap_worker=tap_worker)
    sim.run()
    return report.summary(SEED, POPULATION, DAYS, sim.tally, sim.settlements, sim.invariants, None, 0.0)


@pytest.mark.parametrize("faults", ["none", "heavy"])
def test_taps_in_a_worker_process_make_the_same_world_as_taps_in_the_engine(tmp_path: Path, faults: str) -> None:
    here = _run(tmp_path / "here", faults, tap_worker=False)
    there = _run(tmp_path / "there", faults, tap_worker=True)
    assert here == there
    digest_here, parts_here = world_digest(tmp_path / "here")
    digest_there, parts_there = world_digest(tmp_path / "there")
    assert digest_here == digest_there, differing(parts_here, parts_there)
    # a world that rode: taps on several validators, in both regions' logs
    assert sum(here["counts"]["tap"].values()) > 100
    assert sum(1 for p in parts_here if p.startswith("terminals/")) > 10
    if faults == "heavy":
        assert here["faults"].get("torn_purchase")
    # both kinds of validator took taps in the evening rush: the worker's metro gates, the engine's buses
    evening = {kind: _evening_records(tmp_path / "there", kind) for kind in ("he-sjz-bus", "bj-subway")}
    assert evening["he-sjz-bus"] and evening["bj-subway"], evening


def _evening_records(home: Path, kind: str) -> int:
    """Records on the validators of the ``kind`` network from 16:00 Beijing time, any day."""
    import sqlite3

    n = 0
    for db in (home / "terminals").glob(f"{kind}-*/terminal.db"):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            n += conn.execute("SELECT count(*) FROM records WHERE substr(date_time, 9, 2) >= '16'").fetchone()[0]
        finally:
            conn.close()
    return n


def test_a_worker_that_fails_is_reported_not_waited_for(tmp_path: Path) -> None:
    lane = WorkerLane(tmp_path, SEED, 1, dt.datetime(2025, 3, 3, 8, tzinfo=dt.timezone.utc))
    try:
        lane.submit(TapRequest(1, str(tmp_path / "no.card"), "no-such-terminal", None, None,
                               dt.datetime(2025, 3, 3, 8, 0, 1, tzinfo=dt.timezone.utc), False))
        with pytest.raises(RuntimeError, match="validators' process failed"):
            lane.outcome(1)
    finally:
        lane.abort()


@pytest.mark.parametrize(("network", "at", "engine"), [
    ("he-sjz-bus", dt.time(15, 59, 59), False),  # the afternoon: every validator is the worker's
    ("he-sjz-bus", dt.time(16, 0), True),  # the evening: the buses are the engine's own
    ("he-lf-bus", dt.time(23, 30), True),
    ("bj-bus", dt.time(18, 0), True),
    ("tj-bus", dt.time(17, 30), True),
    ("bj-bus", dt.time(8, 0), False),
    ("bj-subway", dt.time(18, 0), False),  # the metro gates stay with the worker (who is inside is known there)
    ("tj-metro", dt.time(18, 0), False),
    ("tj-metro", dt.time(8, 0), False),
])
def test_the_evening_buses_are_tapped_by_the_engine_itself(network: str, at: dt.time, engine: bool) -> None:
    assert engine_taps(network, dt.datetime.combine(dt.date(2025, 3, 3), at, BEIJING)) is engine
