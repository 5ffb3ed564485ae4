"""Errors as the CLI gives them: ``{"error": {"code", "field", "message"}}``, never a traceback.

The status follows the error's kind: malformed input 422 (a body that is not JSON 400),
not signed in 401, a role or scope that does not allow the act 403, a thing that does not
exist 404, a rule that refuses the act 409, an account locked 423 (with ``Retry-After``);
an act that needs a node this process does not hold nor reach 421 ``node.elsewhere``, and
another node's process that cannot be reached now 503 ``node.unavailable`` (nothing done there), one
that took the request but whose answer did not come back 504 ``exchange.in_doubt`` (perhaps done:
ask again under the same key) (``docs/api/nodes.md``).
Anything unexpected is 500 with the request id, which the log line carries with the
exception's class; the traceback goes only to the server's own log.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sbcard.chip.reader import CardIOError, NoCard, NotACard, ReaderError
from sbcard.chip.sw import CardStatus
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.services.exchange.peers import ExchangeInDoubt, PeerRefused, PeerUnavailable
from sbcard.services.outlets.staff import AccountLocked, Forbidden, NotSignedIn
from sbcard.store.world import NodeElsewhere

log = logging.getLogger("sbcard.api")

_STATUS: tuple[tuple[type[SbcardError], int], ...] = (
    (NodeElsewhere, 421), (ExchangeInDoubt, 504), (PeerUnavailable, 503), (NotSignedIn, 401), (AccountLocked, 423), (Forbidden, 403), (InvalidInput, 422), (NotFound, 404),
    (RuleRefused, 409),
)


class ApiError(SbcardError):
    """An error the service itself raises with its status (a missing header, a node not served here)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(code, message, field)
        self.status = status
        self.headers = headers or {}


class KeptRefusal(SbcardError):
    """The first answer to an Idempotency-Key was a refusal: a retry gets it again, as it was.

    Not an ``ApiError``: it passes through the route's field renaming as the first refusal did.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(code, message, field)
        self.status = status
        self.headers = {"Idempotent-Replayed": "true"}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "field": field, "message": " ".join(str(message).splitlines())}}


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def status_of(exc: SbcardError) -> int:
    if isinstance(exc, (ApiError, KeptRefusal, PeerRefused)):  # PeerRefused: the other node's own 4xx, passed on
        return exc.status
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def api_field(field: str | None) -> str | None:
    """The use cases name the CLI's options and arguments (``--outlet``, ``CODE``); a JSON caller's are
    ``outlet`` and ``code``. Headers (``Idempotency-Key``) keep their names."""
    if not field:
        return field
    if field.startswith("--"):
        return field[2:].replace("-", "_")
    if field.isupper():
        return field.lower()
    return field


def sbcard_error_response(exc: SbcardError) -> JSONResponse:
    headers: dict[str, str] = dict(getattr(exc, "headers", {}) or {})
    if isinstance(exc, NotSignedIn):
        headers.setdefault("WWW-Authenticate", "Bearer")
    if isinstance(exc, AccountLocked) and exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(status_of(exc), exc.code, exc.message, api_field(exc.field), headers)


def busy_response() -> JSONResponse:
    """Another process kept the world locked past the busy timeout and the retries: ask again."""
    return error_response(503, "store.busy", "the service is busy writing: ask again shortly (with the same "
                          "Idempotency-Key)", None, {"Retry-After": "2"})


def unexpected_response(request_id: str) -> JSONResponse:
    return error_response(500, "internal.error", f"internal error; request id {request_id}", None,
                          {"X-Request-Id": request_id})


def install(app: FastAPI) -> None:
    """Map every error a route may raise to the one JSON shape."""

    @app.exception_handler(SbcardError)
    async def _sbcard(_request: Request, exc: SbcardError) -> JSONResponse:
        return sbcard_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
        field = ".".join(location) or None
        if first.get("type") == "json_invalid":
            return error_response(400, "request.json_invalid", "the body is not valid JSON", None)
        message = first.get("msg", "invalid request")
        return error_response(422, "request.invalid", f"{field + ': ' if field else ''}{message}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "route.not_found", 405: "route.method_not_allowed"}
        return error_response(exc.status_code, codes.get(exc.status_code, f"http.{exc.status_code}"),
                              str(exc.detail), None, dict(exc.headers or {}))

    @app.exception_handler(NoCard)
    async def _no_card(_request: Request, exc: NoCard) -> JSONResponse:
        return error_response(409, "reader.no_card", str(exc) or "no card in the reader", "reader")

    @app.exception_handler(NotACard)
    async def _not_a_card(_request: Request, exc: NotACard) -> JSONResponse:
        return error_response(422, "reader.not_a_card", str(exc), "reader")

    @app.exception_handler(ReaderError)
    async def _reader(_request: Request, exc: ReaderError) -> JSONResponse:
        return error_response(503, "reader.error", str(exc), "reader")

    @app.exception_handler(CardIOError)
    async def _card_io(_request: Request, exc: CardIOError) -> JSONResponse:
        return error_response(503, "card.io", f"{exc} (present the card again)", "card")

    @app.exception_handler(CardStatus)
    async def _card_status(_request: Request, exc: CardStatus) -> JSONResponse:
        return error_response(409, "card.refused", f"refused: {exc}", "card")

    @app.exception_handler(sqlite3.OperationalError)
    async def _store(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        if is_busy(exc):
            return busy_response()
        return _logged_unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _logged_unexpected(request, exc)


def _logged_unexpected(request: Request, exc: BaseException) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "-")
    log.error("request %s failed: %s", request_id, type(exc).__name__, exc_info=exc)
    return unexpected_response(request_id)


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
