"""The operator's host takes a terminal's records once, and clears each with the card's issuer via the hub."""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest
from purse_world import METRO_TERMINAL, NOW, clock, purse_template, purse_world  # noqa: F401

from sbcard.chip.crypto import Algorithm
from sbcard.chip.purse import PurchaseTacKey, purchase_tac
from sbcard.domain.errors import NotFound
from sbcard.services.transit import host as transit_host
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import open_world


@pytest.fixture
def loaded(purse_world):
    """Both holders with ¥100.00 in their purses and the Beijing metro terminal registered."""
    for holder in ("liu", "chen"):
        code, _, err, _ = purse_world.load(holder, "100")
        assert code == 0, err
    purse_world.register_terminal()
    return purse_world


def _taps(pw, holder, fares, *, first_serial=1, start=NOW):
    return [pw.purchase(holder, fare, serial=first_serial + i, when=start + dt.timedelta(minutes=10 * i))
            for i, fare in enumerate(fares)]


def test_records_are_accepted_and_a_second_upload_is_all_duplicates(loaded):
    records = _taps(loaded, "liu", [300, 400, 500])
    result = loaded.upload(records)
    assert (result.sent, result.accepted, result.duplicates, result.rejected, result.flagged) == (3, 3, 0, 0, 0)
    again = loaded.upload(records)
    assert (again.sent, again.accepted, again.duplicates, again.rejected, again.flagged) == (3, 0, 3, 0, 0)
    rows = loaded.transit_records("bj")
    assert [(r["counter"], r["amount_fen"], r["status"]) for r in rows] == [(0, 300, "accepted"), (1, 400, "accepted"),
                                                                             (2, 500, "accepted")]
    assert {r["card_number"] for r in rows} == {loaded.cards["liu"].number}
    # The issuer's side: each purchase once, and its shadow of the purse.
    purchases = loaded.query("bj", "SELECT * FROM purse_purchases ORDER BY counter")
    assert [(p["counter"], p["status"]) for p in purchases] == [(0, "cleared"), (1, "cleared"), (2, "cleared")]
    [shadow] = loaded.query("bj", "SELECT * FROM purse_shadow WHERE app_serial = ?", (loaded.cards["liu"].app_serial,))
    assert shadow["expected_balance_fen"] == 10000 - 1200 == loaded.purse("liu")
    assert shadow["last_offline_counter"] == 2
    uploads = loaded.query("bj", "SELECT sent, accepted, duplicates FROM transit_uploads ORDER BY batch")
    assert uploads == [{"sent": 3, "accepted": 3, "duplicates": 0}, {"sent": 3, "accepted": 0, "duplicates": 3}]


def test_the_same_record_twice_in_one_upload_counts_once(loaded):
    [record] = _taps(loaded, "liu", [300])
    result = loaded.upload([record, record])
    assert (result.sent, result.accepted, result.duplicates) == (2, 1, 1)


def test_a_tianjin_card_in_beijing_is_cleared_by_tianjin_through_the_hub(loaded):
    records = _taps(loaded, "chen", [300, 600])
    result = loaded.upload(records)
    assert (result.accepted, result.rejected) == (2, 0)
    rows = loaded.transit_records("bj")
    assert {(r["issuer_node"], r["card_number"]) for r in rows} == {("tj", loaded.cards["chen"].number)}
    assert len(loaded.query("tj", "SELECT * FROM purse_purchases")) == 2
    assert loaded.query("bj", "SELECT * FROM purse_purchases") == []
    [message] = loaded.query("hub", "SELECT * FROM messages WHERE kind = 'transit.clear'")
    assert (message["from_node"], message["to_node"]) == ("bj", "tj")
    assert json.loads(message["payload"])["records"] == 2
    assert json.loads(message["result"])["cleared"] == 2


