"""`atomic(db)`: ``UnitOfWork(db).step()`` for services that still take a database.

The one transaction idiom is the unit of work (``sbcard.store.unit_of_work``): a service
that receives a ``UnitOfWork`` writes ``with uow.step():``. Services that still receive a
raw database (those not yet moved to the port, listed in docs/architecture.md) reach the
same step through this function, so the savepoint semantics exist once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

from sbcard.store.unit_of_work import UnitOfWork


@contextmanager
def atomic(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Everything written in the block is kept together or not at all."""
    with UnitOfWork(db).step() as uow:
        yield uow.db
