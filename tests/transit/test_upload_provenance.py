"""An upload is believed only as far as it can be proven (docs/protections/upload-provenance.md).

The operator's host takes the operator, the region and the terminal from the uploading
terminal's registration, checks each record's card number against its application serial
in the issuer's directory, and believes a batch only with its PSAM's MAC over it.
"""

from __future__ import annotations

import datetime as dt
import shutil

import attrs
import pytest
from purse_world import METRO_TERMINAL, NOW, clock, purse_template, purse_world  # noqa: F401

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip import upload_batch
from sbcard.chip.crypto import Algorithm
from sbcard.chip.psam import BatchMac
from sbcard.chip.purse_record import PurseRecord
from sbcard.domain.errors import RuleRefused
from sbcard.services.transit import host as transit_host
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import open_world
from terminals.psam import MemorySerials, Psam, PsamUploadKey

MIN = dt.timedelta(minutes=10)


def _loaded(pw, *holders: str) -> None:
    for holder in holders:
        code, _, err, _ = pw.load(holder, "50")
        assert code == 0, err


def _taps(pw, holder: str, terminal_id: str, n: int, clock) -> None:
    for _ in range(n):
        code, done = pw.tap(holder, terminal_id)
        assert code == 0, done
        clock.tick(dt.timedelta(minutes=3))


def _edit_log(pw, terminal_id: str, sql: str, *args) -> None:
    """Someone with the terminal's file: the log's append-only trigger removed, a record changed."""
    db = pw.terminal_db(terminal_id)
    try:
        db.execute("DROP TRIGGER records_no_update")
        db.execute(sql, args)
    finally:
        db.close()


def _upload(pw, terminal_id: str):
    return pw.run("transit", "upload", "--terminal", terminal_id, "--json")


# ----------------------------------------------------------------------------- the records' fields


def test_the_honest_path_clears_and_pays_the_registered_operator(purse_world, clock):
    _loaded(purse_world, "liu")
    bus = purse_world.add_terminal("tj-bus")
    _taps(purse_world, "liu", bus, 2, clock)
    sent = purse_world.upload_terminal(bus)
    assert (sent["sent"], sent["accepted"], sent["rejected"], sent["flagged"]) == (2, 2, 0, 0)
    rows = purse_world.transit_records("tj")
    assert {(r["operator"], r["terminal"], r["status"]) for r in rows} == {("tj-bus", bus, "accepted")}
    owed = purse_world.query("bj", "SELECT operator, status FROM purse_purchases")
    assert owed == [{"operator": "tj-bus", "status": "cleared"}] * 2
    assert purse_world.query("tj", "SELECT * FROM transit_upload_refusals") == []


def test_an_operator_edited_in_the_log_is_refused_and_never_paid(purse_world, clock):
    _loaded(purse_world, "liu")
    bus = purse_world.add_terminal("tj-bus")
    _taps(purse_world, "liu", bus, 2, clock)
    _edit_log(purse_world, bus, "UPDATE records SET operator = 'tj-metro' WHERE seq = 2")
    sent = purse_world.upload_terminal(bus)
    assert (sent["sent"], sent["accepted"], sent["rejected"]) == (2, 1, 1)
    [refused] = sent["records"]
    assert refused["counter"] == 1 and refused["status"] == "rejected"
    assert "names operator tj-metro" in refused["reason"] and "registered to tj-bus" in refused["reason"]
    rows = purse_world.transit_records("tj")
    assert [(r["operator"], r["status"]) for r in rows] == [("tj-bus", "accepted"), ("tj-bus", "rejected")]
    assert purse_world.query("bj", "SELECT DISTINCT operator FROM purse_purchases") == [{"operator": "tj-bus"}]
    assert len(purse_world.query("bj", "SELECT * FROM purse_purchases")) == 1  # the edited one never reached the issuer


def test_a_record_naming_another_terminal_is_refused(loaded_host):
    record = attrs.evolve(loaded_host.purchase("liu", 300, serial=1), terminal="bj-subway-9002")
    result = loaded_host.upload([record])
    assert (result.accepted, result.rejected) == (0, 1)
    assert "names terminal bj-subway-9002" in result.records[0]["reason"]


