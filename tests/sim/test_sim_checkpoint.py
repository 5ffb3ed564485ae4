"""Checkpoints: the home a run may use, an atomic copy of the world, unchanged cards linked, restore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sbcard.domain.errors import InvalidInput
from sbcard.sim import checkpoint

OPTIONS = {"population": 10, "days": 2, "seed": 1, "faults": "none"}


def _world(home: Path) -> None:
    (home / "cards" / "stock" / "BJ-1").mkdir(parents=True)
    (home / "terminals" / "t1").mkdir(parents=True)
    (home / "bj.db").write_bytes(b"db one")
    (home / "cards" / "stock" / "BJ-1" / "A.card").write_bytes(b"card a")
    (home / "cards" / "stock" / "BJ-1" / "B.card").write_bytes(b"card b")
    (home / "terminals" / "t1" / "terminal.db").write_bytes(b"log")


def test_check_home(tmp_path: Path) -> None:
    assert checkpoint.check_home(tmp_path / "new", OPTIONS, resume=False) == "fresh"
    (tmp_path / "empty").mkdir()
    assert checkpoint.check_home(tmp_path / "empty", OPTIONS, resume=True) == "fresh"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    with pytest.raises(InvalidInput) as e:
        checkpoint.check_home(other, OPTIONS, resume=False)
    assert e.value.field == "--home"
    mine = tmp_path / "mine"
    checkpoint.start_fresh(mine, OPTIONS)
    assert checkpoint.check_home(mine, OPTIONS, resume=False) == "restart"
    assert checkpoint.check_home(mine, OPTIONS, resume=True) == "resume"
    with pytest.raises(InvalidInput):
        checkpoint.check_home(mine, {**OPTIONS, "seed": 2}, resume=True)


def test_save_links_unchanged_cards_and_restore_puts_the_world_back(tmp_path: Path) -> None:
    home = tmp_path / "world"
    checkpoint.start_fresh(home, OPTIONS)
    _world(home)
    first = checkpoint.save(home, 0, {"day_done": 0}, touched=set())
    card_a = home / "cards" / "stock" / "BJ-1" / "A.card"
    card_a.write_bytes(b"card a, spent")
    (home / "bj.db").write_bytes(b"db two")
    second = checkpoint.save(home, 1, {"day_done": 1}, touched={str(card_a.absolute())})
    assert not first.exists()  # only the newest is kept
    saved = second / "world" / "cards" / "stock" / "BJ-1"
    assert (saved / "A.card").read_bytes() == b"card a, spent"
    assert (saved / "B.card").read_bytes() == b"card b" and os.stat(saved / "B.card").st_nlink == 1
    assert (second / "world" / "bj.db").read_bytes() == b"db two"
    # a killed day leaves a changed world and a half-written checkpoint behind
    card_a.write_bytes(b"half a day")
    (home / "stray.db").write_bytes(b"new")
    (home / ".sim" / "checkpoint-2.tmp").mkdir()
    state = checkpoint.restore(home)
    assert state == {"day_done": 1}
    assert card_a.read_bytes() == b"card a, spent" and not (home / "stray.db").exists()
    assert not (home / ".sim" / "checkpoint-2.tmp").exists()
    # the checkpoint's files were copied back, not linked: writing the world leaves it alone
    card_a.write_bytes(b"tomorrow")
    assert (saved / "A.card").read_bytes() == b"card a, spent"


def test_restore_without_checkpoint_is_none(tmp_path: Path) -> None:
    home = tmp_path / "world"
    checkpoint.start_fresh(home, OPTIONS)
    assert checkpoint.restore(home) is None


def test_a_card_file_shared_with_a_checkpoint_is_copied_before_it_is_written(tmp_path: Path) -> None:
    from sbcard.sim.engine import _own_file

    live, kept = tmp_path / "live.card", tmp_path / "kept.card"
    live.write_bytes(b"image of day 1")
    os.link(live, kept)  # what checkpoint.save(shared_cards=True) does
    _own_file(str(live))
    with live.open("r+b") as f:  # the card's next commit writes its file in place
        f.write(b"IMAGE")
    assert kept.read_bytes() == b"image of day 1" and live.read_bytes() == b"IMAGE of day 1"
    _own_file(str(live))  # no longer shared: left as it is
    assert live.stat().st_nlink == 1 and live.read_bytes() == b"IMAGE of day 1"
