"""The host API for terminals refuses malformed signed requests with 4xx, never 500 (docs/api/terminals.md)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from api_world import start_server

from sbcard.chip import terminal_auth as ta
from sbcard.cli.terminals import install_terminal, terminal_dir
from sbcard.clock import SimClock, SystemClock
from sbcard.services.terminals import register
from sbcard.store.world import open_world
from terminals.apps.terminal_state import TerminalState


def add(home: Path, now, operator: str = "bj-subway", **options) -> tuple[str, bytes]:
    if operator == "bj-subway":
        options.setdefault("station", "西直门")
    with open_world(home) as world:
        row = register.add_terminal(world, operator=operator, now=now, install=install_terminal(home, "normal"),
                                    **options)
    with TerminalState.open(terminal_dir(home, row["id"])) as state:
        return row["id"], state.host_credential()


def send(server, terminal_id: str, key: bytes, method: str, path: str, body: bytes = b"", query: str = "",
         headers: dict | None = None, now=None) -> httpx.Response:
    signed = ta.sign(key, terminal_id, method, path, query, body, now=now or server.clock.now())
    signed.update(headers or {})
    if body:
        signed.setdefault("Content-Type", "application/json")
    return httpx.request(method, f"{server.url}{path}" + (f"?{query}" if query else ""),
                         headers={k: v.encode("latin-1") for k, v in signed.items()}, content=body or None,
                         timeout=60)


@pytest.fixture
def gate(api_home):
    """A service on the real clock (signatures are checked against it) and a Beijing gate registered in it:
    (server, clock, terminal id, its credential); the server stopped after the test."""
    clock = SimClock(SystemClock().now())
    server = start_server(api_home, clock)
    try:
        terminal_id, key = add(api_home, clock.now())
        yield server, clock, terminal_id, key
    finally:
        server.stop()


def _error(response: httpx.Response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["field"]


def test_a_mac_header_that_is_not_hex_is_a_bad_mac(api_home, gate):
    server, clock, terminal_id, key = gate
    for mac in ("\u00e9" * 64, "z" * 64, "ab" * 31, "ab" * 33):
        r = send(server, terminal_id, key, "GET", "/api/v1/host/lists", headers={ta.HEADER_MAC: mac})
        assert _error(r) == (401, "terminal.bad_mac", ta.HEADER_MAC), r.text
    assert send(server, terminal_id, key, "GET", "/api/v1/host/lists").status_code == 200


def _record(terminal_no: str, serial: int = 1) -> list:
    """A record's believed values (``HOST_FIELDS`` order), of terminal ``terminal_no``."""
    return ["03103000000000000001", 9, 5, terminal_no.upper(), serial, 200, 3000, "20261208090000", "0011AABB",
            "1200000000000000", "tj", "8612000000000001", "bj-subway-0001", "bj-subway", 0, "ok"]


def _macd_upload(upload_key: bytes, terminal_no: str, values: list, details=None) -> bytes:
    """An upload body whose batch MAC is right for its records, whatever they hold (as a PSAM would MAC them)."""
    from sbcard.chip import upload_batch
    from sbcard.chip.crypto import Algorithm

    digest = upload_batch.batch_digest([upload_batch.record_line(tuple(values), details)])
    mac = upload_batch.batch_mac(Algorithm.SM4, upload_key,
                                 upload_batch.batch_mac_input(bytes.fromhex(terminal_no), 1, digest))
    return json.dumps({"mac": mac.hex().upper(), "records": [{"values": values, "details": details}]}).encode()


