"""One call of a route: who, when, and the world under the rules for writing.

``Call.write`` is how every state change runs: under the process's write lock (one use
case writes at a time, so concurrent clients queue instead of meeting "database is
locked"), with a bounded retry when another process (the CLI, a second server) holds the
database past the busy timeout, and with the caller's ``Idempotency-Key``: the first
answer is kept and a retry of the same request gets it again; the same key with another
request is refused (422). Only answers that succeeded are kept: a refused request changed
nothing, and a retry asks again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import attrs
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from sbcard.api.config import ServiceConfig, Worlds
from sbcard.api.errors import ApiError
from sbcard.domain import staff as staff_rules
from sbcard.services.outlets.staff import Forbidden, Principal
from sbcard.store.migrations import timestamp
from sbcard.store.world import World

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY = 100
_RETRIES = 3  # after the busy timeout (5 s) has already been waited each time


@attrs.define
class Service:
    """What the app holds: its configuration and its worlds (``app.state.service``)."""

    config: ServiceConfig
    worlds: Worlds


def service_of(request: Request) -> Service:
    return request.app.state.service


@attrs.define
class Call:
    request: Request
    service: Service
    principal: Principal | None = None
    caller: str | None = None  # "staff:CODE" or "terminal:ID" (the idempotency keys' owner)
    node: str | None = None  # where the caller's keys are kept

    def __attrs_post_init__(self) -> None:
        if self.principal is not None:
            self.caller = self.caller or f"staff:{self.principal.code}"
            self.node = self.node or self.principal.node

    @property
    def now(self) -> dt.datetime:
        return self.service.config.clock.now()

    @property
    def operator(self) -> str:
        """The operator of the act: the session's, whatever the body says."""
        assert self.principal is not None
        return self.principal.code

    def world(self) -> World:
        return self.service.worlds.world()

    def read(self, fn: Callable[[World], Any]) -> Any:
        return fn(self.world())

    def require_scope(self, *, node: str | None = None, outlet: str | None = None) -> None:
        """The act's place must be in the operator's scope: their region's service, their outlet if they have one."""
        principal = self.principal
        if principal is None:
            return
        if node is not None and node != principal.node:
            raise Forbidden("scope.region", f"operator {principal.code} works for {principal.node}'s service, "
                            f"not {node}'s", "scope")
        if outlet is not None and principal.outlet is not None and outlet != principal.outlet:
            raise Forbidden("scope.outlet", f"operator {principal.code} works at outlet {principal.outlet}, "
                            f"not {outlet}", "outlet")

    def may_reveal(self, asked: bool) -> bool:
        """Whether to show personal data unmasked: asked for, and the role may (403 otherwise)."""
        if not asked:
            return False
        if self.principal is None or self.principal.role not in staff_rules.REVEAL_ROLES:
            role = self.principal.role if self.principal else "terminal"
            raise Forbidden("personal.forbidden", f"a {role} may not reveal personal data", "show_personal")
        return True

    def write(self, fn: Callable[[World], Any], *, payload: Any = None, idempotent: bool = True,
              status: int = 200) -> JSONResponse:
        """Run a state change under the write lock and the caller's Idempotency-Key (required when ``idempotent``)."""
        key = self.request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None:
            key = key.strip()
            if not key or len(key) > MAX_KEY or not key.isprintable():
                raise ApiError(400, "idempotency.invalid", f"{IDEMPOTENCY_HEADER} has 1 to {MAX_KEY} printable "
                               "characters", IDEMPOTENCY_HEADER)
        elif idempotent:
            raise ApiError(400, "idempotency.missing", f"this call changes money or cards: send an "
                           f"{IDEMPOTENCY_HEADER} header (a retry with the same key gets the first answer)",
                           IDEMPOTENCY_HEADER)
        digest = self._request_hash(payload)
        with self.service.worlds.writing() as world:
            if key is not None:
                kept = self._kept(world, key, digest)
                if kept is not None:
                    return kept
            body = jsonable_encoder(_retrying(lambda: fn(world)))
            if key is not None:
                self._keep(world, key, digest, status, body)
        return JSONResponse(body, status_code=status)

    def _request_hash(self, payload: Any) -> str:
        text = json.dumps(jsonable_encoder(payload), sort_keys=True, ensure_ascii=False, default=str)
        blob = f"{self.request.method} {self.request.url.path}\n{text}".encode()
        return hashlib.sha256(blob).hexdigest()

    def _kept(self, world: World, key: str, digest: str) -> JSONResponse | None:
        rows = list(world.region(self.node).query(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE caller = ? AND key = ?",
            [self.caller, key]))
        if not rows:
            return None
        if rows[0]["request_hash"] != digest:
            raise ApiError(422, "idempotency.mismatch", f"{IDEMPOTENCY_HEADER} {key!r} was used for another request",
                           IDEMPOTENCY_HEADER)
        return JSONResponse(json.loads(rows[0]["response"]), status_code=rows[0]["status"],
                            headers={"Idempotent-Replayed": "true"})

    def _keep(self, world: World, key: str, digest: str, status: int, body: Any) -> None:
        db = world.region(self.node)
        _retrying(lambda: db["idempotency_keys"].insert(
            {"caller": self.caller, "key": key, "request_hash": digest, "status": status,
             "response": json.dumps(body, ensure_ascii=False), "created_at": timestamp(self.now)}))


def _retrying(fn: Callable[[], Any]) -> Any:
    """Run ``fn``, again (at most ``_RETRIES`` times) while another process keeps the database locked."""
    for attempt in range(_RETRIES + 1):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if attempt == _RETRIES or ("locked" not in text and "busy" not in text):
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")
