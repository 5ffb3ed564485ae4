"""The collector in the simulator's day-long processes: no full passes during the days, the
process's own thresholds back after the run."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from sbcard.sim import heap
from sbcard.sim.engine import Options, Simulation


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_during_the_days_only_the_young_generations_are_collected(thresholds) -> None:
    with heap.for_the_days():
        assert gc.get_threshold() == (700, 10, heap.NEVER)
        full = gc.get_stats()[2]["collections"]
        junk = [[i] for i in range(300_000)]  # survivors enough for several full passes by default
        del junk
        assert gc.get_stats()[2]["collections"] == full
    assert gc.get_threshold() == (700, 10, 10)


def test_a_run_leaves_the_thresholds_as_it_found_them(thresholds, tmp_path: Path, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(Simulation, "_checkpoint", lambda self, day_no: seen.append(gc.get_threshold()))
    Simulation(tmp_path / "world", Options(population=60, days=2, seed=3, faults="none")).run()
    assert seen == [(700, 10, heap.NEVER)] * 2
    assert gc.get_threshold() == (700, 10, 10)
