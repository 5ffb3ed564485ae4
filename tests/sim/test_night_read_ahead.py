"""A big world's night: the card files are read ahead in another process while the engine uploads
and clears, and the checks take those readings (``Simulation._read_cards_ahead``)."""

from __future__ import annotations

from pathlib import Path

from sbcard.sim import invariants
from sbcard.sim.engine import Options, Simulation


def test_each_night_reads_ahead_the_card_files_it_would_read_and_the_checks_hold(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(invariants, "RACY_NS", 0)  # the day's last taps were just now: trust them all the same
    nights: list[dict] = []
    check_day = invariants.check_day

    def spy(*args, read_ahead=None, **kwargs):
        cards = {str(sim.home_dir / c["path"]) for c in sim.state["cards"].values()}
        nights.append((dict(read_ahead or {}), cards))
        return check_day(*args, read_ahead=read_ahead, **kwargs)

    monkeypatch.setattr(invariants, "check_day", spy)
    sim = Simulation(tmp_path / "world", Options(population=300, days=2, seed=5, faults="none"), tap_worker=True)
    sim.run()
    assert all(r.ok for r in sim.invariants.values()), invariants.describe(sim.invariants)
    (first, cards), (second, _) = nights
    assert set(first) == cards  # the first night: every card
    assert 0 < len(second) < len(first)  # then only the cards used on day 2 (or new)
    assert all(reading[1][0] >= 0 for reading in first.values())  # each a purse: its balance


def test_a_small_world_reads_its_cards_itself(tmp_path: Path, monkeypatch) -> None:
    nights: list = []
    check_day = invariants.check_day
    monkeypatch.setattr(invariants, "check_day",
                        lambda *a, read_ahead=None, **k: nights.append(read_ahead) or check_day(*a, **k))
    Simulation(tmp_path / "world", Options(population=100, days=1, seed=5, faults="none"), tap_worker=False).run()
    assert nights == [None]
