"""The terminals' request MAC (``sbcard.chip.terminal_auth``): what it covers, and the host's check of it."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.chip import terminal_auth as ta

NOW = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
KEY = bytes(range(32))
REQUEST = dict(method="POST", path="/api/v1/host/uploads", query="b=2&a=1", terminal_id="bj-subway-0001",
               timestamp="1740792600", nonce="0123456789abcdef0123456789abcdef", body=b'{"mac":"00"}')


def test_the_mac_is_hmac_sm3_over_the_documented_string():
    from cryptography.hazmat.primitives import hashes, hmac

    text = ta.string_to_sign(**REQUEST)
    assert text.decode().split("\n") == [
        "SBCARD-HMAC-SM3", "POST", "/api/v1/host/uploads", "a=1&b=2", "bj-subway-0001", "1740792600",
        "0123456789abcdef0123456789abcdef", ta.sm3(b'{"mac":"00"}').hex(), ""]
    mac = hmac.HMAC(KEY, hashes.SM3())
    mac.update(text)
    assert ta.request_mac(KEY, **REQUEST) == mac.finalize().hex()
    assert len(ta.request_mac(KEY, **REQUEST)) == ta.MAC_HEX_LEN


@pytest.mark.parametrize("change", [
    {"method": "PUT"}, {"path": "/api/v1/host/synced"}, {"query": "a=1&b=3"}, {"terminal_id": "bj-subway-0002"},
    {"timestamp": "1740792601"}, {"nonce": "0123456789abcdef0123456789abcdee"}, {"body": b'{"mac":"01"}'},
    {"body": b""}, {"idempotency_key": "batch-1"}, {"path": "/api/v1/host/cards/%E9"},
])
def test_every_part_of_the_request_changes_the_mac(change):
    mac = ta.request_mac(KEY, **REQUEST)
    assert ta.mac_matches(KEY, mac, **REQUEST)
    assert not ta.mac_matches(KEY, mac, **{**REQUEST, **change})


def test_another_key_does_not_match_and_the_query_order_does_not_matter():
    mac = ta.request_mac(KEY, **REQUEST)
    assert not ta.mac_matches(bytes(32), mac, **REQUEST)
    assert ta.mac_matches(KEY, mac.upper(), **{**REQUEST, "query": "a=1&b=2"})
    assert ta.canonical_query("since=3&x=a%20b") == "since=3&x=a%20b" == ta.canonical_query("x=a+b&since=3")


def test_sign_gives_the_four_headers_with_unix_seconds_and_a_fresh_nonce():
    one = ta.sign(KEY, "bj-subway-0001", "GET", "/api/v1/host/lists", "", b"", now=NOW)
    two = ta.sign(KEY, "bj-subway-0001", "GET", "/api/v1/host/lists", "", b"", now=NOW)
    assert set(one) == set(ta.HEADERS)
    assert one[ta.HEADER_TIMESTAMP] == str(int(NOW.timestamp())) == "1740792600"
    assert one[ta.HEADER_NONCE] != two[ta.HEADER_NONCE] and ta.NONCE_PATTERN.fullmatch(one[ta.HEADER_NONCE])
    assert ta.mac_matches(KEY, one[ta.HEADER_MAC], "GET", "/api/v1/host/lists", "", "bj-subway-0001",
                          one[ta.HEADER_TIMESTAMP], one[ta.HEADER_NONCE], b"")
    with pytest.raises(ValueError):
        ta.sign(KEY, "t", "GET", "/", "", b"", now=NOW.replace(tzinfo=None))


def test_the_credential_is_derived_per_terminal_number():
    master = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    one = ta.credential_key(master, "110000000001")
    assert len(one) == ta.KEY_LEN and one == ta.credential_key(master, "110000000001".lower())
    assert one != ta.credential_key(master, "110000000002") != ta.credential_key(bytes(16), "110000000001")
    with pytest.raises(ValueError):
        ta.credential_key(master, "1100")


def test_the_skew_is_measured_against_the_hosts_clock():
    stamp = str(int(NOW.timestamp()))
    assert ta.skew_seconds(stamp, NOW) == 0
    assert ta.skew_seconds(stamp, NOW + dt.timedelta(seconds=ta.MAX_SKEW_SECONDS + 1)) == -ta.MAX_SKEW_SECONDS - 1
    assert ta.NONCE_TTL_SECONDS > 2 * ta.MAX_SKEW_SECONDS


def test_a_query_key_given_twice_is_refused_and_the_idempotency_key_is_signed():
    with pytest.raises(ValueError):
        ta.canonical_query("since=1&since=0")
    keyed = ta.request_mac(KEY, **REQUEST, idempotency_key="batch-1")
    assert ta.mac_matches(KEY, keyed, **REQUEST, idempotency_key="batch-1")
    assert not ta.mac_matches(KEY, keyed, **REQUEST, idempotency_key="attacker")
    assert ta.string_to_sign(**REQUEST, idempotency_key="batch-1").decode().split("\n")[-1] == "batch-1"
