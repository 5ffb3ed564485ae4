"""A terminal's own database: config, PSAM serial, blacklist copy, the purchase in flight, the log."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sbcard.chip.crypto import Algorithm
from sbcard.chip.purse_record import PurseRecord
from terminals.apps.terminal_state import RECORD_COLUMNS, TerminalConfig, TerminalState, TerminalStateError
from terminals.psam import PsamKeySet

CONFIG = TerminalConfig(terminal_id="bj-subway-0007", operator="bj-subway", node="bj", terminal_no="110000000007",
                        psam_id="BJ-PSAM-000007", created_at="2025-03-01T09:30:00+08:00", station="西直门",
                        station_code="11020001", gate="entry")
KEYS = [PsamKeySet("1100000000000000", b"P" * 16, b"D" * 16, Algorithm.SM4, 1)]


def _record(counter: int, **more) -> PurseRecord:
    return PurseRecord.from_log({"app_serial": "03101000000000000001", "txn_type": 9, "counter": counter, "card_number": "B00000019",
            "issuer_id": "1100000000000000", "issuer_region": "110000", "issuer_node": "bj",
            "amount_fen": 300, "balance_before_fen": 1000, "terminal": CONFIG.terminal_id, "operator": "bj-subway",
            "terminal_no": CONFIG.terminal_no, "terminal_serial": counter + 1, "date_time": "20250301093000",
            "at": "2025-03-01T09:30:00+08:00", "tac": "01020304", "mac2": "05060708", "status": "ok",
            "recovered": None, "kind": "exit", "blacklist_version": 3, "station": "国贸", **more})


@pytest.fixture
def state(tmp_path):
    s = TerminalState.create(tmp_path / "t", CONFIG, KEYS)
    yield s
    s.close()


def test_a_terminal_is_made_once_and_reopens_as_it_was(tmp_path, state):
    assert state.config == CONFIG
    with pytest.raises(TerminalStateError):
        TerminalState.create(tmp_path / "t", CONFIG, KEYS)
    state.close()
    with TerminalState.open(tmp_path / "t") as again:
        assert again.config == CONFIG and again.last_serial() == 0 and again.blacklist_version == 0
        psam = again.psam()
        assert psam.terminal_no == bytes.fromhex("110000000007") and psam.psam_id == "BJ-PSAM-000007"
    with pytest.raises(TerminalStateError):
        TerminalState.open(tmp_path / "none")


def test_the_database_is_wal_with_the_chosen_durability(tmp_path):
    with TerminalState.create(tmp_path / "n", CONFIG, KEYS) as normal:
        assert normal._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert normal._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with TerminalState.create(tmp_path / "f", CONFIG, KEYS, durability="full") as full:
        assert full._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with TerminalState.open(tmp_path / "f") as reopened:
        assert reopened.durability == "full"
        assert reopened._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_the_psam_serial_is_taken_durably(state, tmp_path):
    assert [state.take_serial() for _ in range(3)] == [1, 2, 3]
    state.close()
    with TerminalState.open(tmp_path / "t") as again:
        assert again.take_serial() == 4


def test_the_log_is_append_only_and_keeps_a_repeated_counter(state):
    with state.transaction():
        assert state.append_record(_record(0)) == 1
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        state._conn.execute("UPDATE records SET amount_fen = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        state._conn.execute("DELETE FROM records")
    [record] = state.records()
    assert record["station"] == "国贸" and record["amount_fen"] == 300 and record["seq"] == 1
    assert state.has_record(record["app_serial"], 9, 0) and not state.has_record(record["app_serial"], 9, 1)
    # a card image restored to an older state repeats a counter: both records go to the host, which flags it
    with state.transaction():
        state.append_record(_record(0, terminal_serial=9))
    assert [r["terminal_serial"] for r in state.records()] == [1, 9]
    assert [r.terminal_serial for r in state.purse_records()] == [1, 9]
    assert state.purse_records()[0] == _record(0) and state.purse_records()[0].seq == 1


def test_a_log_row_written_before_the_record_type_reads_as_it_was(state):
    """The old code wrote the dict's columns and the rest as sorted JSON, None values included."""
    old = _record(0).to_log()
    details = {k: v for k, v in old.items() if k not in RECORD_COLUMNS}
    details.update(km=None, rule="bj-subway.distance")
    state._conn.execute(f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}, details) VALUES "
                        f"({', '.join('?' * (len(RECORD_COLUMNS) + 1))})",
                        [old[c] for c in RECORD_COLUMNS] + [json.dumps(details, ensure_ascii=False, sort_keys=True)])
    [logged] = state.records()
    assert logged == {"seq": 1, **{c: old[c] for c in RECORD_COLUMNS}, "km": None, "rule": "bj-subway.distance",
                      "station": "国贸"}
    [typed] = state.purse_records()
    assert typed.kind == "exit" and typed.extra == {"km": None, "rule": "bj-subway.distance", "station": "国贸"}
    assert typed.details == {"issuer_region": "110000", "at": "2025-03-01T09:30:00+08:00", "mac2": "05060708",
                             "kind": "exit", "rule": "bj-subway.distance", "station": "国贸"}  # none empty
    assert PurseRecord.from_log(logged) == typed and typed.to_log() == logged