def test_a_macd_upload_with_wrong_field_types_is_422_naming_the_field(api_home, gate):
    server, clock, terminal_id, key = gate
    with open_world(api_home) as world:
        terminal_no = register.get_terminal(world, terminal_id)["terminal_no"]
    with open_world(api_home) as world:
        upload_key = register.upload_key(world, terminal_id).key
    cases = [(1, True, "txn_type"), (1, 7, "txn_type"), (2, True, "counter"), (2, 1 << 20, "counter"),
             (4, 1.5, "terminal_serial"), (5, -5, "amount_fen"), (5, "200", "amount_fen"),
             (5, 10**30, "amount_fen"), (6, None, "balance_before_fen"), (0, None, "app_serial"),
             (0, "0310300000000000000x", "app_serial"), (7, "2026", "date_time"), (8, [1], "tac"),
             (12, {"a": 1}, "terminal"), (14, True, "blacklist_version"), (15, "zz", "status")]
    for i, value, field in cases:
        values = _record(terminal_no)
        values[i] = value
        r = send(server, terminal_id, key, "POST", "/api/v1/host/uploads",
                 _macd_upload(upload_key, terminal_no, values))
        assert _error(r) == (422, "upload.record_invalid", f"records[0].{field}"), (i, value, r.text)
        assert "Error" not in r.json()["error"]["message"] and "'" not in r.json()["error"]["message"]
    r = send(server, terminal_id, key, "POST", "/api/v1/host/uploads",
             _macd_upload(upload_key, terminal_no, _record(terminal_no), {"mac2": 5}))
    assert _error(r) == (422, "upload.record_invalid", "records[0].details.mac2"), r.text
    r = send(server, terminal_id, key, "POST", "/api/v1/host/uploads",
             _macd_upload(upload_key, terminal_no, _record(terminal_no)))
    assert r.status_code == 200 and r.json()["sent"] == 1, r.text


def test_a_backlog_of_5000_records_uploads_over_http(api_home, gate):
    """Beyond the 1 MiB of a JSON body: /host/uploads takes a batch up to its MAX_BATCH records."""
    from sbcard.chip import upload_batch
    from sbcard.chip.crypto import Algorithm
    from sbcard.chip.purse_record import PurseRecord, batch_digest
    from terminals.apps.http_host import HttpHost

    server, clock, terminal_id, key = gate
    with open_world(api_home) as world:
        terminal_no = register.get_terminal(world, terminal_id)["terminal_no"]
        upload_key = register.upload_key(world, terminal_id).key
    records = [PurseRecord.from_host(_record(terminal_no, serial), {
        "issuer_region": "120000", "at": "2026-12-08T09:00:00+08:00", "mac2": "0011AABB", "kind": "ride",
        "station": "西直门", "fare_rule": "distance"}) for serial in range(1, 5001)]
    mac = upload_batch.batch_mac(Algorithm.SM4, upload_key, upload_batch.batch_mac_input(
        bytes.fromhex(terminal_no), len(records), batch_digest(records))).hex().upper()
    body = {"mac": mac, "records": [{"values": list(r.host_values()), "details": dict(r.details)}
                                    for r in records]}
    assert len(json.dumps(body, ensure_ascii=False).encode()) > 1 << 20
    with HttpHost(server.url, terminal_id, key, clock=clock.now) as host:
        answer = host.upload(terminal_id, records, mac=mac, now=clock.now())
    assert answer.sent == 5000
    assert answer.accepted + answer.duplicates + answer.rejected == 5000


def test_a_one_node_process_sends_another_regions_terminal_away_before_any_work(api_home):
    clock = SimClock(SystemClock().now())
    terminal_id, key = add(api_home, clock.now())  # a Beijing gate
    for node in ("tj", "hub"):
        server = start_server(api_home, clock, node=node)
        try:
            r = send(server, terminal_id, key, "GET", "/api/v1/host/lists")
            assert _error(r) == (421, "node.elsewhere", "node"), r.text
            r = send(server, "tj-bus-0099", key, "GET", "/api/v1/host/lists")
            assert _error(r)[:2] == ((421, "node.elsewhere") if node == "hub" else (401, "terminal.unknown")), r.text
        finally:
            server.stop()
    with open_world(api_home) as world:  # no nonce of the Beijing terminal was spent by the other processes
        assert list(world.region("bj").query("SELECT * FROM terminal_nonces")) == []
    hub = start_server(api_home, clock, node="hub")
    server = start_server(api_home, clock, node="bj", peers={"hub": hub.url})  # its own terminal: served, lists asked
    try:                                                                          # of the hub's process over HTTP
        assert send(server, terminal_id, key, "GET", "/api/v1/host/lists").status_code == 200
    finally:
        server.stop()
        hub.stop()


