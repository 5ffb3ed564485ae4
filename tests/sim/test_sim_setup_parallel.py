"""The set-up's production batches, region by region in worker processes or in turns in this one: the same world."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_helpers import differing, world_digest

from sbcard.sim import setup
from sbcard.sim.engine import Options, Simulation


def test_worker_processes_and_one_process_make_the_same_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = Options(population=90, days=1, seed=13, faults="light")
    monkeypatch.setattr(setup, "PARALLEL_FROM", 10 ** 9)
    alone = Simulation(tmp_path / "alone", options)
    alone.run()
    monkeypatch.setattr(setup, "PARALLEL_FROM", 0)
    workers = Simulation(tmp_path / "workers", options)
    workers.run()
    assert alone.tally.to_json() == workers.tally.to_json()
    assert alone.state == workers.state
    digest_alone, parts_alone = world_digest(tmp_path / "alone")
    digest_workers, parts_workers = world_digest(tmp_path / "workers")
    assert digest_alone == digest_workers, differing(parts_alone, parts_workers)
    assert all(alone.tally.of("batch_produced", node) for node in ("bj", "tj", "he"))
