"""A world is a directory you can copy: the copy's commands write the copy's card files.

Card files are recorded relative to the world's home (``sbcard/store/paths.py``); worlds made
before that are brought over by region migration 11.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lifecycle_world import OPERATORS, OUTLET, PIN, query
from world_template import cli, receive_blanks

from sbcard.clock import SystemClock
from sbcard.store.db import open_db
from sbcard.store.world import WorldPaths, open_world


def _stored(home: Path, card: str) -> str:
    [row] = query(home, "bj", "SELECT virtual_path FROM cards WHERE card_number = ?", (card,))
    return row["virtual_path"]


def test_a_card_file_is_recorded_relative_to_the_home(home, issue) -> None:
    card = issue("liu")
    stored = _stored(home, card)
    assert not Path(stored).is_absolute() and stored.startswith(f"cards/stock/{OUTLET}/")
    [blank] = query(home, "bj", "SELECT path FROM blank_cards WHERE used_for = ?", (card,))
    assert blank["path"] == stored


def test_a_copied_world_writes_its_own_card_not_the_original(home, tmp_path, issue) -> None:
    card = issue("liu")
    original = home / _stored(home, card)
    before = original.read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    code, _, err, _ = cli(copy, "card", "pin", "change", card, "--old-pin", PIN, "--new-pin", "246813", "--json")
    assert code == 0, err
    assert original.read_bytes() == before  # the original world's card is untouched
    assert (copy / _stored(copy, card)).read_bytes() != before  # the copy's card holds the new PIN


def _make_old(home: Path, absolute_root: Path) -> None:
    """Turn ``home`` back into a world of schema 10, whose card files were recorded under ``absolute_root``."""
    db = open_db(WorldPaths(home).db("bj"))
    try:
        db.executescript("""
            DROP TRIGGER schema_migrations_no_delete;
            DELETE FROM schema_migrations WHERE version >= 11;
            UPDATE schema_meta SET value = '10' WHERE key = 'schema_version';
        """)
        for table, column in (("blank_cards", "path"), ("cards", "virtual_path")):
            db.execute(f"UPDATE {table} SET {column} = ? || '/' || {column} WHERE {column} IS NOT NULL",
                       [str(absolute_root)])
    finally:
        db.close()


def test_migration_makes_an_old_worlds_paths_relative(home, issue) -> None:
    card = issue("liu")
    stored = _stored(home, card)
    _make_old(home, home.absolute())
    assert _stored(home, card) == f"{home.absolute()}/{stored}"
    with open_world(home):  # migrates
        pass
    assert _stored(home, card) == stored
    assert query(home, "bj", "SELECT count(*) AS n FROM blank_cards WHERE path LIKE '/%'")[0]["n"] == 0


def test_migration_of_an_old_world_copied_before_it_names_the_copys_files(home, tmp_path, issue) -> None:
    card = issue("liu")
    stored = _stored(home, card)
    [elsewhere] = receive_blanks(home, OPERATORS, OUTLET, 1, SystemClock().now())
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    (copy / elsewhere.relative_to(home)).unlink()  # a blank the copy does not have keeps its record
    _make_old(copy, home.absolute())  # recorded by the original world, before the copy
    with open_world(copy):
        pass
    assert _stored(copy, card) == stored
    [kept] = query(copy, "bj", "SELECT path FROM blank_cards WHERE chip_serial = ?", (elsewhere.stem,))
    assert kept["path"] == str(elsewhere.absolute())
