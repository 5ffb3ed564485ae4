"""A run killed (SIGKILL) at random points and resumed each time ends as an uninterrupted run."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

from sim_helpers import differing, run_simulate, start_simulate, without_elapsed, world_digest

POPULATION, DAYS, SEED, FAULTS = 120, 3, 11, "heavy"


def test_killed_and_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = run_simulate(tmp_path / "whole", POPULATION, DAYS, SEED, FAULTS)
    span = max(1.0, whole["elapsed_s"])  # kill points within a run's own length (the process starts first)

    home = tmp_path / "killed"
    rng = random.Random(20250303)
    kills = 0
    # A kill point drawn past the end of a run finishes it unkilled; on a loaded machine the
    # first run may also be quicker than the measured one. Then the world is made again and
    # the window halved, so the test always kills at least once instead of failing by chance.
    for _ in range(6):
        for attempt in range(3):
            more = ("--resume",) if attempt else ()
            proc = start_simulate(home, POPULATION, DAYS, SEED, FAULTS, *more)
            deadline = time.monotonic() + rng.uniform(0.5, 0.5 + span)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.communicate(timeout=60)
        if kills:
            break
        shutil.rmtree(home)
        span /= 2
    assert kills, "no run was killed: the points chosen were all after the end"
    resumed = run_simulate(home, POPULATION, DAYS, SEED, FAULTS, "--resume")

    assert without_elapsed(resumed) == without_elapsed(whole)
    digest_whole, parts_whole = world_digest(tmp_path / "whole")
    digest_resumed, parts_resumed = world_digest(home)
    assert digest_whole == digest_resumed, differing(parts_whole, parts_resumed)
    checkpoints = sorted(p.name for p in (home / ".sim").iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == [f"checkpoint-{DAYS}"]


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "world"
    first = run_simulate(home, 40, 1, 3)
    before, _ = world_digest(home)
    again = run_simulate(home, 40, 1, 3, "none", "--resume")
    assert without_elapsed(again) == without_elapsed(first)
    assert world_digest(home)[0] == before
    state = json.loads((home / ".sim" / "checkpoint-1" / "state.json").read_text(encoding="utf-8"))
    assert state["day_done"] == 1