def test_a_card_number_swapped_to_another_real_card_is_refused(purse_world, clock):
    _loaded(purse_world, "liu")
    bus = purse_world.add_terminal("tj-bus")
    _taps(purse_world, "liu", bus, 2, clock)
    chen = purse_world.cards["chen"].number
    _edit_log(purse_world, bus, "UPDATE records SET card_number = ? WHERE seq = 2", chen)
    sent = purse_world.upload_terminal(bus)
    assert (sent["sent"], sent["accepted"], sent["rejected"]) == (2, 1, 1)
    [refused] = sent["records"]
    liu = purse_world.cards["liu"]
    assert refused["status"] == "rejected"
    assert refused["reason"] == (f"card number {chen} is not the card of application serial {liu.app_serial} "
                                 f"(the issuer's card {liu.number}): never booked to another card")
    booked = purse_world.query("tj", "SELECT card_number, status FROM transit_records WHERE status != 'rejected'")
    assert booked == [{"card_number": liu.number, "status": "accepted"}]
    assert purse_world.query("tj", "SELECT * FROM purse_purchases") == []


@pytest.fixture
def loaded_host(purse_world):
    _loaded(purse_world, "liu", "chen")
    purse_world.register_terminal()
    return purse_world


@pytest.mark.parametrize("number", [
    "chen",  # the other region's real card
    "X12345678",  # a card number nobody holds
])
def test_a_card_number_and_a_serial_of_different_cards_are_refused(loaded_host, number):
    number = loaded_host.cards[number].number if number in loaded_host.cards else number
    honest = loaded_host.purchase("liu", 300, serial=1)
    swapped = attrs.evolve(loaded_host.purchase("liu", 400, serial=2, when=NOW + MIN), card_number=number)
    result = loaded_host.upload([honest, swapped])
    assert (result.accepted, result.rejected) == (1, 1)
    [refused] = result.records
    assert refused["counter"] == 1 and "never booked to another card" in refused["reason"]
    assert {p["card_number"] for p in loaded_host.query("bj", "SELECT card_number FROM purse_purchases")} == {
        loaded_host.cards["liu"].number}


# ----------------------------------------------------------------------------- the batch's MAC


@pytest.mark.parametrize("edit", [
    {"amount_fen": 30},
    {"operator": "bj-bus"},
    {"card_number": None},
    {"blacklist_version": 7},
    {"extra": {"station": "西单"}},
    {"kind": "exit"},
])
def test_a_batch_edited_after_its_mac_is_refused_whole(loaded_host, edit):
    records = [loaded_host.purchase("liu", 300, serial=1), loaded_host.purchase("liu", 400, serial=2, when=NOW + MIN)]
    mac = loaded_host.batch_mac(records)
    edited = [records[0], attrs.evolve(records[1], **edit)]
    with pytest.raises(RuleRefused) as refused:
        loaded_host.upload(edited, mac=mac)
    assert refused.value.code == "upload.bad_mac"
    assert "does not verify under terminal bj-subway-9001's upload key" in refused.value.message
    assert loaded_host.transit_records("bj") == []  # nothing of the batch, not even the untouched record
    assert loaded_host.query("bj", "SELECT * FROM transit_uploads") == []
    [kept] = loaded_host.query("bj", "SELECT terminal, sent, code, mac FROM transit_upload_refusals")
    assert kept == {"terminal": METRO_TERMINAL[0], "sent": 2, "code": "upload.bad_mac", "mac": mac}
    assert loaded_host.upload(records, mac=mac).accepted == 2  # the batch as MACed is taken


def test_records_reordered_or_dropped_after_the_mac_are_refused(loaded_host):
    records = [loaded_host.purchase("liu", 300, serial=1), loaded_host.purchase("liu", 400, serial=2, when=NOW + MIN)]
    mac = loaded_host.batch_mac(records)
    for changed in (records[::-1], records[:1], records + records[:1]):
        with pytest.raises(RuleRefused):
            loaded_host.upload(changed, mac=mac)
    assert len(loaded_host.query("bj", "SELECT * FROM transit_upload_refusals")) == 3


