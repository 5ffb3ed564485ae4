"""SQLite itself enforces the rules a store must never break, whatever the code above does."""

import json
import sqlite3

import pytest

from sbcard.store import schema_hub, schema_region
from sbcard.store.migrations import migrate

AT = "2025-03-01T09:30:00+08:00"


@pytest.fixture
def region(db, clock):
    migrate(db, "region", schema_region.MIGRATIONS, clock.now, region_code="110000")
    db["regions"].insert_all(
        [
            {"code": "110000", "name": "北京市", "level": "province", "parent": None},
            {"code": "110108", "name": "海淀区", "level": "county", "parent": "110000"},
        ]
    )
    return db


@pytest.fixture
def hub(db, clock):
    migrate(db, "hub", schema_hub.MIGRATIONS, clock.now)
    db["regions"].insert({"code": "120000", "name": "天津市", "level": "province", "parent": None})
    return db


def audit(db, **overrides):
    entry = {"at": AT, "operator": "op-001", "outlet": "BJ-HD-01", "action": "card.lost",
             "subject": "188347080", "reason": "holder called",
             "details": json.dumps({"channel": "phone"})}
    db["audit_log"].insert({**entry, **overrides})


def card(**overrides):
    return {"card_number": "188347080", "card_id_code": "120000D156000005AD932A48BDC3B9E9",
            "citizen_id": "320223195302147992", "issuing_region": "120000",
            "status": "active", "updated_at": AT, **overrides}


class TestRegionDatabase:
    def test_the_audit_log_refuses_updates(self, region):
        audit(region)
        with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only"):
            region.execute("UPDATE audit_log SET reason = 'nothing happened'")

    def test_the_audit_log_refuses_deletes(self, region):
        audit(region)
        with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only"):
            region.execute("DELETE FROM audit_log")
        assert region["audit_log"].count == 1

    def test_audit_details_must_be_json(self, region):
        with pytest.raises(sqlite3.IntegrityError):
            audit(region, details="not json")

    def test_an_operator_has_a_known_role(self, region):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            region["operators"].insert({"code": "op-1", "name": "王芳", "role": "janitor",
                                        "region": "110108", "created_at": AT})

    def test_an_operator_belongs_to_a_known_region(self, region):
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            region["operators"].insert({"code": "op-1", "name": "王芳", "role": "counter",
                                        "region": "999999", "created_at": AT})

    def test_a_region_has_a_known_level_and_only_provinces_lack_a_parent(self, region):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            region["regions"].insert({"code": "110109", "name": "门头沟区",
                                      "level": "district", "parent": "110000"})
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            region["regions"].insert({"code": "110109", "name": "门头沟区", "level": "county",
                                      "parent": None})

    def test_tables_are_strict_about_types(self, region):
        with pytest.raises(sqlite3.IntegrityError, match="cannot store"):
            region["outlets"].insert({"code": "BJ-110105-09", "name": "朝阳区服务网点", "region": "110105",
                                      "kind": "outlet", "address": None, "low_stock": "twenty"})


class TestHubDatabase:
    def test_a_card_status_outside_the_life_cycle_is_refused(self, hub):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            hub["card_directory"].insert(card(status="stolen"))

    def test_a_card_status_change_is_allowed(self, hub):
        hub["card_directory"].insert(card())
        hub.execute("UPDATE card_directory SET status = 'lost' WHERE card_number = '188347080'")
        assert hub["card_directory"].get("188347080")["status"] == "lost"

    def test_a_card_identification_code_belongs_to_one_card(self, hub):
        hub["card_directory"].insert(card())
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            hub["card_directory"].insert(card(card_number="B7K334774"))

    def test_blacklist_entries_are_append_only(self, hub):
        hub["blacklist_versions"].insert({"version": 1, "published_at": AT, "note": None})
        hub["blacklist_entries"].insert({"version": 1, "card_number": "188347080",
                                         "action": "add", "reason": "lost"})
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            hub.execute("UPDATE blacklist_entries SET action = 'remove'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            hub.execute("DELETE FROM blacklist_entries")

    def test_a_blacklist_entry_belongs_to_a_published_version(self, hub):
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            hub["blacklist_entries"].insert({"version": 7, "card_number": "188347080",
                                             "action": "add", "reason": "lost"})

    def test_a_message_is_recorded_once_under_its_idempotency_key(self, hub):
        message = {"idempotency_key": "bj:upload:42", "kind": "transit.upload",
                   "from_node": "bj", "to_node": "tj", "received_at": AT,
                   "payload": json.dumps({"records": 3}), "result": None}
        hub["messages"].insert(message)
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            hub["messages"].insert(message)
