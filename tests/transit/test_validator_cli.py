"""``sbcard transit tap | log``: the validator from the command line."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time
from validator_helpers import NOW, rig, validator_template  # noqa: F401

TAP_KEYS = {"result", "fare_fen", "balance_fen", "reason", "code", "display", "kind", "rule", "description",
            "full_fare_fen", "card_number", "app_serial", "issuer_node", "terminal", "station", "entry_station",
            "counter", "txn_type", "terminal_serial", "recovered", "at",
            "source", "confidence", "illustrative"}  # where the fare comes from (issue 16)


@pytest.fixture
def clock():
    with freeze_time(NOW) as frozen:
        yield frozen


def _add(sbcard, *args: str) -> str:
    code, out, err, added = sbcard("terminal", "add", *args, "--json")
    assert code == 0, err
    return added["terminal"]


def test_a_journey_tapped_on_the_command_line(rig, sbcard, clock):
    card = rig.card("tj", balance_fen=2000)
    gate_in = _add(sbcard, "--operator", "bj-subway", "--station", "西直门", "--gate", "entry")
    gate_out = _add(sbcard, "--operator", "bj-subway", "--station", "国贸", "--gate", "exit")

    code, out, err, came_in = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", gate_in, "--json")
    assert code == 0, err
    assert set(came_in) == TAP_KEYS
    assert (came_in["result"], came_in["kind"], came_in["fare_fen"], came_in["balance_fen"]) == ("ok", "entry", 0, 2000)
    assert came_in["reason"] is None and came_in["txn_type"] == "09" and came_in["issuer_node"] == "tj"

    clock.tick(dt.timedelta(minutes=25))
    code, out, err, went_out = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", gate_out,
                                      "--json")
    assert code == 0, err
    assert (went_out["fare_fen"], went_out["balance_fen"], went_out["entry_station"]) == (500, 1500, "西直门")

    code, out, err, log = sbcard("transit", "log", "--terminal", gate_out, "--json")
    assert code == 0, err
    [record] = log["records"]
    assert (record["kind"], record["amount_fen"], record["uploaded"], record["issuer_node"]) == ("exit", 500, False, "tj")
    assert log["pending"] == [] and log["psam_serial"] == 1 and log["blacklist_version"] == 0
    code, out, err, _ = sbcard("transit", "log", "--terminal", gate_out)
    assert code == 0 and "exit" in out and "¥5.00" in out


def test_a_refusal_prints_its_reason_and_exits_1(rig, sbcard, clock):
    card = rig.card("bj", balance_fen=100)
    bus = _add(sbcard, "--operator", "tj-bus", "--line", "13")
    code, out, err, refused = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", bus, "--json")
    assert code == 1
    assert (refused["result"], refused["code"], refused["fare_fen"], refused["balance_fen"]) == (
        "refused", "insufficient_balance", 200, 100)
    assert refused["reason"] == "insufficient balance: ¥2.00 needed, ¥1.00 on the card"
    code, out, err, _ = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", bus)
    assert code == 1 and out.startswith("refused: insufficient balance")


def test_a_bus_ride_with_its_distance(rig, sbcard, clock):
    card = rig.card("he")
    bus = _add(sbcard, "--operator", "bj-bus", "--area", "suburb")
    code, out, err, ride = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", bus, "--km", "17",
                                  "--json")
    assert code == 0, err
    assert (ride["fare_fen"], ride["full_fare_fen"], ride["rule"]) == (320, 400, "bj-bus.card-suburb")
    code, out, err, _ = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", bus, "--km", "-3")
    assert code == 2 and "--km" in err


def test_a_card_torn_on_the_command_line_is_completed_at_the_next_tap(rig, sbcard, clock):
    card = rig.card("bj", balance_fen=1000)
    bus = _add(sbcard, "--operator", "tj-bus", "--line", "8")
    code, out, err, _ = sbcard("transit", "tap", "--reader", f"emulator:{card}?tear=4", "--terminal", bus, "--json")
    assert code == 3 and "tap the card again" in err  # torn at DEBIT's commit: paid, no answer
    code, out, err, log = sbcard("transit", "log", "--terminal", bus, "--json")
    assert log["records"] == [] and len(log["pending"]) == 1 and log["pending"][0]["counter"] == 0
    clock.tick(dt.timedelta(seconds=30))
    code, out, err, again = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", bus, "--json")
    assert code == 0, err
    assert (again["result"], again["recovered"], again["fare_fen"], again["balance_fen"]) == ("ok", "prove", 150, 850)
    code, out, err, log = sbcard("transit", "log", "--terminal", bus, "--json")
    assert [r["recovered"] for r in log["records"]] == ["prove"] and log["pending"] == []


def test_tap_on_an_unknown_terminal_is_refused(rig, sbcard, clock):
    card = rig.card("bj")
    code, out, err, _ = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", "bj-bus-0099", "--json")
    assert code == 2 and "no terminal" in err
    code, out, err, _ = sbcard("transit", "log", "--terminal", "../x", "--json")
    assert code == 2


def test_a_blacklisted_card_on_the_command_line(rig, sbcard, clock):
    card = rig.card("tj")
    gate = _add(sbcard, "--operator", "tj-metro", "--station", "刘园")
    rig.blacklist(rig.card_data(card).card_number)
    assert sbcard("terminal", "sync", gate, "--json")[0] == 0
    code, out, err, refused = sbcard("transit", "tap", "--reader", f"emulator:{card}", "--terminal", gate, "--json")
    assert code == 1 and refused["code"] == "blacklisted" and rig.locked(card)
    code, out, err, log = sbcard("transit", "log", "--terminal", gate, "--json")
    assert [e["kind"] for e in log["events"]] == ["card_blocked"]
