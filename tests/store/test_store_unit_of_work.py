"""One use case, one transaction: nothing is kept unless it is committed."""

import sqlite3

import pytest

from sbcard.domain.errors import SbcardError
from sbcard.store.db import open_db
from sbcard.store.unit_of_work import UnitOfWork


@pytest.fixture
def accounts(db):
    db.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
    return db


def balances(db):
    return {row["id"]: row["balance"] for row in db["accounts"].rows}


def test_committed_work_is_kept(accounts):
    with UnitOfWork(accounts) as uow:
        uow.db["accounts"].insert({"id": "A", "balance": 100})
        uow.commit()
    assert balances(accounts) == {"A": 100}


def test_leaving_the_block_without_commit_rolls_back(accounts):
    with UnitOfWork(accounts) as uow:
        uow.db["accounts"].insert({"id": "A", "balance": 100})
    assert balances(accounts) == {}


def test_an_exception_rolls_back_and_propagates(accounts):
    with pytest.raises(RuntimeError, match="card pulled"):
        with UnitOfWork(accounts) as uow:
            uow.db["accounts"].insert({"id": "A", "balance": 100})
            raise RuntimeError("card pulled")
    assert balances(accounts) == {}


def test_work_after_a_commit_needs_its_own_commit(accounts):
    with UnitOfWork(accounts) as uow:
        uow.db["accounts"].insert({"id": "A", "balance": 100})
        uow.commit()
        uow.db["accounts"].insert({"id": "B", "balance": 200})
    assert balances(accounts) == {"A": 100}


def test_sqlite_utils_writes_join_the_open_transaction(accounts):
    # insert_all, upsert and friends use savepoints inside our transaction.
    with UnitOfWork(accounts) as uow:
        uow.db["accounts"].insert_all([{"id": "A", "balance": 1}, {"id": "B", "balance": 2}])
        uow.db["accounts"].upsert({"id": "A", "balance": 5}, pk="id")
    assert balances(accounts) == {}


def test_units_of_work_do_not_nest(accounts):
    with UnitOfWork(accounts):
        with pytest.raises(SbcardError) as refused:
            with UnitOfWork(accounts):
                pass
    assert refused.value.code == "store.nested_transaction"


def test_the_write_lock_is_taken_on_entry(tmp_path, accounts):
    other = open_db(tmp_path / "node.db")
    other.execute("PRAGMA busy_timeout=0")
    try:
        with UnitOfWork(accounts):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.conn.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_uncommitted_work_is_invisible_to_other_connections(tmp_path, accounts):
    other = open_db(tmp_path / "node.db")
    try:
        with UnitOfWork(accounts) as uow:
            uow.db["accounts"].insert({"id": "A", "balance": 100})
            assert balances(other) == {}
            uow.commit()
        assert balances(other) == {"A": 100}
    finally:
        other.close()


def test_a_unit_of_work_cannot_commit_after_its_block(accounts):
    with UnitOfWork(accounts) as uow:
        pass
    with pytest.raises(SbcardError):
        uow.commit()


def test_finish_commits_and_leaves_no_transaction_open(tmp_path, accounts):
    other = open_db(tmp_path / "node.db")
    other.execute("PRAGMA busy_timeout=0")
    try:
        with UnitOfWork(accounts) as uow:
            uow.db["accounts"].insert({"id": "A", "balance": 100})
            uow.finish()
            assert not accounts.conn.in_transaction
            assert balances(uow.db) == {"A": 100}  # reads may follow
            other.conn.execute("BEGIN IMMEDIATE")  # the write lock is free again
            other.conn.execute("ROLLBACK")
        assert balances(other) == {"A": 100}
    finally:
        other.close()


def test_a_unit_of_work_cannot_commit_after_finish(accounts):
    with UnitOfWork(accounts) as uow:
        uow.finish()
        with pytest.raises(SbcardError) as refused:
            uow.commit()
    assert refused.value.code == "store.no_transaction"


def test_a_write_after_finish_is_reported(accounts):
    with pytest.raises(SbcardError) as refused:
        with UnitOfWork(accounts) as uow:
            uow.finish()
            uow.db.execute("INSERT INTO accounts (id, balance) VALUES ('B', 1)")
    assert refused.value.code == "store.write_after_finish"
