"""The host API for terminals refuses malformed signed requests with 4xx, never 500 (docs/api/terminals.md)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from conftest import start_server

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


def _error(response: httpx.Response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["field"]


def test_a_mac_header_that_is_not_hex_is_a_bad_mac(api_home):
    clock = SimClock(SystemClock().now())
    server = start_server(api_home, clock)
    try:
        terminal_id, key = add(api_home, clock.now())
        for mac in ("\u00e9" * 64, "z" * 64, "ab" * 31, "ab" * 33):
            r = send(server, terminal_id, key, "GET", "/api/v1/host/lists", headers={ta.HEADER_MAC: mac})
            assert _error(r) == (401, "terminal.bad_mac", ta.HEADER_MAC), r.text
        assert send(server, terminal_id, key, "GET", "/api/v1/host/lists").status_code == 200
    finally:
        server.stop()
