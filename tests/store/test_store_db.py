"""A node's database is opened with the settings the service depends on."""

import sqlite3

import pytest

from sbcard.domain.errors import SbcardError
from sbcard.store.db import content_digest, open_db


def pragma(db, name):
    return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_database_uses_wal_foreign_keys_a_busy_timeout_and_normal_sync(db):
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "foreign_keys") == 1
    assert pragma(db, "busy_timeout") == 5000
    assert pragma(db, "synchronous") == 1  # NORMAL


def test_the_driver_never_opens_a_transaction_on_its_own(db):
    db.conn.execute("CREATE TABLE t (x INTEGER)")
    db.conn.execute("INSERT INTO t VALUES (1)")
    assert db.conn.isolation_level is None
    assert not db.conn.in_transaction


def test_foreign_keys_are_enforced(db):
    db.executescript(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (parent INTEGER REFERENCES parent (id));"
    )
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO child VALUES (42)")


def test_a_file_that_is_not_a_database_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "bj.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SbcardError) as refused:
        open_db(path)
    assert refused.value.code == "store.open_failed"
    assert str(path) in refused.value.message


def test_the_content_digest_changes_with_the_data_and_only_with_it(db):
    db["t"].insert({"x": 1})
    before = content_digest(db)
    assert content_digest(db) == before
    db["t"].insert({"x": 2})
    assert content_digest(db) != before
