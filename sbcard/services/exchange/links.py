"""Which regions the hub can reach (hub.db ``links``): an outage, marked and lifted.

A region's host can be cut off from the hub (a network outage, a maintenance window;
the simulator cuts links on purpose). Work that needs the region's answer there and then
— a medical claim settled by the insured region (``sbcard.services.medical.routing``) — asks
here first and takes its offline road when the link is down. Staff mark an outage with
``sbcard hub link NODE --down`` and lift it with ``--up``; a region with no row is up.
Every change is kept in the row (``changed_at``, ``note``); the latest one wins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlite_utils

from sbcard.domain.errors import InvalidInput
from sbcard.domain.regions import NODE_NAMES
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork

FIELD = "NODE"


def _check(node: str) -> str:
    key = (node or "").strip().lower()
    if key not in NODE_NAMES:
        raise InvalidInput("link.node", f"{node!r} is not a region node ({', '.join(NODE_NAMES)})", FIELD)
    return key


def set_link(hub_db: sqlite_utils.Database, node: str, *, up: bool, note: str | None = None,
             now: dt.datetime) -> dict[str, Any]:
    """Mark the hub's link to ``node`` up or down; returns the link as ``links`` shows it."""
    key = _check(node)
    with UnitOfWork(hub_db).step():
        before = is_up(hub_db, key)
        hub_db.execute(
            "INSERT INTO links (node, up, changed_at, note) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (node) DO UPDATE SET up = excluded.up, changed_at = excluded.changed_at, "
            "note = excluded.note", [key, int(up), timestamp(now), note])
    return {**link(hub_db, key), "changed": before != up}


def is_up(hub_db: sqlite_utils.Database, node: str) -> bool:
    """Whether the hub reaches ``node`` (no row: up)."""
    row = hub_db.execute("SELECT up FROM links WHERE node = ?", [node]).fetchone()
    return row is None or bool(row[0])


def link(hub_db: sqlite_utils.Database, node: str) -> dict[str, Any]:
    key = _check(node)
    row = hub_db.execute("SELECT up, changed_at, note FROM links WHERE node = ?", [key]).fetchone()
    up, changed_at, note = row if row else (1, None, None)
    return {"node": key, "name": NODE_NAMES[key], "up": bool(up), "changed_at": changed_at, "note": note}


def links(hub_db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every region's link, in node order (bj, tj, he)."""
    return [link(hub_db, node) for node in NODE_NAMES]
