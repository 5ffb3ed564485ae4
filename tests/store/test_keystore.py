"""Keys are not in clear in the region databases: each region's masters are sealed in ``<node>.keys``.

See docs/protections/world-and-keys.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from world_template import cli

from sbcard.services.cards.keys import issuer_key_rows, issuer_masters
from sbcard.store import keystore
from sbcard.store.db import open_db
from sbcard.store.world import KEY_PURPOSES, REGION_NODES, WorldPaths, init_world, open_world

OWN_KEK = "8F3A" * 16  # 32 bytes of the operator's own KEK, as hex
OTHER_KEK = "11" * 32


def _keys(home: Path, node: str) -> dict[str, str]:
    with open_world(home) as world:
        return {purpose: row["key_hex"] for purpose, row in issuer_key_rows(world.region(node)).items()}


def _cells(db_path: Path) -> list[str]:
    """Every value of every row of every table of the database, as text."""
    db = open_db(db_path)
    try:
        return [str(value) for table in db.table_names() for row in db[table].rows for value in row.values()]
    finally:
        db.close()


def test_every_region_has_its_keys_in_its_own_store(home, clock) -> None:
    init_world(home, clock, rng_seed=7)
    for node in REGION_NODES:
        assert keystore.keystore_path(home, node).is_file()
        assert sorted(_keys(home, node)) == sorted(KEY_PURPOSES)
    assert _keys(home, "bj") != _keys(home, "tj")


def test_no_key_is_in_the_region_database_not_in_a_table_nor_in_the_file(home, clock) -> None:
    init_world(home, clock, rng_seed=7)
    for node in REGION_NODES:
        secrets = set(_keys(home, node).values())
        db_path = WorldPaths(home).db(node)
        with open_world(home) as world:
            assert "issuer_keys" not in world.region(node).table_names()
        cells = _cells(db_path)
        assert not [c for c in cells if any(s in c.upper() for s in secrets)]
        raw = db_path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in raw and secret.lower().encode() not in raw
            assert bytes.fromhex(secret) not in raw


def test_the_store_holds_no_key_in_clear(home, clock) -> None:
    init_world(home, clock, rng_seed=7)
    text = keystore.keystore_path(home, "bj").read_text()
    document = json.loads(text)
    assert (document["format"], document["node"], document["kek"]) == ("sbcard-keystore/1", "bj",
                                                                       "simulation-default")
    assert not [s for s in _keys(home, "bj").values() if s in text.upper()]


def test_a_world_sealed_under_its_own_kek_opens_with_it_and_only_with_it(home, clock, monkeypatch) -> None:
    monkeypatch.setenv("SBCARD_KEK", OWN_KEK)
    init_world(home, clock, rng_seed=7)
    assert json.loads(keystore.keystore_path(home, "he").read_text())["kek"] == "given"
    keys = _keys(home, "he")
    kek_file = home.parent / "kek.hex"
    kek_file.write_text(OWN_KEK.lower() + "\n")
    monkeypatch.delenv("SBCARD_KEK")
    monkeypatch.setenv("SBCARD_KEK_FILE", str(kek_file))
    assert _keys(home, "he") == keys


@pytest.mark.parametrize(("env", "code", "says"), [
    ({"SBCARD_KEK": OTHER_KEK}, 2, "error: SBCARD_KEK: the key-encryption key does not open key store"),
    ({}, 2, "error: SBCARD_KEK: the key-encryption key does not open key store"),
    ({"SBCARD_KEK": "not hex"}, 2, "error: SBCARD_KEK: the key-encryption key must be 32 bytes"),
    ({"SBCARD_KEK": "ab" * 16}, 2, "error: SBCARD_KEK: the key-encryption key must be 32 bytes"),
    ({"SBCARD_KEK": OWN_KEK, "SBCARD_KEK_FILE": "/etc/kek"}, 2, "error: SBCARD_KEK: give the key-encryption key once"),
    ({"SBCARD_KEK_FILE": "/nonexistent/kek.hex"}, 2, "error: SBCARD_KEK_FILE: cannot read the key-encryption key"),
])
def test_a_wrong_or_malformed_kek_is_one_clear_line(home, clock, monkeypatch, env, code, says) -> None:
    monkeypatch.setenv("SBCARD_KEK", OWN_KEK)
    init_world(home, clock, rng_seed=7)
    monkeypatch.delenv("SBCARD_KEK")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exit_code, out, err, _ = cli(home, "init")
    assert exit_code == code
    assert err.startswith(says) and err.count("\n") == 1 and "Traceback" not in err


def test_the_hint_says_which_kek_sealed_the_store(home, clock, monkeypatch) -> None:
    init_world(home, clock, rng_seed=7)  # the simulation default
    monkeypatch.setenv("SBCARD_KEK", OTHER_KEK)
    _, _, err, _ = cli(home, "init")
    assert "sealed under the simulation default: unset SBCARD_KEK and SBCARD_KEK_FILE" in err


def test_a_store_sealed_for_another_region_is_refused(home, clock) -> None:
    init_world(home, clock, rng_seed=7)
    paths = WorldPaths(home)
    keystore.keystore_path(home, "tj").write_bytes(keystore.keystore_path(home, "bj").read_bytes())
    exit_code, _, err, _ = cli(home, "init")
    assert exit_code == 3 and "belongs to bj (110000), not tj (120000)" in err
    assert paths.db("tj").is_file()


def _make_old(home: Path, node: str, keys: dict[str, str]) -> None:
    """Turn ``node``'s database back into schema 11, with its keys in clear in ``issuer_keys``."""
    db = open_db(WorldPaths(home).db(node))
    try:
        db.executescript("""
            DROP TRIGGER schema_migrations_no_delete;
            DELETE FROM schema_migrations WHERE version >= 12;
            UPDATE schema_meta SET value = '11' WHERE key = 'schema_version';
            CREATE TABLE issuer_keys (purpose TEXT PRIMARY KEY, algorithm TEXT NOT NULL, key_version INTEGER NOT NULL,
                                      key_hex TEXT NOT NULL, created_at TEXT NOT NULL) STRICT;
        """)
        db["issuer_keys"].insert_all({"purpose": p, "algorithm": "SM4", "key_version": 1, "key_hex": k,
                                      "created_at": "2025-03-01T09:30:00+08:00"} for p, k in keys.items())
    finally:
        db.close()
    keystore.keystore_path(home, node).unlink()


