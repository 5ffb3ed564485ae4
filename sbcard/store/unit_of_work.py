"""One transaction per use case (Cosmic Python's unit of work, over one database).

    with UnitOfWork(db) as uow:
        uow.db["cards"].insert(...)
        uow.commit()

Nothing is kept unless `commit()` is called: leaving the block normally without it, or by
an exception, rolls back. A use case whose commit is its last write calls `finish()` instead:
the same commit, without opening a next transaction that leaving the block would only
roll back. BEGIN IMMEDIATE takes the write lock at the start, so two
processes never both read a balance and then both fail to upgrade to writing; a busy
database makes the second wait (busy_timeout) rather than fail halfway through.

A use case that touches a region and the hub opens one unit of work on each database;
they commit separately (cross-node work is made idempotent by the hub's message log, not
by a distributed transaction).
"""

from __future__ import annotations

from types import TracebackType

import sqlite_utils

from sbcard.domain.errors import SbcardError


class UnitOfWork:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._active = False
        self._finished_at: int | None = None  # the connection's total_changes when ``finish`` committed

    def __enter__(self) -> UnitOfWork:
        if self._active or self.db.conn.in_transaction:
            raise SbcardError(
                "store.nested_transaction",
                "a unit of work is already open on this database; use cases do not nest",
            )
        self.db.conn.execute("BEGIN IMMEDIATE")
        self._active = True
        return self

    def commit(self) -> None:
        """Make the work so far durable; later work in the block is a new transaction."""
        self._require_active()
        self.db.conn.execute("COMMIT")
        self.db.conn.execute("BEGIN IMMEDIATE")

    def finish(self) -> None:
        """Commit, and end the block's work on the database: only reads may follow in the block.

        ``commit`` opens the next transaction at once (BEGIN IMMEDIATE) for work that may
        follow, and leaving the block rolls that one back: two statements, and the write lock
        held until the block ends, for nothing when the commit is the use case's last write,
        as it is for nearly all of them. After ``finish`` the block holds no transaction:
        a read sees what is committed; ``commit`` and ``rollback`` are refused, and a write
        (which would be kept at once, alone) is a bug that leaving the block reports.
        """
        self._require_active()
        self.db.conn.execute("COMMIT")
        self._active = False
        self._finished_at = self.db.conn.total_changes

    def rollback(self) -> None:
        """Discard the work since the last commit; the block stays usable."""
        self._require_active()
        if self.db.conn.in_transaction:
            self.db.conn.execute("ROLLBACK")
        self.db.conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active = False
        # A failed COMMIT or a RAISE(ROLLBACK) trigger may already have ended it.
        if self.db.conn.in_transaction:
            self.db.conn.execute("ROLLBACK")
        if self._finished_at is not None:
            finished_at, self._finished_at = self._finished_at, None
            if exc_type is None and self.db.conn.total_changes != finished_at:
                raise SbcardError("store.write_after_finish",
                                  "a unit of work wrote after finish(): that write was not part of its transaction")

    def _require_active(self) -> None:
        if not self._active:
            raise SbcardError("store.no_transaction", "unit of work used outside its `with` block")
