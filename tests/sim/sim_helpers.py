"""What the simulator's tests share: running ``sbcard simulate`` in a process of its own, and a
digest of a world that two runs must agree on.

A run goes through ``python -m sbcard`` (a new interpreter each time, so string hashing differs
between runs, as it does between two shells); ``world_digest`` hashes every database's
``iterdump()`` (the world's own path replaced, so two homes compare), every card file and every
terminal's database — everything but ``.sim`` (the run's checkpoints and import files).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def simulate_args(home: Path, population: int, days: int, seed: int, faults: str = "none",
                  *more: str) -> list[str]:
    return [sys.executable, "-m", "sbcard", "--home", str(home), "simulate", "--population", str(population),
            "--days", str(days), "--seed", str(seed), "--faults", faults, "--json", *more]


def run_simulate(home: Path, population: int, days: int, seed: int, faults: str = "none", *more: str,
                 timeout: float = 300) -> dict[str, Any]:
    """``sbcard simulate … --json`` in a new process; its summary (the run must succeed)."""
    done = subprocess.run(simulate_args(home, population, days, seed, faults, *more), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=_env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_simulate(home: Path, population: int, days: int, seed: int, faults: str = "none",
                   *more: str) -> subprocess.Popen:
    return subprocess.Popen(simulate_args(home, population, days, seed, faults, *more), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SBCARD_HOME", None)
    env.pop("PYTHONHASHSEED", None)
    return env


def without_elapsed(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "elapsed_s"}


def world_digest(home: Path) -> tuple[str, dict[str, str]]:
    """(the world's digest, {relative path: digest}) over databases, card files and terminals."""
    home = Path(home).absolute()
    total = hashlib.sha256()
    parts: dict[str, str] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        rel = path.relative_to(home)
        if rel.parts[0] == ".sim" or path.name.endswith(("-wal", "-shm")):
            continue
        if path.suffix == ".db":
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                data = "\n".join(conn.iterdump()).replace(str(home), "<home>").encode("utf-8")
            finally:
                conn.close()
        else:
            data = path.read_bytes()
        parts[rel.as_posix()] = hashlib.sha256(data).hexdigest()
        total.update(rel.as_posix().encode("utf-8") + b"\0" + parts[rel.as_posix()].encode("ascii"))
    return total.hexdigest(), parts


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