def test_the_old_loose_form_is_refused_and_the_one_encoding_round_trips():
    canonical = _record(3)
    loose = {**canonical.to_log(), "txn_type": "09", "counter": "3", "terminal_no": CONFIG.terminal_no.lower(),
             "tac": "01020304".lower()}
    with pytest.raises(ValueError, match="old form"):
        PurseRecord.from_log(loose)
    assert PurseRecord.from_host(canonical.host_values(), canonical.details) == canonical


def test_a_rolled_back_transaction_leaves_the_purchase_in_flight_as_it_was(state):
    body = {"app_serial": "03101000000000000001", "counter": 4}
    with state.transaction():
        state.put_pending(body)
    with pytest.raises(RuntimeError), state.transaction():
        state.append_record(_record(4))
        state.drop_pending(body["app_serial"])
        raise RuntimeError("the terminal died")
    assert state.pending_for(body["app_serial"]) == body and state.records() == []
    state.close()
    with TerminalState.open(state.directory) as again:
        assert again.pending() == [body]


def test_uploads_are_ranges_of_the_log(state):
    with state.transaction():
        for counter in range(5):
            state.append_record(_record(counter))
    assert state.unsent_count() == 5
    sent = state.unsent_records(limit=3)
    state.mark_uploaded("B1", sent[0]["seq"], sent[-1]["seq"], len(sent), "2025-03-01T10:00:00+08:00",
                        {"accepted": 3})
    assert [r["counter"] for r in state.unsent_records()] == [3, 4] and state.last_uploaded_seq() == 3
    assert state.uploads()[0]["result"] == {"accepted": 3}
    assert len(state.records()) == 5  # the log itself never changes


def test_the_blacklist_copy_replaces_the_old_one(state):
    assert state.replace_blacklist(4, ["B00000019", "T00000027"], published_at="p", synced_at="s",
                                   revoked_concessions={("T00000035", "elderly_free_ride")}) == 0
    assert state.blacklisted("B00000019") and not state.blacklisted("H00000015") and not state.blacklisted(None)
    assert state.concession_revoked("T00000035", "elderly_free_ride") and state.blacklist_version == 4
    assert not state.concession_revoked("T00000035", "student")
    assert state.replace_blacklist(5, ["T00000027"], published_at="p", synced_at="s2") == 4
    assert not state.blacklisted("B00000019") and state.blacklist_size() == 1
    assert state.concession_revoked("T00000035", "elderly_free_ride")  # not given: kept
    assert state.synced_at == "s2"


def test_a_copy_that_fails_leaves_the_list_as_it_was_and_a_reopened_terminal_holds_it(state, tmp_path):
    state.replace_blacklist(4, ["B00000019"], published_at="p", synced_at="s")
    with pytest.raises(sqlite3.IntegrityError):
        state.replace_blacklist(5, ["T00000027", b"T00000035"], published_at="p", synced_at="s2")  # not text
    assert state.blacklisted("B00000019") and not state.blacklisted("T00000027") and state.blacklist_version == 4
    directory = state.directory
    state.close()
    reopened = TerminalState.open(directory)
    try:
        assert reopened.blacklisted("B00000019") and not reopened.blacklisted("T00000027")
    finally:
        reopened.close()
