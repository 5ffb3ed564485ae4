"""Checkpoints of a simulation, so a killed run resumes where its last whole day ended.

Layout, inside the world's own directory:

    <home>/.sim/run.json               the run's options (seed, population, days, faults)
    <home>/.sim/lock, workers.lock     held by the running simulation and its worker processes
    <home>/.sim/checkpoint-<day>/      the world as it stood after day <day>
        world/                         bj.db tj.db he.db hub.db cards/ terminals/
        state.json                     the tally, the settlements, the engine's state, the clock

The set-up is not checkpointed: it is made from the seed alone, so a run killed before its
first day ends starts afresh (``start_fresh``) and makes the same set-up again.

A checkpoint is written whole into ``checkpoint-<day>.tmp`` and then renamed (an atomic
step): a run killed while writing one leaves the previous one intact, and the half-written
``.tmp`` is ignored and removed. Only the newest checkpoint is kept. The world's databases
are closed while it is copied, so the copy is what a fresh process would open.

``restore`` puts the newest checkpoint's world back in place of whatever the killed run left
(databases, cards and terminal logs of a half-done day) and hands back its state; the
engine then runs again from the next day, with the same day's random sources, so the
totals come out as those of an uninterrupted run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sbcard.domain.errors import InvalidInput, RuleRefused

SIM_DIR = ".sim"
RUN_FILE = "run.json"
PREFIX = "checkpoint-"
LOCK_FILE = "lock"
WORKERS_LOCK = "workers.lock"
KEEP = (LOCK_FILE, WORKERS_LOCK)


def _sim(home: Path) -> Path:
    return Path(home) / SIM_DIR


def _world_entries(home: Path) -> list[Path]:
    return sorted(p for p in Path(home).iterdir() if p.name != SIM_DIR)


def run_options(home: Path) -> dict[str, Any] | None:
    path = _sim(home) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_home(home: Path, options: dict[str, Any], *, resume: bool) -> str:
    """What to do with ``home``: "fresh" (empty or new), "restart" (our own run, same options,
    not resumed: made again from scratch) or "resume". Refuses anything else (InvalidInput)."""
    home = Path(home)
    if home.exists() and not home.is_dir():
        raise InvalidInput("sim.home", f"{home} is not a directory", "--home")
    if not home.exists() or not any(home.iterdir()):
        return "fresh"
    mine = run_options(home)
    if mine is None and all(e.name == SIM_DIR for e in home.iterdir()) and _only_locks(home):
        return "fresh"  # a run killed before it had begun
    if mine is None:
        raise InvalidInput("sim.home", f"{home} is not empty and holds no simulation: give an empty or new --home",
                           "--home")
    if mine != options:
        raise InvalidInput("sim.home", f"{home} holds a simulation with other options ({_describe(mine)}): "
                           "give another --home, or the same options", "--home")
    return "resume" if resume else "restart"


def _only_locks(home: Path) -> bool:
    return all(e.name in KEEP for e in _sim(home).iterdir())


@contextmanager
def run_lock(home: Path) -> Iterator[None]:
    """This process runs the simulation in ``home``: another one is refused; worker processes of a
    killed run are waited for (they stop at their next card once they see their parent gone)."""
    sim = _sim(home)
    sim.mkdir(parents=True, exist_ok=True)
    with open(sim / LOCK_FILE, "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuleRefused("sim.running", f"another `sbcard simulate` is running in {home}", "--home") from None
        with open(sim / WORKERS_LOCK, "a+b") as workers:
            fcntl.flock(workers.fileno(), fcntl.LOCK_EX)
            fcntl.flock(workers.fileno(), fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


@contextmanager
def worker_lock(home: Path) -> Iterator[None]:
    """Held (shared) by a worker process while it writes the world."""
    with open(_sim(home) / WORKERS_LOCK, "a+b") as workers:
        fcntl.flock(workers.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(workers.fileno(), fcntl.LOCK_UN)


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(options.items()))


def start_fresh(home: Path, options: dict[str, Any]) -> None:
    """An empty ``home`` with the run's options recorded (an earlier run of ours there is removed)."""
    home = Path(home)
    if home.exists():
        if run_options(home) not in (None, options) or (run_options(home) is None and any(
                e.name != SIM_DIR for e in home.iterdir())):
            raise InvalidInput("sim.home", f"{home} is not empty and holds no simulation of these options",
                               "--home")
        for entry in list(home.iterdir()):
            if entry.name != SIM_DIR:
                _remove(entry)
        if _sim(home).is_dir():
            for entry in list(_sim(home).iterdir()):
                if entry.name not in KEEP:
                    _remove(entry)
    _sim(home).mkdir(parents=True, exist_ok=True)
    _write_json(_sim(home) / RUN_FILE, options)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _checkpoints(home: Path) -> list[tuple[int, Path]]:
    sim = _sim(home)
    if not sim.is_dir():
        return []
    found = []
    for entry in sim.iterdir():
        if entry.name.startswith(PREFIX) and entry.is_dir():
            tail = entry.name[len(PREFIX):]
            if tail.isdigit() and (entry / "state.json").is_file():
                found.append((int(tail), entry))
    return sorted(found)


