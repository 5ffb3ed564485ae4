"""Numbers a region allocates (chip serials, bank accounts, card numbers, application ids).

Each name is one row of `sequences`, bumped inside the caller's transaction: a use case
that rolls back gives its numbers back, so no number is ever burnt or handed out twice.
"""

from __future__ import annotations

import sqlite_utils


def next_value(db: sqlite_utils.Database, name: str) -> int:
    """The next number of `name`: 1, 2, 3…"""
    return reserve(db, name, 1)


def reserve(db: sqlite_utils.Database, name: str, count: int) -> int:
    """Take `count` consecutive numbers of `name` at once; returns the first of them."""
    if count < 1:
        raise ValueError(f"reserve at least one number, not {count}")
    [(last,)] = db.execute(
        "INSERT INTO sequences (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value",
        [name, count],
    ).fetchall()
    return last - count + 1


def current_value(db: sqlite_utils.Database, name: str) -> int:
    """The last number handed out (0 when none yet)."""
    row = db.execute("SELECT value FROM sequences WHERE name = ?", [name]).fetchone()
    return row[0] if row else 0
