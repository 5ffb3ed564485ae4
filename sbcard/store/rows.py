"""One row in, out or changed with one plain SQL statement: for use cases run thousands of times a day.

sqlite-utils' table API (``db[table].insert/get/update/upsert``) looks up the table's names
and columns (``PRAGMA table_info``), wraps each write in a savepoint of a new name and
builds its SQL anew for every row: some ten statements and much Python per row. The day's
use cases (a purse load, a card issued, an event recorded) write rows of a fixed shape,
so these write them in one statement each, whose text repeats and stays compiled in
sqlite3's statement cache. Values go to SQLite as they are: str, int, float, bytes or
None, nothing converted (a dict or a list is refused by sqlite3, not turned into JSON).
Table and column names come from the code, never from input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlite_utils

from sbcard.domain.errors import SbcardError

_SQL: dict[tuple[str, str, tuple[str, ...], str], str] = {}


def insert(db: sqlite_utils.Database, table: str, row: Mapping[str, Any]) -> int:
    """Insert the row; its rowid (the ``id`` of a table with an integer key)."""
    key = ("insert", table, tuple(row), "")
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = f"INSERT INTO {_q(table)} ({_names(row)}) VALUES ({', '.join('?' * len(row))})"
    return int(db.execute(sql, list(row.values())).lastrowid or 0)


def upsert(db: sqlite_utils.Database, table: str, row: Mapping[str, Any], pk: str) -> None:
    """Insert the row, or set every other column of the row with the same ``pk``."""
    key = ("upsert", table, tuple(row), pk)
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = (
            f"INSERT INTO {_q(table)} ({_names(row)}) VALUES ({', '.join('?' * len(row))}) "
            f"ON CONFLICT ({_q(pk)}) DO UPDATE SET " + ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in row if c != pk))
    db.execute(sql, list(row.values()))


def get(db: sqlite_utils.Database, table: str, column: str, value: Any) -> dict[str, Any] | None:
    """The row whose ``column`` (a key) is ``value``, or None."""
    return first(db, f"SELECT * FROM {_q(table)} WHERE {_q(column)} = ?", [value])


def first(db: sqlite_utils.Database, sql: str, params: list[Any]) -> dict[str, Any] | None:
    """The first row the query finds, as a dict, or None."""
    cursor = db.execute(sql, params)
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row))


def update(db: sqlite_utils.Database, table: str, column: str, value: Any, changes: Mapping[str, Any]) -> None:
    """Set ``changes`` on the row whose ``column`` (a key) is ``value``; an error if there is no such row."""
    key = ("update", table, tuple(changes), column)
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = f"UPDATE {_q(table)} SET {', '.join(f'{_q(c)} = ?' for c in changes)} WHERE {_q(column)} = ?"
    if db.execute(sql, [*changes.values(), value]).rowcount != 1:
        raise SbcardError("store.no_row", f"no row of {table} with {column} = {value!r} to update")


def _q(name: str) -> str:
    return f'"{name}"'


def _names(row: Mapping[str, Any]) -> str:
    return ", ".join(_q(c) for c in row)
