"""One call of a route: who, when, and the world under the rules for writing.

``Call.write`` is how every state change runs: under the write lock of the caller's node
(one use case of a node writes at a time in this process, and each database's transactions
queue first come, first served, so concurrent clients queue instead of meeting "database is
locked": ``Worlds``), with a bounded retry when another process (the CLI, a second server) holds the
database past the busy timeout, and with the caller's ``Idempotency-Key``: the first
answer is kept and a retry of the same request gets it again; the same key with another
request is refused (422). Only answers that succeeded are kept: a refused request changed
nothing, and a retry asks again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
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
from sbcard.api.errors import ApiError, KeptRefusal, is_busy, status_of
from sbcard.api.limits import SignInThrottle
from sbcard.domain import staff as staff_rules
from sbcard.domain.errors import SbcardError
from sbcard.services.outlets.staff import Forbidden, Principal
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, NODES, World

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY = 100
_RETRIES = 2  # after the busy timeout (5 s) has already been waited each time
ABANDONED = dt.timedelta(minutes=5)
REVEALED = {"revealed": "the answer showed personal data and is not kept"}
UNFINISHED = {"code": "idempotency.unfinished", "field": IDEMPOTENCY_HEADER,
              "message": "the first attempt with this key was interrupted after it had changed something: look at "
                         "the record's state (and finish or undo it) rather than retrying blindly"}
REFUSED = "sbcard.refused"  # a kept refusal: {REFUSED: {code, message, field as the use case named it}}  # a key "in progress" this long: its server died serving it


@attrs.define
class Service:
    """What the app holds: its configuration and its worlds (``app.state.service``)."""

    config: ServiceConfig
    worlds: Worlds
    secret: bytes = attrs.field(repr=False, default=b"")  # the world's service key (``service_key``)
    sign_ins: SignInThrottle = attrs.field(factory=SignInThrottle)


def service_of(request: Request) -> Service:
    return request.app.state.service


@attrs.define
class Call:
    request: Request
    service: Service
    principal: Principal | None = None
    caller: str | None = None  # "staff:CODE" or "terminal:ID" (the idempotency keys' owner)
    node: str | None = None  # where the caller's keys are kept
    revealed: bool = False  # the answer shows personal data unmasked: it is never kept for a replay

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
        self.revealed = True
        return True

    def write(self, fn: Callable[[World], Any], *, payload: Any = None, idempotent: bool = True,
              status: int = 200) -> JSONResponse:
        """Run a state change under the write lock of the caller's node and the caller's Idempotency-Key (required
        when ``idempotent``).

        The key is claimed first (a row "in progress", committed), then the use case runs,
        then its answer is kept in the row: two processes given the same key never both act,
        and a refusal releases the key. ``payload`` is only a fallback for the request's
        identity: the raw body (read by ``body_digest``) and the full URL are what a key is
        bound to.
        """
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
        with self.service.worlds.writing(self.node) as world:
            if key is not None:
                kept = self._claim(world, key, digest)
                if kept is not None:
                    return kept
            before = _changes(world)
            try:
                body = jsonable_encoder(_retrying(world, lambda: fn(world)))
            except SbcardError as exc:  # a refusal is the first answer too: a retry gets it, never a late "yes"
                if key is not None:
                    # A node out of reach (503) is no answer: a retry asks again. The other node may have acted
                    # before its answer was lost: what it does for another node is idempotent there (a purse
                    # load's begin answers the same card request with the same grant, ``purse_host``).
                    if status_of(exc) >= 500:
                        self._release(world, key)
                    else:
                        self._keep(world, key, status_of(exc), {REFUSED: {"code": exc.code, "message": exc.message,
                                                                          "field": exc.field}})
                raise
            except BaseException:
                if key is not None:
                    if _changes(world) == before:  # unexpected, or the store busy, before any write: a retry asks again
                        self._release(world, key)
                    else:  # interrupted after a part was written: a blind retry could do that part twice
                        self._keep(world, key, 409, {REFUSED: UNFINISHED})
                raise
            if key is not None:
                if self.revealed:
                    self._keep(world, key, status, REVEALED)
                else:
                    self._keep(world, key, status, body)
        return JSONResponse(body, status_code=status)

    def _request_hash(self, payload: Any) -> str:
        """HMAC-SHA256 of the request under the world's service key: a copy of the database does not let a
        PIN or a password in a body be found again by hashing guesses."""
        url = self.request.url
        body = getattr(self.request.state, "body_digest", None)
        if body is None:
            body = json.dumps(jsonable_encoder(payload), sort_keys=True, ensure_ascii=False, default=str)
        blob = f"{self.request.method} {url.path}?{url.query}\n{body}".encode()
        return hmac.new(self.service.secret, blob, hashlib.sha256).hexdigest()

    def _keys_db(self, world: World):  # type: ignore[no-untyped-def]
        return world.region(self.node)

    def _claim(self, world: World, key: str, digest: str) -> JSONResponse | None:
        """Claim the key (None: go on and act), or the kept answer; 409 while another process serves it."""
        db = self._keys_db(world)
        now = self.now
        with UnitOfWork(db).transaction():
            rows = list(db.query("SELECT request_hash, status, response, created_at FROM idempotency_keys "
                                 "WHERE caller = ? AND key = ?", [self.caller, key]))
            if not rows:
                db.execute("INSERT INTO idempotency_keys (caller, key, request_hash, status, response, created_at) "
                           "VALUES (?, ?, ?, 0, NULL, ?)", [self.caller, key, digest, timestamp(now)])
                return None
            row = rows[0]
            if row["request_hash"] != digest:
                raise ApiError(422, "idempotency.mismatch", f"{IDEMPOTENCY_HEADER} {key!r} was used for another "
                               "request", IDEMPOTENCY_HEADER)
            if row["status"] == 0:
                started = dt.datetime.fromisoformat(row["created_at"])
                if now - started < ABANDONED:
                    raise ApiError(409, "idempotency.in_progress", f"the request with {IDEMPOTENCY_HEADER} {key!r} "
                                   "is still being served: ask again shortly", IDEMPOTENCY_HEADER,
                                   headers={"Retry-After": "1"})
                # its server died serving it: this request takes the key over
                db.execute("UPDATE idempotency_keys SET created_at = ? WHERE caller = ? AND key = ?",
                           [timestamp(now), self.caller, key])
                return None
        kept = json.loads(row["response"])
        if isinstance(kept, dict) and set(kept) == {REFUSED}:
            refusal = kept[REFUSED]
            raise KeptRefusal(row["status"], refusal["code"], refusal["message"], refusal["field"])
        if kept == REVEALED:
            raise ApiError(409, "idempotency.revealed", "the first answer showed personal data and was not kept: "
                           "the act is done; read the record again", IDEMPOTENCY_HEADER)
        return JSONResponse(kept, status_code=row["status"], headers={"Idempotent-Replayed": "true"})

    def _release(self, world: World, key: str) -> None:
        db = self._keys_db(world)
        with UnitOfWork(db).transaction():
            db.execute("DELETE FROM idempotency_keys WHERE caller = ? AND key = ? AND status = 0", [self.caller, key])

    def _keep(self, world: World, key: str, status: int, body: Any) -> None:
        db = self._keys_db(world)
        with UnitOfWork(db).transaction():
            db.execute("UPDATE idempotency_keys SET status = ?, response = ? WHERE caller = ? AND key = ?",
                       [status, json.dumps(body, ensure_ascii=False), self.caller, key])


def _changes(world: World) -> int:
    """Rows changed so far on the world's connections (the nodes this process may open)."""
    total = 0
    for node in NODES:
        try:
            db = world.hub() if node == HUB else world.region(node)
        except (SbcardError, ValueError, KeyError):  # a node this process does not open
            continue
        total += db.conn.total_changes
    return total


def _retrying(world: World, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; again (at most ``_RETRIES`` times) when another process kept the database locked past the
    busy timeout *before anything was written* — a use case that had already committed a part is not run
    twice: the caller gets 503 and retries with its Idempotency-Key."""
    for attempt in range(_RETRIES + 1):
        before = _changes(world)
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == _RETRIES or _changes(world) != before:
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")