def test_a_retried_upload_is_never_processed_twice_by_the_issuer(loaded, monkeypatch):
    """The operator dies after the issuer answered, before its own commit: the retry finds the hub's record."""
    records = _taps(loaded, "chen", [300, 600])
    calls = []
    real = transit_host.clear_purchases

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(transit_host, "clear_purchases", counting)
    real_insert = transit_host.UploadResult

    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(transit_host, "UploadResult", crash)
    with pytest.raises(Crash):
        loaded.upload(records)
    assert loaded.transit_records("bj") == []  # the operator kept nothing
    monkeypatch.setattr(transit_host, "UploadResult", real_insert)
    result = loaded.upload(records)
    assert (result.accepted, result.duplicates) == (2, 0)
    assert len(calls) == 1  # the issuer processed the chunk once; the retry got the recorded answer
    assert len(loaded.query("hub", "SELECT * FROM messages WHERE kind = 'transit.clear'")) == 1
    assert len(loaded.query("tj", "SELECT * FROM purse_purchases")) == 2


def test_records_the_issuer_saw_in_another_chunk_get_their_earlier_verdict(loaded):
    """A different chunk (more records than before) reaches the issuer, which keeps each record once."""
    first = _taps(loaded, "liu", [300])
    forged = attrs.evolve(_taps(loaded, "liu", [200], first_serial=2, start=NOW + dt.timedelta(hours=1))[0],
                          tac="00000000")
    with open_world(loaded.home) as world:
        answer = transit_host.clear_purchases(UnitOfWork(world.region("bj")), first + [forged], from_node="bj", now=NOW)
    assert answer["rejected"] == 1
    result = loaded.upload(first + [forged])  # the same records, through the operator now: earlier verdicts
    assert (result.accepted, result.rejected) == (1, 1)
    assert len(loaded.query("bj", "SELECT * FROM purse_purchases")) == 2


def test_an_unregistered_terminal_is_refused(loaded):
    code, _, err, _ = loaded.run("transit", "upload", "--terminal", "bj-subway-7777", "--json")
    assert code == 2 and "no terminal" in err


def test_the_tac_check_is_the_profiles_formula(loaded):
    for alg in (Algorithm.SM4, Algorithm.DES3):
        checker = PurchaseTacKey(alg, bytes(range(16)))
        for amount, serial in [(0, 0), (1, 1), (300, 0xFFFFFFFF), (99999, 12345)]:
            expected = purchase_tac(alg, bytes(range(16)), amount, 0x09, bytes.fromhex(METRO_TERMINAL[3]),
                                    serial.to_bytes(4, "big"), bytes.fromhex("20250303090000"))
            assert checker.tac(amount, 0x09, bytes.fromhex(METRO_TERMINAL[3]), serial,
                               bytes.fromhex("20250303090000")) == expected
            assert checker.verify(expected, amount, 0x09, bytes.fromhex(METRO_TERMINAL[3]), serial,
                                  bytes.fromhex("20250303090000"))


def test_a_station_batch_of_several_terminals_is_taken_at_once(loaded):
    other = ("bj-subway-9002", "bj-subway", "bj", "110100900002")
    loaded.register_terminal(other)
    records = _taps(loaded, "liu", [300, 400]) + [
        loaded.purchase("chen", 500, serial=1, terminal=other, when=NOW + dt.timedelta(hours=1)),
        loaded.purchase("liu", 600, serial=2, terminal=other, when=NOW + dt.timedelta(hours=2)),
    ]
    macs = {t: loaded.batch_mac([r for r in records if r.terminal == t], t) for t in (METRO_TERMINAL[0], other[0])}
    with open_world(loaded.home) as world:
        result = transit_host.ingest(world, "bj", records, now=NOW, label="station-1", macs=macs)
    assert (result.sent, result.accepted, result.flagged, result.rejected) == (4, 4, 0, 0)
    assert {r["terminal"] for r in loaded.transit_records("bj")} == {METRO_TERMINAL[0], other[0]}
    with open_world(loaded.home) as world:
        again = transit_host.ingest(world, "bj", records, now=NOW, macs=macs)
        assert again.duplicates == 4
        with pytest.raises(NotFound):
            transit_host.ingest(world, "bj", [attrs.evolve(records[0], terminal="bj-subway-0404")], now=NOW,
                                macs=macs)
