"""Who is calling: the signed-in operator of a session, checked before any route runs.

A session is presented as ``Authorization: Bearer TOKEN`` (API clients) or as the
``sbcard_session`` cookie (browsers: secure, HTTP-only, SameSite=Strict). A state-changing
call made with the cookie must also carry the session's CSRF token in ``X-CSRF-Token``
(the double-submit pattern with a server-side hash): a page of another site can make the
browser send the cookie but cannot read the token. The operator of every act is the
session's; a body naming another operator changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import Request

from sbcard.api.calls import Call, service_of
from sbcard.api.errors import ApiError
from sbcard.services.outlets import staff
from sbcard.services.outlets.staff import Forbidden, NotSignedIn, Principal

if TYPE_CHECKING:
    from sbcard.api.config import ServiceConfig

SESSION_COOKIE = "sbcard_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token(request: Request) -> tuple[str | None, str]:
    """(token, how it came: 'bearer' or 'cookie')."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotSignedIn("session.invalid", "Authorization must be 'Bearer <token>'", "Authorization")
        return token.strip(), "bearer"
    return request.cookies.get(SESSION_COOKIE), "cookie"


def principal_of(request: Request) -> Principal:
    """The session's operator, CSRF checked for a cookie; NotSignedIn (401) or Forbidden (403)."""
    service = service_of(request)
    token, how = presented_token(request)
    if not token:
        raise NotSignedIn("session.missing", "sign in first (POST /api/v1/session)", "Authorization")
    node = staff.token_node(token)
    if node is None or not service.config.serves(node):
        raise NotSignedIn("session.invalid", "not a session of this service", "Authorization")
    principal, csrf_hash = staff.authenticate(service.worlds.world().region(node), token,
                                              now=service.config.clock.now())
    if how == "cookie" and request.method not in _SAFE:
        if not staff.csrf_matches(csrf_hash, request.headers.get(CSRF_HEADER)):
            raise Forbidden("csrf.invalid", f"a change made with the session cookie needs the session's {CSRF_HEADER}",
                            CSRF_HEADER)
    return principal


def staff_call(*roles: str) -> Callable[[Request], Call]:
    """A dependency: the call of a signed-in operator holding one of ``roles`` (any role when none)."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> Call:
        principal = principal_of(request)
        if allowed and principal.role not in allowed:
            raise Forbidden("role.forbidden", f"operator {principal.code} is a {principal.role}; this needs "
                            f"{' or '.join(sorted(allowed))}", "role")
        request.state.caller = principal.code
        return Call(request=request, principal=principal, service=service_of(request))

    dependency.__name__ = f"staff_call_{'_'.join(sorted(allowed)) or 'any'}"
    return dependency


def node_elsewhere(config: ServiceConfig, node: str) -> ApiError | None:
    """The 421 for a node this process does not serve (naming where it is, when known); None when it serves it."""
    if config.serves(node):
        return None
    where = config.peers.get(node)
    return ApiError(421, "node.elsewhere", f"node {node} is not served by this process"
                    + (f": ask {where}" if where else ""), "node")


def require_node_served(request: Request, node: str) -> None:
    refusal = node_elsewhere(service_of(request).config, node)
    if refusal is not None:
        raise refusal
