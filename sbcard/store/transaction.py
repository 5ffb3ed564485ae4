"""`atomic(db)`: a service's all-or-nothing step, alone or inside a larger use case.

A service function such as `ledger.post` or `registry.add_person` is a use case of its
own when the CLI calls it, and one step of a larger use case when issuance or a
replacement calls it inside its `UnitOfWork`. `atomic` serves both: with no transaction
open it runs a unit of work and commits; inside the caller's transaction it is a
SAVEPOINT, so a refused step leaves the caller's earlier work intact and the caller
alone decides whether to commit.

Every step's savepoint has the same name: SQLite's ROLLBACK TO and RELEASE act on the most
recent savepoint of a name, which is the step's own since steps nest as blocks do, and one
name keeps the three statements in sqlite3's cache of compiled statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

from sbcard.store.unit_of_work import UnitOfWork


@contextmanager
def atomic(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Everything written in the block is kept together or not at all."""
    if not db.conn.in_transaction:
        with UnitOfWork(db) as uow:
            yield uow.db
            uow.finish()
        return
    conn = db.conn
    conn.execute("SAVEPOINT sbcard_step")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK TO sbcard_step")
        conn.execute("RELEASE sbcard_step")
        raise
    conn.execute("RELEASE sbcard_step")
