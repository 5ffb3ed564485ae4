"""``sbcard terminal add | list | sync``: the register, the terminal's directory, the blacklist copy."""

from __future__ import annotations

import pytest
from freezegun import freeze_time
from validator_helpers import NOW, rig, validator_template  # noqa: F401

from sbcard.store.world import open_world
from terminals.apps.terminal_state import TerminalState


@pytest.fixture(autouse=True)
def frozen():
    with freeze_time(NOW):
        yield


def test_add_makes_the_terminal_its_psam_and_its_register_row(rig, sbcard):
    code, out, err, added = sbcard("terminal", "add", "--operator", "bj-subway", "--station", "西直门", "--json")
    assert code == 0, err
    assert added["terminal"] == "bj-subway-0001"
    assert (added["operator"], added["station"], added["station_code"], added["node"]) == (
        "bj-subway", "西直门", "11020001", "bj")
    assert added["terminal_no"] == "110000000001" and added["psam_id"] == "BJ-PSAM-000001"
    assert added["blacklist_version"] == 0 and added["gate"] == "both" and added["durability"] == "normal"
    with TerminalState.open(rig.home / "terminals" / "bj-subway-0001") as state:
        assert state.config.terminal_no == "110000000001"
        psam_issuers = {row[0] for row in state._conn.execute("SELECT issuer_id FROM psam_keys")}
        assert psam_issuers == {"1100000000000000", "1200000000000000", "1300000000000000"}
    with open_world(rig.home) as world:
        row = world.region("bj")["terminals"].get("bj-subway-0001")
        assert (row["operator"], row["terminal_no"], row["station"]) == ("bj-subway", "110000000001", "西直门")

    code, out, err, second = sbcard("terminal", "add", "--operator", "tj-bus", "--line", "13", "--json")
    assert code == 0, err
    assert (second["terminal"], second["node"], second["terminal_no"]) == ("tj-bus-0001", "tj", "120000000001")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--operator", "sh-metro"), "unknown operator"),
        (("--operator", "bj-subway"), "needs its --station"),
        (("--operator", "bj-subway", "--station", "不存在"), "no station"),
        (("--operator", "tj-bus", "--line", "9999"), "no tj-bus line"),
        (("--operator", "tj-bus", "--gate", "entry"), "for metro gates"),
        (("--operator", "tj-bus", "--full-fare", "-1"), "--full-fare"),
    ],
)
def test_add_refuses_bad_input_and_records_nothing(rig, sbcard, args, message):
    code, out, err, _ = sbcard("terminal", "add", *args, "--json")
    assert code == 2 and message in err
    with open_world(rig.home) as world:
        assert all(world.region(n)["terminals"].count == 0 for n in ("bj", "tj", "he"))
    assert not any((rig.home / "terminals").iterdir())


def test_list_shows_every_region_and_each_terminals_state(rig, sbcard):
    for args in (("--operator", "tj-metro", "--station", "刘园", "--gate", "entry"), ("--operator", "he-sjz-bus")):
        assert sbcard("terminal", "add", *args, "--json")[0] == 0
    code, out, err, items = sbcard("terminal", "list", "--json")
    assert code == 0, err
    assert [(i["terminal"], i["node"], i["gate"], i["records"], i["unsent"], i["pending"]) for i in items] == [
        ("he-sjz-bus-0001", "he", "both", 0, 0, 0), ("tj-metro-0001", "tj", "entry", 0, 0, 0)]
    code, out, err, _ = sbcard("terminal", "list")
    assert code == 0 and "tj-metro-0001" in out and "刘园" in out


def test_sync_copies_the_hubs_latest_blacklist_and_reports_the_version(rig, sbcard):
    assert sbcard("terminal", "add", "--operator", "bj-bus", "--json")[0] == 0
    rig.blacklist("B00000019", "T00000027")
    version = rig.blacklist("H00000015")
    code, out, err, synced = sbcard("terminal", "sync", "bj-bus-0001", "--json")
    assert code == 0, err
    assert (synced["blacklist_version"], synced["previous_version"], synced["blacklist_size"]) == (version, 0, 3)
    with TerminalState.open(rig.home / "terminals" / "bj-bus-0001") as state:
        assert state.blacklisted("T00000027") and state.blacklist_version == version
    with open_world(rig.home) as world:
        assert world.region("bj")["terminals"].get("bj-bus-0001")["blacklist_version"] == version
    rig.blacklist("T00000027", remove=True)
    code, out, err, synced = sbcard("terminal", "sync", "bj-bus-0001", "--json")
    assert (synced["blacklist_version"], synced["previous_version"], synced["blacklist_size"]) == (
        version + 1, version, 2)


def test_sync_of_an_unknown_terminal_is_refused(rig, sbcard):
    code, out, err, _ = sbcard("terminal", "sync", "bj-bus-0042", "--json")
    assert code == 2 and "no terminal" in err
