"""`sbcard init` builds a world once; afterwards it is opened, upgraded, never rebuilt."""

from pathlib import Path

import pytest

from sbcard.domain.errors import NotFound, SbcardError
from sbcard.services.cards.keys import issuer_key_rows
from sbcard.store import schema_region
from sbcard.store.db import content_digest, open_db
from sbcard.store.migrations import Migration, read_meta
from sbcard.store.world import (
    KEY_PURPOSES,
    NODES,
    WorldPaths,
    init_world,
    open_world,
    world_summary,
)


def digests(home: Path) -> dict[str, str]:
    result = {}
    for node in NODES:
        db = open_db(WorldPaths(home).db(node))
        result[node] = content_digest(db)
        db.close()
    return result


def issuer_keys(home: Path, node: str) -> dict[str, str]:
    with open_world(home) as world:
        return {purpose: row["key_hex"] for purpose, row in issuer_key_rows(world.region(node)).items()}


def test_init_lays_out_a_world_of_three_regions_and_a_hub(home, clock):
    report = init_world(home, clock, rng_seed=7)

    assert report.created and report.changed
    assert {"bj.db", "tj.db", "he.db", "hub.db", "cards", "terminals"} <= {
        p.name for p in home.iterdir()
    }
    assert [(n.node, n.region_code) for n in report.nodes] == [
        ("bj", "110000"), ("tj", "120000"), ("he", "130000"), ("hub", None)
    ]
    for node in report.nodes:
        assert node.created and node.schema_version == _latest(node.node) and node.migrations_applied
        assert node.regions_loaded > 200  # all of Jing-Jin-Ji, in every node
        db = open_db(node.path)
        meta = read_meta(db)
        db.close()
        assert meta["kind"] == ("hub" if node.node == "hub" else "region")
        assert meta.get("region_code") == node.region_code


def test_running_init_again_changes_nothing(home, clock):
    init_world(home, clock, rng_seed=7)
    before = digests(home)

    again = init_world(home, clock, rng_seed=7)

    assert again.changed is False and again.created is False
    assert all(not n.changed for n in again.nodes)
    assert [n.regions_loaded for n in again.nodes] == [0, 0, 0, 0]
    assert digests(home) == before


def test_init_corrects_a_damaged_reference_row_and_touches_nothing_else(home, clock):
    init_world(home, clock, rng_seed=7)
    db = open_db(WorldPaths(home).db("tj"))
    db.execute("UPDATE regions SET name = '?' WHERE code = '120101'")
    db.close()

    report = init_world(home, clock, rng_seed=7)

    assert report.changed
    assert [n.regions_loaded for n in report.nodes] == [0, 1, 0, 0]


def test_each_region_gets_its_own_sm4_master_keys(home, clock):
    init_world(home, clock)
    with open_world(home) as world:
        rows = list(issuer_key_rows(world.region("bj")).values())
    assert sorted(r["purpose"] for r in rows) == sorted(KEY_PURPOSES)
    assert all(r["algorithm"] == "SM4" and r["key_version"] == 1 for r in rows)
    assert all(len(bytes.fromhex(r["key_hex"])) == 16 for r in rows)
    assert issuer_keys(home, "bj") != issuer_keys(home, "tj")
    assert len(set(issuer_keys(home, "bj").values())) == len(KEY_PURPOSES)


def test_the_same_seed_gives_the_same_keys(tmp_path, clock):
    init_world(tmp_path / "a", clock, rng_seed=2025)
    init_world(tmp_path / "b", clock, rng_seed=2025)
    init_world(tmp_path / "c", clock, rng_seed=2026)
    for node in ("bj", "tj", "he"):
        assert issuer_keys(tmp_path / "a", node) == issuer_keys(tmp_path / "b", node)
        assert issuer_keys(tmp_path / "a", node) != issuer_keys(tmp_path / "c", node)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_without_a_seed_keys_are_not_reproducible(tmp_path, clock):
    init_world(tmp_path / "a", clock)
    init_world(tmp_path / "b", clock)
    assert issuer_keys(tmp_path / "a", "bj") != issuer_keys(tmp_path / "b", "bj")


def test_existing_keys_are_never_regenerated(home, clock):
    init_world(home, clock, rng_seed=1)
    keys = issuer_keys(home, "he")
    init_world(home, clock, rng_seed=2)
    assert issuer_keys(home, "he") == keys


def test_opening_a_missing_world_says_to_run_init(tmp_path):
    with pytest.raises(NotFound) as refused:
        open_world(tmp_path / "nowhere")
    assert refused.value.code == "world.missing"
    assert refused.value.exit_code == 2
    assert str(refused.value) == f"no world at {tmp_path / 'nowhere'}: run `sbcard init` first"


def test_opening_an_incomplete_world_names_what_is_missing(home, clock):
    init_world(home, clock)
    (home / "tj.db").unlink()
    with pytest.raises(NotFound, match="tj.db") as refused:
        open_world(home)
    assert refused.value.code == "world.incomplete"


def test_a_region_database_swapped_for_another_is_refused(home, clock):
    init_world(home, clock)
    for suffix in ("", "-wal", "-shm"):
        src = home / f"tj.db{suffix}"
        if src.exists():
            (home / f"bj.db{suffix}").write_bytes(src.read_bytes())
    with pytest.raises(SbcardError) as refused:
        open_world(home)
    assert refused.value.code == "store.wrong_region"


def test_opening_a_world_applies_pending_migrations(home, clock, monkeypatch):
    init_world(home, clock)
    nxt = len(schema_region.MIGRATIONS) + 1
    v2 = Migration(nxt, "venues", lambda db: db.execute("CREATE TABLE venues (code TEXT)"))
    monkeypatch.setattr(schema_region, "MIGRATIONS", (*schema_region.MIGRATIONS, v2))

    with open_world(home, clock) as world:
        assert "venues" in world.region("bj").table_names()
        assert world_summary(world)["bj"]["schema_version"] == nxt
        assert world_summary(world)["hub"]["schema_version"] == _latest("hub")


def test_a_world_newer_than_the_code_is_refused(home, clock, monkeypatch):
    nxt = len(schema_region.MIGRATIONS) + 1
    v2 = Migration(nxt, "venues", lambda db: db.execute("CREATE TABLE venues (code TEXT)"))
    monkeypatch.setattr(schema_region, "MIGRATIONS", (*schema_region.MIGRATIONS, v2))
    init_world(home, clock)
    monkeypatch.undo()
    with pytest.raises(SbcardError) as refused:
        open_world(home, clock)
    assert refused.value.code == "store.newer_schema"


def test_the_summary_counts_each_node(home, clock):
    init_world(home, clock)
    with open_world(home) as world:
        summary = world_summary(world)
    assert list(summary) == ["bj", "tj", "he", "hub"]
    bj, hub = summary["bj"], summary["hub"]
    assert bj["region_code"] == "110000"
    assert bj["regions"] == hub["regions"] > 200
    assert (bj["operators"], bj["audit_entries"]) == (0, 0)
    assert (hub["cards"], hub["blacklist_version"]) == (0, 0)


def test_the_report_has_a_stable_json_form(home, clock):
    data = init_world(home, clock, rng_seed=1).to_dict()
    assert list(data) == ["home", "created", "changed", "nodes"]
    assert data["nodes"][0]["keys_generated"] == list(KEY_PURPOSES)
    assert data["nodes"][3]["keys_generated"] == []


def _latest(node: str) -> int:
    from sbcard.store import schema_hub

    return len((schema_hub if node == "hub" else schema_region).MIGRATIONS)
