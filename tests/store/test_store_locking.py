"""Why "database is locked" was seen once, and that it cannot happen so again.

Opening a world used to take every database's write lock (BEGIN IMMEDIATE, to check the
database's identity), so a process that only opened the world — the simulator's worker
processes at start, a `card show` while `subsidy pay` or a production batch of 2,000 cards
held a region's lock for longer than the busy timeout — failed with "database is locked".
Reading the identity needs no lock; only creating it does.

The other classic cause, a deferred transaction that reads and then writes (SQLite answers
SQLITE_BUSY at once, without the busy timeout, when another connection committed since the
read), is closed by ``UnitOfWork``'s BEGIN IMMEDIATE: the second writer waits instead.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from sbcard.store import db as store_db
from sbcard.store.db import open_db
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import WorldPaths, init_world, open_world


def test_opening_a_world_while_another_process_writes_a_region_does_not_wait_for_its_lock(home, clock,
                                                                                         monkeypatch):
    init_world(home, clock, rng_seed=7)
    writer = sqlite3.connect(WorldPaths(home).db("tj"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long write (a pay chunk, a production batch) holds the lock
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 200)
    try:
        with open_world(home, clock) as world:
            assert world.region("tj")["persons"].count == 0  # and reads see what is committed
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_unit_of_work_that_reads_then_writes_waits_for_a_concurrent_writer_instead_of_failing(tmp_path):
    path = tmp_path / "node.db"
    first = open_db(path)
    first.execute("CREATE TABLE balances (id INTEGER PRIMARY KEY, fen INTEGER)")
    first.execute("INSERT INTO balances VALUES (1, 100)")
    started = threading.Event()

    def other_writer() -> None:  # another process's connection, in a thread of this one
        second = open_db(path)
        try:
            with UnitOfWork(second) as uow:
                started.set()
                time.sleep(0.3)
                uow.db.execute("UPDATE balances SET fen = fen + 1 WHERE id = 1")
                uow.commit()
        finally:
            started.set()
            second.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    started.wait()
    with UnitOfWork(first) as uow:  # waits for the other's commit (busy timeout), then reads its result
        fen = uow.db.execute("SELECT fen FROM balances WHERE id = 1").fetchone()[0]
        uow.db.execute("UPDATE balances SET fen = ? WHERE id = 1", [fen + 10])
        uow.commit()
    thread.join()
    assert first.execute("SELECT fen FROM balances").fetchone()[0] == 111  # no lost update, no "locked"
    first.close()


def test_a_deferred_read_then_write_is_what_fails_at_once(tmp_path):
    """The failure the unit of work avoids, shown on bare connections (so a change of SQLite that
    made deferred transactions safe would be noticed here)."""
    path = tmp_path / "node.db"
    first, second = open_db(path), open_db(path)
    first.execute("CREATE TABLE t (x)")
    first.conn.execute("BEGIN")  # deferred: a read transaction until its first write
    first.execute("SELECT count(*) FROM t").fetchone()
    second.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        first.conn.execute("INSERT INTO t VALUES (2)")
    first.conn.execute("ROLLBACK")
    first.close()
    second.close()
