"""A terminal's large body (an upload, up to 128 MiB) is let in only once what can be checked without it passed:
the signature's headers, a terminal registered here and not revoked, a fresh timestamp. Before, anybody could make
the service read 128 MiB before the signature was looked at."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from api_world import start_server

from sbcard.api.app import create_app
from sbcard.api.config import ServiceConfig
from sbcard.api.terminal_auth import TerminalGate
from sbcard.chip import terminal_auth as ta
from sbcard.cli.terminals import install_terminal, terminal_dir
from sbcard.clock import SimClock, SystemClock
from sbcard.services.terminals import credentials, register
from sbcard.store.world import open_world
from terminals.apps.terminal_state import TerminalState

UPLOADS = "/api/v1/host/uploads"
LARGE = 5 << 20


def _terminal(home: Path, now: dt.datetime) -> tuple[str, bytes]:
    with open_world(home) as world:
        row = register.add_terminal(world, operator="bj-subway", now=now, install=install_terminal(home, "normal"),
                                    station="西直门")
    with TerminalState.open(terminal_dir(home, row["id"])) as state:
        return row["id"], state.host_credential()


@pytest.fixture
def service(api_home):  # type: ignore[no-untyped-def]
    clock = SimClock(SystemClock().now())
    app = create_app(ServiceConfig(home=api_home, clock=clock))
    terminal_id, key = _terminal(api_home, clock.now())
    return app, clock, terminal_id, key


def _through_gate(app, headers: dict[str, str], length: int = LARGE) -> tuple[int | None, dict | None, bool]:  # type: ignore[no-untyped-def]
    """(status, error, whether the request went on to be read) of one POST to the uploads through the gate."""
    reached = []

    async def inner(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        reached.append(True)

    async def receive() -> dict:
        raise AssertionError("the gate read the body")

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "path": UPLOADS, "raw_path": UPLOADS.encode(), "query_string": b"",
             "headers": raw + [(b"content-length", str(length).encode()), (b"content-type", b"application/json")],
             "app": app}
    asyncio.run(TerminalGate(inner)(scope, receive, send))
    if not sent:
        return None, None, bool(reached)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)["error"], bool(reached)


def test_an_unsigned_or_unknown_terminal_s_large_body_is_refused_unread(service):
    app, clock, terminal_id, key = service
    status, error, reached = _through_gate(app, {})
    assert (status, error["code"], reached) == (401, "terminal.unsigned", False)
    signed = ta.sign(key, "bj-subway-9999", "POST", UPLOADS, "", b"{}", now=clock.now())
    status, error, reached = _through_gate(app, signed)
    assert (status, error["code"], reached) == (401, "terminal.unknown", False)


def test_a_stale_timestamp_or_a_revoked_terminal_is_refused_unread(service, api_home):
    app, clock, terminal_id, key = service
    old = ta.sign(key, terminal_id, "POST", UPLOADS, "", b"{}", now=clock.now() - dt.timedelta(minutes=30))
    status, error, reached = _through_gate(app, old)
    assert (status, error["code"], reached) == (401, "terminal.clock_skew", False)
    with open_world(api_home) as world:
        credentials.revoke(world, terminal_id, now=clock.now(), by="BJ-ADMIN", reason="stolen")
    fresh = ta.sign(key, terminal_id, "POST", UPLOADS, "", b"{}", now=clock.now())
    status, error, reached = _through_gate(app, fresh)
    assert (status, error["code"], reached) == (401, "terminal.revoked", False)


def test_a_live_terminal_signed_now_goes_on_and_a_small_body_is_not_gated(service):
    app, clock, terminal_id, key = service
    fresh = ta.sign(key, terminal_id, "POST", UPLOADS, "", b"{}", now=clock.now())
    assert _through_gate(app, fresh) == (None, None, True)  # its MAC over the body is checked by the route
    assert _through_gate(app, {}, length=1000) == (None, None, True)  # the route refuses it, as before


def test_the_service_refuses_a_large_unsigned_upload_with_401(api_home):
    server = start_server(api_home, SimClock(SystemClock().now()))
    try:
        body = b'{"mac": "00", "records": [' + b" " * (1536 * 1024) + b"]}"
        answer = httpx.post(f"{server.url}{UPLOADS}", content=body, headers={"Content-Type": "application/json"},
                            timeout=30)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "terminal.unsigned"
        assert answer.headers["X-Request-Id"]
    finally:
        server.stop()
