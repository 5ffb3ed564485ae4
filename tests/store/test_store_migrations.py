"""Databases know their kind and version; migrations apply once, in order, recorded."""

import sqlite3
from datetime import datetime, timedelta

import pytest

from sbcard.clock import BEIJING, SimClock
from sbcard.domain.errors import SbcardError
from sbcard.store.migrations import Migration, migrate, read_meta, schema_version


def create(table):
    return lambda db: db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")


V1 = Migration(1, "cards", create("cards"))
V2 = Migration(2, "accounts", create("accounts"))
V3 = Migration(3, "ledger", create("ledger"))


def history(db):
    return [(r["version"], r["name"], r["applied_at"]) for r in db["schema_migrations"].rows]


def test_pending_migrations_apply_in_order_and_each_is_recorded(db):
    clock = SimClock(datetime(2025, 3, 1, 9, 0, tzinfo=BEIJING))

    def now():
        return clock.advance(timedelta(seconds=1))

    applied = migrate(db, "hub", [V1, V2, V3], now)

    assert applied == ["cards", "accounts", "ledger"]
    assert {"cards", "accounts", "ledger"} <= set(db.table_names())
    assert history(db) == [
        (1, "cards", "2025-03-01T09:00:02+08:00"),
        (2, "accounts", "2025-03-01T09:00:03+08:00"),
        (3, "ledger", "2025-03-01T09:00:04+08:00"),
    ]
    assert schema_version(db) == 3


def test_a_database_records_its_identity_on_creation(db, clock):
    migrate(db, "region", [V1], clock.now, region_code="120000")
    assert read_meta(db) == {
        "kind": "region",
        "region_code": "120000",
        "schema_version": "1",
        "created_at": "2025-03-01T09:30:00+08:00",
    }


def test_running_again_applies_nothing(db, clock):
    migrate(db, "hub", [V1, V2], clock.now)
    assert migrate(db, "hub", [V1, V2], clock.now) == []
    assert [v for v, _, _ in history(db)] == [1, 2]


def test_an_upgrade_applies_only_the_new_migrations(db, clock):
    migrate(db, "hub", [V1], clock.now)
    assert migrate(db, "hub", [V1, V2, V3], clock.now) == ["accounts", "ledger"]


def test_a_database_newer_than_the_code_is_refused(db, clock):
    migrate(db, "hub", [V1, V2], clock.now)
    with pytest.raises(SbcardError) as refused:
        migrate(db, "hub", [V1], clock.now)
    assert refused.value.code == "store.newer_schema"
    assert refused.value.exit_code == 3
    assert "version 2" in refused.value.message


def test_a_database_of_another_kind_is_refused(db, clock):
    migrate(db, "hub", [V1], clock.now)
    with pytest.raises(SbcardError) as refused:
        migrate(db, "region", [V1], clock.now, region_code="110000")
    assert refused.value.code == "store.wrong_kind"


def test_a_region_database_is_refused_for_another_region(db, clock):
    migrate(db, "region", [V1], clock.now, region_code="120000")
    with pytest.raises(SbcardError) as refused:
        migrate(db, "region", [V1], clock.now, region_code="110000")
    assert refused.value.code == "store.wrong_region"


def test_a_database_that_sbcard_did_not_create_is_refused(db, clock):
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    with pytest.raises(SbcardError) as refused:
        migrate(db, "hub", [V1], clock.now)
    assert refused.value.code == "store.not_sbcard"


def test_a_failing_migration_leaves_the_database_at_the_last_whole_version(db, clock):
    def half_done(db):
        db.execute("CREATE TABLE half (id INTEGER PRIMARY KEY)")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        migrate(db, "hub", [V1, Migration(2, "half", half_done)], clock.now)

    assert schema_version(db) == 1
    assert "half" not in db.table_names()
    assert [v for v, _, _ in history(db)] == [1]


def test_migrations_must_be_numbered_without_gaps(db, clock):
    with pytest.raises(ValueError, match="without gaps"):
        migrate(db, "hub", [V1, V3], clock.now)


def test_the_migration_history_is_append_only(db, clock):
    migrate(db, "hub", [V1], clock.now)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE schema_migrations SET name = 'rewritten'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM schema_migrations")


def test_applied_at_must_come_from_an_aware_clock(db):
    with pytest.raises(ValueError, match="naive"):
        migrate(db, "hub", [V1], lambda: datetime(2025, 1, 1))
