"""One transaction per use case (Cosmic Python's unit of work, over one database).

    with UnitOfWork(db) as uow:
        uow.db["cards"].insert(...)
        uow.commit()

Nothing is kept unless `commit()` is called: leaving the block normally without it, or by
an exception, rolls back. BEGIN IMMEDIATE takes the write lock at the start, so two
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

    def _require_active(self) -> None:
        if not self._active:
            raise SbcardError("store.no_transaction", "unit of work used outside its `with` block")
