"""Each fault profile over a short run: faults are injected and every invariant still holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbcard.sim.engine import Options, Simulation
from sbcard.sim import invariants


@pytest.mark.parametrize(("profile", "expected"), [
    ("none", set()),
    ("light", {"terminal_crash"}),
    ("heavy", {"torn_purchase", "torn_load", "terminal_crash", "upload_twice", "message_lost", "region_down"}),
])
def test_fault_profile_keeps_the_invariants(tmp_path: Path, profile: str, expected: set[str]) -> None:
    sim = Simulation(tmp_path / "world", Options(population=120, days=2, seed=5, faults=profile))
    sim.run()
    faults = sim.tally.faults
    assert expected <= set(faults), faults
    if profile == "none":
        assert faults == {}
    assert set(sim.invariants) == set(invariants.NAMES)
    assert all(r.ok for r in sim.invariants.values()), invariants.failures(sim.invariants)
    counts = sim.tally.to_json()["counts"]
    assert counts["tap"] and counts["clearing"] and counts["upload"]
    assert len(sim.settlements) == 2


def test_heavy_faults_recover_what_they_break(tmp_path: Path) -> None:
    """Torn loads are settled at the counter; torn taps are tapped again; offline claims wait for their region."""
    sim = Simulation(tmp_path / "world", Options(population=150, days=2, seed=3, faults="heavy"))
    sim.run()
    counts = sim.tally.to_json()["counts"]
    assert sim.tally.faults["torn_load"] == sum(counts.get("load_recovered", {}).values()) + sum(
        counts.get("load_unrecovered", {}).values())
    assert not counts.get("load_unrecovered")
    assert all(r.ok for r in sim.invariants.values()), invariants.failures(sim.invariants)
