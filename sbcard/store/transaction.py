"""`atomic(db)`: a service's all-or-nothing step, alone or inside a larger use case.

A service function such as `ledger.post` or `registry.add_person` is a use case of its
own when the CLI calls it, and one step of a larger use case when issuance or a
replacement calls it inside its `UnitOfWork`. `atomic` serves both: with no transaction
open it runs a unit of work and commits; inside the caller's transaction it is a
SAVEPOINT, so a refused step leaves the caller's earlier work intact and the caller
alone decides whether to commit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

from sbcard.store.unit_of_work import UnitOfWork

_names = itertools.count(1)


@contextmanager
def atomic(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Everything written in the block is kept together or not at all."""
    if not db.conn.in_transaction:
        with UnitOfWork(db) as uow:
            yield uow.db
            uow.commit()
        return
    savepoint = f"sbcard_step_{next(_names)}"
    db.conn.execute(f"SAVEPOINT {savepoint}")
    try:
        yield db
    except BaseException:
        db.conn.execute(f"ROLLBACK TO {savepoint}")
        db.conn.execute(f"RELEASE {savepoint}")
        raise
    db.conn.execute(f"RELEASE {savepoint}")