@pytest.mark.parametrize("mac, code", [(None, "upload.unauthenticated"), ("", "upload.unauthenticated"),
                                       ("not hex", "upload.bad_mac"), ("00" * 8, "upload.bad_mac")])
def test_a_batch_without_a_valid_mac_is_refused(loaded_host, mac, code):
    record = loaded_host.purchase("liu", 300, serial=1)
    with open_world(loaded_host.home) as world, pytest.raises(RuleRefused) as refused:
        transit_host.upload(world, METRO_TERMINAL[0], [record], now=NOW, mac=mac)
    assert refused.value.code == code
    assert loaded_host.transit_records("bj") == []


def test_a_station_batch_with_one_terminals_mac_wrong_is_refused_whole(loaded_host):
    other = ("bj-subway-9002", "bj-subway", "bj", "110100900002")
    loaded_host.register_terminal(other)
    mine = [loaded_host.purchase("liu", 300, serial=1)]
    theirs = [loaded_host.purchase("chen", 500, serial=1, terminal=other, when=NOW + MIN)]
    macs = {METRO_TERMINAL[0]: loaded_host.batch_mac(mine), other[0]: loaded_host.batch_mac(mine)}  # not theirs
    with open_world(loaded_host.home) as world, pytest.raises(RuleRefused) as refused:
        transit_host.ingest(world, "bj", mine + theirs, now=NOW, macs=macs)
    assert refused.value.code == "upload.bad_mac" and "terminal bj-subway-9002" in refused.value.message
    assert loaded_host.transit_records("bj") == []
    macs[other[0]] = loaded_host.batch_mac(theirs, other[0])
    with open_world(loaded_host.home) as world:
        assert transit_host.ingest(world, "bj", mine + theirs, now=NOW, macs=macs).accepted == 2


def test_another_terminals_log_uploaded_as_this_terminal_is_refused_whole(purse_world, clock):
    _loaded(purse_world, "liu")
    bus, other = purse_world.add_terminal("tj-bus"), purse_world.add_terminal("tj-bus")
    _taps(purse_world, "liu", other, 2, clock)
    target = purse_world.home / "terminals" / bus
    shutil.rmtree(target)
    shutil.copytree(purse_world.home / "terminals" / other, target)  # the other's PSAM and log, as this one's
    code, _, err, _ = _upload(purse_world, bus)
    assert code == 1, err
    assert "does not verify under terminal " + bus in err and "refused whole" in err
    assert purse_world.transit_records("tj") == []
    [kept] = purse_world.query("tj", "SELECT terminal, sent, code FROM transit_upload_refusals")
    assert kept == {"terminal": bus, "sent": 2, "code": "upload.bad_mac"}
    db = purse_world.terminal_db(bus)
    try:
        assert db.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0  # still unsent: nothing was taken
    finally:
        db.close()


def test_a_terminal_made_before_upload_keys_gets_its_key_once_and_uploads(purse_world, clock):
    _loaded(purse_world, "liu")
    bus = purse_world.add_terminal("tj-bus")
    _taps(purse_world, "liu", bus, 1, clock)
    db = purse_world.terminal_db(bus)
    try:
        [made] = db.execute("SELECT algorithm, key_hex FROM psam_upload_key").fetchall()
        db.execute("DROP TABLE psam_upload_key")  # its PSAM as made before upload keys
    finally:
        db.close()
    assert purse_world.upload_terminal(bus)["accepted"] == 1
    db = purse_world.terminal_db(bus)
    try:
        assert db.execute("SELECT algorithm, key_hex FROM psam_upload_key").fetchall() == [made]
    finally:
        db.close()


# ----------------------------------------------------------------------------- keys and the PSAM