def test_the_migration_moves_an_old_worlds_keys_out_and_drops_the_table(home, clock) -> None:
    init_world(home, clock, rng_seed=7)
    keys = _keys(home, "tj")
    with open_world(home) as world:
        masters = issuer_masters(world.region("tj"))
    _make_old(home, "tj", keys)
    with open_world(home) as world:  # migrates
        db = world.region("tj")
        assert "issuer_keys" not in db.table_names()
        assert issuer_masters(db) == masters
    assert _keys(home, "tj") == keys
    raw = WorldPaths(home).db("tj").read_bytes()
    assert not [k for k in keys.values() if k.encode() in raw]


def test_init_refuses_new_keys_for_a_region_that_lost_its_store_after_issuing(home, clock) -> None:
    init_world(home, clock, rng_seed=7)
    db = open_db(WorldPaths(home).db("bj"))
    try:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("INSERT INTO cards (card_number, card_id_code, citizen_id, application_id, chip_serial, app_serial, "
                   "status, issue_date, expiry_date, outlet, created_at, updated_at) VALUES ('188347080', ?, "
                   "'320223195302147992', 'A1', '8611000000000001', ?, 'active', '2025-03-01', '2035-03-01', "
                   "'BJ-110105-01', 'x', 'x')", ["1" * 32, "1" * 20])
    finally:
        db.close()
    keystore.keystore_path(home, "bj").unlink()
    exit_code, _, err, _ = cli(home, "init")
    assert exit_code == 3 and "has issued cards but its key store" in err
    assert not keystore.keystore_path(home, "bj").exists()
