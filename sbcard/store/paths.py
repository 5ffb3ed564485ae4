"""Files of a world as its databases record them: relative to the world's home.

A world is a directory you can copy: a card file recorded as ``cards/stock/…/X.card`` is,
in the copy, the copy's own file, where an absolute path would have sent the copy's commands
into the original world's cards. A file outside the home keeps its absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import sqlite_utils

CARDS = "cards"


def recorded_path(home: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """``path`` relative to ``home`` (with ``/``), or absolute when it lies outside ``home``."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, os.path.abspath(home))
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        return absolute
    return Path(relative).as_posix()


def home_of(db: sqlite_utils.Database) -> Path | None:
    """The world's home a node's database file lies in (None for an in-memory database)."""
    for _seq, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file).parent if file else None
    return None


def relative_in_world(home: Path, stored: str) -> str:
    """What an older world's absolute ``stored`` path becomes once recorded relative to ``home``.

    A path under the home is made relative. A path under another world's ``cards/`` (the
    world was copied or moved before paths were relative) becomes this world's own file of
    the same name, when this world has it. Anything else is left as it was.
    """
    if not os.path.isabs(stored):
        return stored
    relative = recorded_path(home, stored)
    if not os.path.isabs(relative):
        return relative
    parts = PurePath(stored).parts[:-1]
    if CARDS in parts:
        at = len(parts) - 1 - parts[::-1].index(CARDS)
        candidate = PurePath(*PurePath(stored).parts[at:]).as_posix()
        if (home / candidate).is_file():
            return candidate
    return stored