def save(home: Path, day_no: int, data: dict[str, Any], *, touched: set[str] | None = None,
         shared_cards: bool = False) -> Path:
    """Copy the world and write ``data`` as checkpoint ``day_no``; older checkpoints go.

    ``touched``: the card files (absolute paths) written since the previous checkpoint, when
    the caller knows them (None: it does not). Every other card file is unchanged since the
    previous checkpoint and is hard-linked from it rather than copied (a checkpoint's files
    are never written). ``shared_cards``: the caller copies a card file that is still linked
    elsewhere before writing it (the simulation's ``_own_file``), so every card file of the
    world is hard-linked into the checkpoint, none copied. Databases and terminals' states
    are always copied.
    """
    home = Path(home).absolute()  # ``touched`` names absolute paths
    sim = _sim(home)
    final = sim / f"{PREFIX}{day_no}"
    tmp = sim / f"{PREFIX}{day_no}.tmp"
    for leftover in sim.glob(f"{PREFIX}*.tmp"):
        _remove(leftover)
    previous = _checkpoints(home)
    before = previous[-1][1] / "world" if previous and touched is not None else None
    tmp.mkdir()
    world = tmp / "world"
    world.mkdir()
    for entry in _world_entries(home):
        if entry.is_dir():
            if shared_cards and entry.name == "cards":
                _link_tree(entry, world / entry.name)
            elif before is not None and entry.name == "cards":
                _copy_cards(entry, world / entry.name, before / entry.name, touched or set())
            else:
                shutil.copytree(entry, world / entry.name, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(entry, world / entry.name)
    _write_json(tmp / "state.json", data)
    if final.exists():
        _remove(final)
    os.replace(tmp, final)
    for number, path in _checkpoints(home):
        if number != day_no:
            _remove(path)
    return final


def _link_tree(source: Path, target: Path) -> None:
    """Every file under ``source`` hard-linked at the same place under ``target``."""
    source_s, target_s = str(source), str(target)
    for folder, dirs, files in os.walk(source_s):
        dirs.sort()
        rel = os.path.relpath(folder, source_s)
        to = target_s if rel == os.curdir else os.path.join(target_s, rel)
        os.makedirs(to, exist_ok=True)
        for name in sorted(files):
            os.link(os.path.join(folder, name), os.path.join(to, name))


def _copy_cards(source: Path, target: Path, before: Path, touched: set[str]) -> None:
    """The card files: unchanged ones linked from the previous checkpoint, the others copied.

    With strings and one ``os.link`` per unchanged file (a file the previous checkpoint
    lacks is copied instead): a world holds a card file per card, and pathlib's objects for
    each of them cost more than the link itself.
    """
    source_s, target_s, before_s = str(source), str(target), str(before)
    for folder, dirs, files in os.walk(source_s):
        dirs.sort()
        rel = os.path.relpath(folder, source_s)
        to = target_s if rel == os.curdir else os.path.join(target_s, rel)
        was = before_s if rel == os.curdir else os.path.join(before_s, rel)
        os.makedirs(to, exist_ok=True)
        for name in sorted(files):
            path = os.path.join(folder, name)
            if path not in touched:
                try:
                    os.link(os.path.join(was, name), os.path.join(to, name))
                    continue
                except OSError:
                    pass  # new since the previous checkpoint (or not a file there): copied
            shutil.copyfile(path, os.path.join(to, name))


def restore(home: Path, *, shared_cards: bool = False) -> dict[str, Any] | None:
    """Put the newest checkpoint's world back; its state (None: no checkpoint, start afresh).

    ``shared_cards`` (see ``save``): the card files are hard-linked back rather than copied."""
    found = _checkpoints(home)
    for leftover in _sim(home).glob(f"{PREFIX}*.tmp") if _sim(home).is_dir() else ():
        _remove(leftover)
    if not found:
        return None
    _, path = found[-1]
    for entry in _world_entries(home):
        _remove(entry)
    for entry in sorted((path / "world").iterdir()):
        if shared_cards and entry.name == "cards":
            _link_tree(entry, Path(home) / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry, Path(home) / entry.name, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(entry, Path(home) / entry.name)
    return json.loads((path / "state.json").read_text(encoding="utf-8"))
