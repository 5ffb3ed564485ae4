"""Who is calling the host API: a terminal, by the MAC over its request (docs/api/terminals.md).

``terminal_call`` is the dependency of every ``/api/v1/host/…`` route: it reads the body's
bytes as they came (the MAC covers their SM3), checks the four ``X-Sbcard-*`` headers
with ``sbcard.services.terminals.credentials.verify`` (no lock: the lookup in the regions
this process serves, the MAC, the clock) then ``remember_nonce`` under the write lock; a
terminal of a region served elsewhere is 421 before any of it, its body unread (by its id's operator; the
``TerminalGate`` already answers so), and gives the route a ``Call`` whose caller is ``terminal:ID`` and
whose node is the terminal's region (where its Idempotency-Keys are kept). Any failure is
401 with the error shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from sbcard.api.auth import node_elsewhere, require_node_served
from sbcard.api.calls import IDEMPOTENCY_HEADER, Call, _retrying, service_of
from sbcard.api.errors import sbcard_error_response
from sbcard.api.limits import JSON_LIMIT
from sbcard.chip import terminal_auth
from sbcard.domain.errors import SbcardError
from sbcard.services.terminals import credentials

HOST_PREFIX = "/api/v1/host/"


class TerminalGate:
    """ASGI, before a byte of a terminal's body is read, whatever the method: a terminal of a region this process
    does not serve is answered 421 (by its id's operator, no database: ``credentials.operator_node``), so the
    header alone never makes a node's process read a body it will not take; a body over 1 MiB, or chunked (of no
    stated length), is let in only once what can be checked without it passed — the signature's headers, the
    terminal registered here and not revoked, its timestamp fresh (``credentials.precheck``) — 401 otherwise.
    So only a live terminal's request, signed now, makes the service take in an upload of up to 128 MiB
    (``limits.PATH_LIMITS``; any other host path is held to 1 MiB there); its MAC over the body is checked once
    the body is in (``terminal_call``). A request with neither Content-Length nor Transfer-Encoding has no body
    (HTTP/1.1), so a plain GET costs no lookup here."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(HOST_PREFIX):
            headers = Headers(scope=scope)
            refusal = _elsewhere(scope["app"], headers)
            if refusal is None and _may_be_large(headers):
                refusal = await run_in_threadpool(_precheck, scope["app"], headers)
            if refusal is not None:
                await sbcard_error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _may_be_large(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return not (length.isdigit() and int(length) <= JSON_LIMIT)
    return "transfer-encoding" in headers


def _elsewhere(app: Any, headers: Headers) -> SbcardError | None:
    """421 for a terminal whose region this process does not serve (``require_node_served``'s answer)."""
    terminal_id = headers.get(terminal_auth.HEADER_TERMINAL)
    node = credentials.operator_node(terminal_id) if terminal_id else None
    if node is None:
        return None
    return node_elsewhere(app.state.service.config, node)


def _precheck(app: Any, headers: Headers) -> SbcardError | None:
    service = app.state.service
    signed = terminal_auth.headers_of(headers)
    try:
        credentials.precheck(service.worlds.world(), signed, now=service.config.clock.now(),
                             regions=service.config.regions)
    except SbcardError as refusal:
        return refusal
    return None


async def terminal_call(request: Request) -> Call:
    service = service_of(request)
    headers = terminal_auth.headers_of(request.headers)
    terminal_id = headers.get(terminal_auth.HEADER_TERMINAL)
    if terminal_id:  # another region's terminal is sent where it is served before any work (its body, its database)
        node = credentials.operator_node(terminal_id)
        if node is not None:
            require_node_served(request, node)
    body = await request.body()
    now = service.config.clock.now()
    # the path and the query as they came on the wire (percent-encoding and all), as the terminal signed them
    raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    idempotency_key = request.headers.get(IDEMPOTENCY_HEADER, "")

    def check() -> dict[str, Any]:
        # the lookup, the KDF and the MAC read only: no lock; the nonce alone is written
        world = service.worlds.world()
        row = credentials.verify(world, headers, method=request.method, path=raw_path, query=query, body=body,
                                 now=now, regions=service.config.regions, idempotency_key=idempotency_key)
        # one short transaction of its own, queued at the region database's gate: not behind the region's
        # use cases (an upload holds its region's lock for seconds; the nonce must not wait for it)
        _retrying(world, lambda: credentials.remember_nonce(
            world, row, str(headers[terminal_auth.HEADER_NONCE]), now=now))
        return row

    row = await run_in_threadpool(check)
    require_node_served(request, row["node"])
    request.state.caller = f"terminal:{row['id']}"
    call = Call(request=request, service=service, caller=f"terminal:{row['id']}", node=row["node"])
    request.state.terminal = row
    return call


def terminal_of(call: Call) -> dict[str, Any]:
    """The register row of the call's terminal."""
    return call.request.state.terminal