def test_the_signature_covers_the_idempotency_key_the_raw_path_and_one_value_per_query_key(api_home, gate):
    server, clock, terminal_id, key = gate
    body = json.dumps({"version": 0}).encode()
    # a key swapped on the way (signed without one, or with another) is a bad MAC
    r = send(server, terminal_id, key, "POST", "/api/v1/host/synced", body, headers={"Idempotency-Key": "x-1"})
    assert _error(r) == (401, "terminal.bad_mac", ta.HEADER_MAC), r.text
    now = server.clock.now()
    signed = ta.sign(key, terminal_id, "POST", "/api/v1/host/synced", "", body, now=now, idempotency_key="x-1")
    r = httpx.post(f"{server.url}/api/v1/host/synced", content=body, timeout=60,
                   headers={**signed, "Idempotency-Key": "x-2", "Content-Type": "application/json"})
    assert _error(r) == (401, "terminal.bad_mac", ta.HEADER_MAC), r.text
    r = httpx.post(f"{server.url}/api/v1/host/synced", content=body, timeout=60,
                   headers={**signed, "Idempotency-Key": "x-1", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    # a query key twice: refused, whichever value was signed
    signed = ta.sign(key, terminal_id, "GET", "/api/v1/host/lists", "since=0", b"", now=server.clock.now())
    r = httpx.get(f"{server.url}/api/v1/host/lists?since=0&since=99", headers=signed, timeout=60)
    assert _error(r) == (401, "terminal.query_invalid", "query"), r.text
    # the path is signed as sent: percent-encoded
    r = send(server, terminal_id, key, "GET", "/api/v1/host/cards/%E9")
    assert _error(r)[:2] == (404, "card.unknown"), r.text
    r = send(server, terminal_id, key, "GET", "/api/v1/host/cards/%65")  # an 'e' sent encoded, signed so
    assert _error(r)[:2] == (404, "card.unknown"), r.text


def test_a_batch_mac_that_is_not_hex_is_422(api_home, gate):
    server, clock, terminal_id, key = gate
    for mac in ("zz" * 8, "\u00e9" * 16, "0123456789abcdeg"):
        r = send(server, terminal_id, key, "POST", "/api/v1/host/uploads",
                 json.dumps({"mac": mac, "records": []}).encode())
        assert _error(r) == (422, "upload.mac_invalid", "mac"), r.text


def test_the_upload_key_is_wrapped_under_derived_keys_and_not_served_once_the_terminal_uploaded(api_home, gate):
    from sbcard.chip.crypto import Algorithm, decrypt_ecb
    from terminals.apps.http_host import HostRefused, HttpHost

    server, clock, terminal_id, key = gate
    with open_world(api_home) as world:
        expected = register.upload_key(world, terminal_id).key
        terminal_no = register.get_terminal(world, terminal_id)["terminal_no"]
    answer = send(server, terminal_id, key, "GET", "/api/v1/host/upload-key").json()
    assert decrypt_ecb(Algorithm.SM4, key[:16], bytes.fromhex(answer["wrapped_key"])) != expected
    assert ta.unwrap_upload_key(key, terminal_id, answer["algorithm"], answer["wrapped_key"],
                                answer["check"]) == expected
    with HttpHost(server.url, terminal_id, key, clock=clock.now) as host:
        assert host.upload_key(terminal_id).key == expected
        # an answer whose check is not the credential's (forged on the way) is not taken
        import httpx as _httpx
        original = _httpx.Client.request

        def forged(self, method, url, **kw):
            response = original(self, method, url, **kw)
            if str(url).endswith("/upload-key"):
                data = {**response.json(), "wrapped_key": "00" * 16}
                return _httpx.Response(200, json=data)
            return response

        _httpx.Client.request = forged
        try:
            try:
                host.upload_key(terminal_id)
                raise AssertionError("a forged upload key was taken")
            except HostRefused as refused:
                assert refused.code == "host.upload_key_forged"
        finally:
            _httpx.Client.request = original
    r = send(server, terminal_id, key, "POST", "/api/v1/host/uploads",
             _macd_upload(expected, terminal_no, _record(terminal_no)))
    assert r.status_code == 200, r.text
    r = send(server, terminal_id, key, "GET", "/api/v1/host/upload-key")
    assert _error(r) == (409, "terminal.upload_key_held", "terminal"), r.text
    with open_world(api_home) as world:
        served = list(world.region("bj").query(
            "SELECT * FROM audit_log WHERE action = 'terminal_upload_key' AND subject = ?", [terminal_id]))
    assert len(served) == 3
