"""Bounds on what one caller can make the service do: the size of a body, sign-ins from one address.

``BodyLimit`` (ASGI): a body above the limit is refused with 413 before it is read whole
(``Content-Length``) or as soon as the streamed bytes pass it; on the way it hashes the
body, which ``Call.write`` binds an ``Idempotency-Key`` to (not a multipart one, whose
boundary changes at each sending: its route gives the files' digests instead). Uploads may be far
larger than JSON bodies (a subsidy file of a million rows is tens of megabytes), but only on the routes
that take them (``PATH_LIMITS``), never because the caller says its body is multipart: the Content-Type is
the client's word, and FastAPI parses a form before any dependency (sign-in, role) is looked at.

``SignInThrottle``: wrong sign-ins from one address in a sliding window; past the limit that
address is answered 429 with ``Retry-After`` before any password is checked, so guessing
(or locking accounts out on purpose) is slow from one machine. In memory: a process's own.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import time
from typing import Any

JSON_LIMIT = 1 << 20  # 1 MiB
UPLOAD_LIMIT = 256 << 20  # 256 MiB
# The only routes whose bodies may pass JSON_LIMIT, by exact path (method aside: a route answers 405 to another):
# a department's subsidy batch file (routes/subsidies.py MAX_UPLOAD, multipart) and a terminal's upload (JSON),
# up to 100,000 records (routes/terminal_host.py MAX_BATCH), ~1 KiB each at most, let in only once
# ``terminal_auth.TerminalGate`` passed.
PATH_LIMITS = {"/api/v1/subsidies/batches": UPLOAD_LIMIT, "/api/v1/host/uploads": 128 << 20}


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: Any, json_limit: int = JSON_LIMIT) -> None:
        self.app = app
        self.json_limit = json_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = PATH_LIMITS.get(scope.get("path", ""), self.json_limit)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _refuse(send, limit)
            return
        received = 0
        digest = hashlib.sha256()
        state = scope.setdefault("state", {})
        # a multipart body differs at each sending (its boundary is random): the route binds the key to the
        # files' contents and fields itself (the ``payload`` of ``Call.write``)
        if not multipart:
            state["body_digest"] = digest.hexdigest()
        started = False
        too_large = False
        replaced = False

        async def counted() -> dict[str, Any]:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    too_large = True
                    raise _TooLarge
                digest.update(chunk)
                if not multipart and not message.get("more_body", False):
                    state["body_digest"] = digest.hexdigest()
            return message

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started, replaced
            # FastAPI turns a failure while it parses a body into its own 400: the answer is still 413
            if too_large and not started and message["type"] == "http.response.start":
                started = replaced = True
                await _refuse(send, limit)
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Any, limit: int) -> None:
    body = json.dumps({"error": {"code": "request.too_large", "field": None,
                                 "message": f"the body is larger than {limit:,} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SignInThrottle:
    """At most ``limit`` wrong sign-ins per address in ``window`` seconds."""

    def __init__(self, limit: int = 20, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds until the address may try again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(address)
            if not failures:
                return None
            while failures and now - failures[0] > self.window:
                failures.popleft()
            if len(failures) < self.limit:
                return None
            return max(1, int(self.window - (now - failures[0])) + 1)

    def failed(self, address: str) -> None:
        with self._lock:
            failures = self._failures.setdefault(address, collections.deque())
            failures.append(time.monotonic())
            if len(self._failures) > 100_000:  # bounded memory: forget the oldest addresses
                for stale in list(self._failures)[:50_000]:
                    del self._failures[stale]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