def test_an_existing_world_gets_its_upload_master_by_migration(purse_world):
    import sqlite_utils

    from sbcard.store import keystore, schema_region

    db = sqlite_utils.Database(memory=True)
    db.execute("CREATE TABLE issuer_keys (purpose TEXT PRIMARY KEY, algorithm TEXT NOT NULL, key_version INTEGER "
               "NOT NULL, key_hex TEXT NOT NULL, created_at TEXT NOT NULL) STRICT")

    stored = keystore.read_keys(keystore.keystore_path(purse_world.home, "bj"), node="bj", region_code="110000")
    rows = [dict(row) for purpose, row in stored.items() if purpose != "UMK"]  # a world from before the UMK
    db["issuer_keys"].insert_all(rows)
    schema_region._v10_upload_provenance(db)
    [umk] = db.query("SELECT * FROM issuer_keys WHERE purpose = 'UMK'")
    assert (umk["algorithm"], umk["key_version"], len(umk["key_hex"])) == ("SM4", 1, 32)
    assert umk["key_hex"] not in {r["key_hex"] for r in rows}
    assert db["transit_upload_refusals"].exists()


def test_a_new_world_has_an_upload_master_per_region(purse_world):
    from sbcard.store import keystore

    regions = {"bj": "110000", "tj": "120000", "he": "130000"}
    umks = {node: keystore.read_keys(keystore.keystore_path(purse_world.home, node), node=node,
                                     region_code=code)["UMK"]["key_hex"] for node, code in regions.items()}
    assert len(set(umks.values())) == 3


TERMINAL_NO = bytes.fromhex("110100900001")
UPLOAD_KEY = PsamUploadKey(Algorithm.SM4, bytes(range(16)))


def _psam(key: PsamUploadKey | None = UPLOAD_KEY) -> Psam:
    return Psam(TERMINAL_NO, [], MemorySerials(), psam_id="test", upload_key=key)


def test_the_psams_batch_mac_is_the_hosts():
    digest = bytes(range(32))
    mac = BatchMac(TERMINAL_NO, 3, digest).send(_psam())
    data = upload_batch.batch_mac_input(TERMINAL_NO, 3, digest)
    assert mac == upload_batch.batch_mac(Algorithm.SM4, UPLOAD_KEY.key, data) and len(mac) == 8
    assert BatchMac(TERMINAL_NO, 4, digest).send(_psam()) != mac  # the count is MACed
    assert BatchMac(TERMINAL_NO, 3, bytes(32)).send(_psam()) != mac


@pytest.mark.parametrize("psam, data, status", [
    ("keyed", TERMINAL_NO + bytes(36), "9000"),
    ("keyed", bytes.fromhex("110100900002") + bytes(36), f"{sw.CONDITIONS_NOT_SATISFIED:04X}"),  # not its number
    ("keyed", TERMINAL_NO + bytes(35), f"{sw.WRONG_LENGTH:04X}"),
    ("keyless", TERMINAL_NO + bytes(36), f"{sw.KEY_NOT_FOUND:04X}"),  # a PSAM made before upload keys
])
def test_batch_mac_refusals(psam, data, status):
    apdu = bytes((profile.CLA_PROPRIETARY, profile.PsamIns.BATCH_MAC, 0, 0, len(data))) + data + b"\x08"
    answer = _psam(UPLOAD_KEY if psam == "keyed" else None).transmit_raw(apdu)
    assert answer[-2:].hex().upper() == status


def test_the_terminals_digest_is_the_hosts(purse_world, clock):
    """What the terminal MACs (its log's records) is what the host recomputes (the records it reads)."""
    _loaded(purse_world, "liu")
    bus = purse_world.add_terminal("tj-bus")
    _taps(purse_world, "liu", bus, 2, clock)
    from terminals.apps.terminal_state import TerminalState

    with TerminalState.open(purse_world.home / "terminals" / bus) as state:
        records = state.unsent()
        mac = state.sign_batch(records)
    assert len(records) == 2 and [PurseRecord.from_log(r.to_log()) for r in records] == records
    with open_world(purse_world.home) as world:
        row = transit_host.terminal_row(world, bus)[1]
        assert transit_host.expected_batch_mac(UnitOfWork(world.region("tj")), row["terminal_no"], records).hex().upper() == mac
