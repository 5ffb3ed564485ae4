"""The whole road of a tap, on the command line: a Tianjin card issued and loaded, ridden on
the Beijing subway (one exit torn and completed at the next tap), the log uploaded to the
Beijing operator's host and its TACs accepted by the Tianjin issuer — once each."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time
from world_template import make_template

from sbcard.clock import BEIJING

NOW = dt.datetime(2025, 3, 3, 8, 0, tzinfo=BEIJING)
STAFF = {"TJ-C1": ("李娜", "counter", "120103", "tj")}
HOLDER = {"citizen_id": "120103198001011237", "name": "张三", "region": "120103", "insurance": "employee"}


@pytest.fixture(scope="module")
def clearing_template(tmp_path_factory):
    return make_template(tmp_path_factory, "validator-clearing", seed=45, now=NOW, staff=STAFF, people=[("tj", HOLDER)])


@pytest.fixture
def home(tmp_path, clearing_template):
    import shutil

    copy = tmp_path / "world"
    shutil.copytree(clearing_template, copy)
    return copy


def _ok(result):
    code, out, err, data = result
    assert code == 0, err
    return data


def test_a_tianjin_card_on_the_beijing_subway_is_cleared_with_its_issuer(home, sbcard):
    with freeze_time(NOW) as clock:
        blank = _ok(sbcard("outlet", "stock", "receive", "TJ-120103-01", "--count", "1", "--operator", "TJ-C1",
                           "--json"))["paths"][0]
        applied = _ok(sbcard("card", "apply", "--citizen-id", HOLDER["citizen_id"], "--outlet", "TJ-120103-01",
                             "--operator", "TJ-C1", "--json"))
        card = _ok(sbcard("card", "issue", applied["application_id"], "--reader", f"emulator:{blank}", "--operator",
                          "TJ-C1", "--json"))["card_number"]
        _ok(sbcard("card", "activate", card, "--pin", "147258", "--operator", "TJ-C1", "--reader", f"emulator:{blank}",
                   "--json"))
        _ok(sbcard("account", "deposit", card, "--amount", "100", "--operator", "TJ-C1", "--outlet", "TJ-120103-02",
                   "--json"))
        assert _ok(sbcard("transit", "load", "--reader", f"emulator:{blank}", "--amount", "30", "--operator", "TJ-C1",
                          "--outlet", "TJ-120103-01", "--json"))["balance_fen"] == 3000
        gate_in = _ok(sbcard("terminal", "add", "--operator", "bj-subway", "--station", "西直门", "--gate", "entry",
                             "--json"))["terminal"]
        gate_out = _ok(sbcard("terminal", "add", "--operator", "bj-subway", "--station", "国贸", "--gate", "exit",
                              "--json"))["terminal"]

        for trip in range(2):
            clock.tick(dt.timedelta(hours=1))
            entered = _ok(sbcard("transit", "tap", "--reader", f"emulator:{blank}", "--terminal", gate_in, "--json"))
            assert entered["issuer_node"] == "tj" and entered["card_number"] == card
            clock.tick(dt.timedelta(minutes=30))
            spec = f"emulator:{blank}?tear=5" if trip == 1 else f"emulator:{blank}"  # the 2nd exit: torn at its commit
            code, out, err, left = sbcard("transit", "tap", "--reader", spec, "--terminal", gate_out, "--json")
            if trip == 1:
                assert code == 3
                clock.tick(dt.timedelta(seconds=20))
                left = _ok(sbcard("transit", "tap", "--reader", f"emulator:{blank}", "--terminal", gate_out, "--json"))
                assert left["recovered"] == "prove"
            assert left["fare_fen"] == 500
        assert left["balance_fen"] == 2000

        for terminal in (gate_in, gate_out):
            sent = _ok(sbcard("transit", "upload", "--terminal", terminal, "--json"))
            assert (sent["sent"], sent["accepted"], sent["rejected"], sent["duplicates"]) == (2, 2, 0, 0), sent
            again = _ok(sbcard("transit", "upload", "--terminal", terminal, "--json"))
            assert again["sent"] == 0  # the terminal remembers what its host took
        log = _ok(sbcard("transit", "log", "--terminal", gate_out, "--json"))
        assert [r["uploaded"] for r in log["records"]] == [True, True] and log["pending"] == []
