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

It is the one transaction idiom and the port to storage. A service receives a unit of
work, not a connection: ``with uow:`` for a whole use case, ``with uow.step():`` for a step
that is a use case of its own when called alone and one part of a larger use case when
called inside it (a SAVEPOINT then, so a refused step leaves the caller's earlier work
intact). The SQL a service needs lives in ``sbcard.store.repositories``; ``uow.get(Kind)``
gives the repository of that kind over this unit's database, so a second store plugs in
by giving other repositories for the same names.

A database opened with a write gate (``db.write_gate``: the network service's threads
sharing the world, ``sbcard.store.write_gate``) is written in arrival order: the unit takes
the gate before ``BEGIN IMMEDIATE`` and hands it on when its transaction ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

import sqlite_utils

from sbcard.domain.errors import SbcardError
from sbcard.store.db import BUSY_TIMEOUT_MS
from sbcard.store.write_gate import WriteGate


Repository = TypeVar("Repository")


class UnitOfWork:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._active = False
        self._finished_at: int | None = None  # the connection's total_changes when ``finish`` committed
        self._repositories: dict[type[Any], Any] = {}
        self._gate: WriteGate | None = None  # the database's write gate while this unit holds it

    def get(self, kind: type[Repository]) -> Repository:
        """The repository of ``kind`` (a class taking the database) over this unit's database."""
        found = self._repositories.get(kind)
        if found is None:
            found = self._repositories[kind] = kind(self.db)
        return found

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """A whole use case: its own transaction, committed at the end of the block.

        ``with uow:`` and ``uow.finish()`` in one; refused (``store.nested_transaction``) inside
        a transaction already open on the database, as a use case that commits on its own
        (one node's part of cross-node work) must not be folded into a caller's.
        """
        with self:
            yield self
            self.finish()

    @contextmanager
    def step(self) -> Iterator[UnitOfWork]:
        """Everything written in the block is kept together or not at all.

        Alone, the step is a whole use case: its own transaction, committed at the end. Inside
        a transaction already open on the database (this unit's or a caller's), it is a
        SAVEPOINT: a refused step rolls back to it and the caller decides whether to commit.
        Every step's savepoint has the same name: SQLite's ROLLBACK TO and RELEASE act on the
        most recent savepoint of a name, which is the step's own since steps nest as blocks
        do, and one name keeps the three statements in sqlite3's cache of compiled statements.
        """
        conn = self.db.conn
        if self._finished_at is not None:
            raise SbcardError("store.write_after_finish",
                              "a step of a unit of work after its finish(): that write would not be part of its transaction")
        if not conn.in_transaction:
            with self.transaction():
                yield self
            return
        conn.execute("SAVEPOINT sbcard_step")
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK TO sbcard_step")
            conn.execute("RELEASE sbcard_step")
            raise
        conn.execute("RELEASE sbcard_step")

    def __enter__(self) -> UnitOfWork:
        if self._active or self.db.conn.in_transaction:
            raise SbcardError(
                "store.nested_transaction",
                "a unit of work is already open on this database; use cases do not nest",
            )
        gate = getattr(self.db, "write_gate", None)
        if gate is not None:
            gate.acquire(BUSY_TIMEOUT_MS / 1000)
        try:
            self.db.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            if gate is not None:
                gate.release()
            raise
        self._gate = gate
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
        self._let_go()

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
        try:
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
        finally:
            self._let_go()
        if self._finished_at is not None:
            finished_at, self._finished_at = self._finished_at, None
            if exc_type is None and self.db.conn.total_changes != finished_at:
                raise SbcardError("store.write_after_finish",
                                  "a unit of work wrote after finish(): that write was not part of its transaction")

    def _let_go(self) -> None:
        """The transaction is over: the next writer in the queue may begin."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    def _require_active(self) -> None:
        if not self._active:
            raise SbcardError("store.no_transaction", "unit of work used outside its `with` block")
