"""The host's check of a terminal's request in two steps: ``verify`` reads only (the host API runs it without
its write lock), ``remember_nonce`` is the one write (under the lock)."""

from __future__ import annotations

import pytest

from sbcard.chip import terminal_auth as ta
from sbcard.clock import SystemClock
from sbcard.services.outlets.staff import NotSignedIn
from sbcard.services.terminals import credentials
from sbcard.store.world import open_world
from test_api_terminals_fixes_host import add


def test_verify_writes_nothing_and_the_nonce_is_the_one_write(api_home):
    now = SystemClock().now()
    terminal_id, key = add(api_home, now)
    signed = ta.sign(key, terminal_id, "GET", "/api/v1/host/lists", "", b"", now=now)
    headers = ta.headers_of(signed)
    with open_world(api_home) as world:
        db = world.region("bj")
        before = db.conn.total_changes
        row = credentials.verify(world, headers, method="GET", path="/api/v1/host/lists", query="", body=b"",
                                 now=now)
        assert row["id"] == terminal_id and db.conn.total_changes == before
        assert list(db.query("SELECT * FROM terminal_nonces")) == []
        with pytest.raises(NotSignedIn) as elsewhere:  # looked for in the regions given only
            credentials.verify(world, headers, method="GET", path="/api/v1/host/lists", query="", body=b"",
                               now=now, regions=("tj", "he"))
        assert elsewhere.value.code == "terminal.unknown"
        credentials.remember_nonce(world, row, headers[ta.HEADER_NONCE], now=now)
        assert len(list(db.query("SELECT * FROM terminal_nonces"))) == 1
        with pytest.raises(NotSignedIn) as replayed:
            credentials.remember_nonce(world, row, headers[ta.HEADER_NONCE], now=now)
        assert replayed.value.code == "terminal.replayed"
    assert credentials.operator_node(terminal_id) == "bj"
    assert (credentials.operator_node("tj-bus-0001"), credentials.operator_node("BJH003-0001"),
            credentials.operator_node("nobody-0001")) == ("tj", "bj", None)
