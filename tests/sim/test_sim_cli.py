"""``sbcard simulate``: where it runs, what it prints, the report, and a violated invariant."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from world_template import cli

from sbcard.sim import invariants
from sbcard.sim.invariants import Result

SMALL = ("simulate", "--population", "30", "--days", "1", "--seed", "4")


def test_json_has_the_stable_keys_and_the_report_is_written(tmp_path: Path) -> None:
    home, report = tmp_path / "world", tmp_path / "report"
    code, out, err, data = cli(home, *SMALL, "--report", str(report), "--json")
    assert code == 0, err
    for key in ("seed", "population", "days", "counts", "settlement", "faults", "invariants", "elapsed_s"):
        assert key in data
    assert (data["seed"], data["population"], data["days"]) == (4, 30, 1)
    assert set(data["invariants"]) == set(invariants.NAMES) and all(data["invariants"].values())
    assert {"matrix", "net"} <= set(data["settlement"])
    assert data["counts"]["batch_produced"] and data["counts"]["tap"]
    page = (report / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    saved = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in saved.items() if k != "elapsed_s"} == {k: v for k, v in data.items() if k != "elapsed_s"}


def test_human_summary(tmp_path: Path) -> None:
    code, out, err, _ = cli(tmp_path / "world", *SMALL)
    assert code == 0, err
    assert "transactions" in out and "Settlement" in out and "Invariants: 7 of 7 held" in out
    assert "tap" in out and "batch_produced" in out


def test_home_that_is_not_a_simulation_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "world"
    home.mkdir()
    (home / "notes.txt").write_text("mine", encoding="utf-8")
    code, _, err, _ = cli(home, *SMALL, "--json")
    assert code == 2 and "--home" in err
    assert (home / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_same_options_run_again_other_options_refused(tmp_path: Path) -> None:
    home = tmp_path / "world"
    first = cli(home, *SMALL, "--json")
    assert first[0] == 0, first[2]
    again = cli(home, *SMALL, "--json")
    assert again[0] == 0, again[2]
    assert {k: v for k, v in again[3].items() if k != "elapsed_s"} == {
        k: v for k, v in first[3].items() if k != "elapsed_s"}
    code, _, err, _ = cli(home, "simulate", "--population", "31", "--days", "1", "--seed", "4", "--json")
    assert code == 2 and "other options" in err
    code, _, err, _ = cli(home, "simulate", "--population", "30", "--days", "1", "--seed", "5", "--resume", "--json")
    assert code == 2 and "other options" in err


def test_a_violated_invariant_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def check_day(world, home, day: dt.date, **_memory: object) -> dict[str, Result]:
        results = {name: Result(True, "held") for name in invariants.NAMES}
        results["money_conserved"] = Result(False, f"tj: ledger transaction X sums to 1 fen on {day.isoformat()}")
        return results

    monkeypatch.setattr(invariants, "check_day", check_day)
    home = tmp_path / "world"
    code, out, err, data = cli(home, "simulate", "--population", "30", "--days", "2", "--seed", "4", "--json")
    assert code == 1
    assert "money_conserved" in err and "2025-03-03" in err and "sums to 1 fen" in err
    assert data["invariants"]["money_conserved"] is False
    # the run stopped on day 1: no checkpoint of a day that broke the rules (nor of the set-up, made from the seed)
    names = sorted(p.name for p in (home / ".sim").iterdir() if p.name.startswith("checkpoint-"))
    assert names == []
