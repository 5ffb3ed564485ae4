"""Signing in and out; the caller's own account."""

from __future__ import annotations

from functools import partial

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from sbcard.api.auth import CSRF_HEADER, SESSION_COOKIE, presented_token, principal_of, staff_call
from sbcard.api.calls import Call, service_of
from sbcard.api.errors import ApiError
from sbcard.services.outlets import staff
from sbcard.services.outlets.operators import get_operator
from sbcard.services.outlets.staff import AccountLocked, NotSignedIn

router = APIRouter(tags=["session"])


class SignIn(BaseModel):
    operator: str = Field(max_length=32, description="The operator's code.")
    password: str = Field(max_length=256)
    new_password: str | None = Field(default=None, max_length=256,
                                     description="Required at the first sign-in: the person's own password.")
    kind: Literal["bearer", "cookie"] = Field(default="bearer", description="'cookie' for a browser session.")


class PasswordChange(BaseModel):
    password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


@router.post("/session", summary="Sign in: a bearer token (or a browser session cookie)")
def sign_in(body: SignIn, request: Request, response: Response) -> dict[str, object]:
    service = service_of(request)
    address = request.client.host if request.client else "-"
    wait = service.sign_ins.retry_after(address)
    if wait is not None:
        raise ApiError(429, "session.throttled", "too many wrong sign-ins from this address: wait and try again",
                       "operator", headers={"Retry-After": str(wait)})
    request.state.caller = (body.operator or "")[:32] if body.operator.isprintable() else "-"
    node = _home_node(service, body.operator)
    try:
        session = staff.sign_in(service.worlds.world().region(node), body.operator, body.password,
                                now=service.config.clock.now(), kind=body.kind, new_password=body.new_password,
                                source=address, writing=partial(service.worlds.write_lock, node))
    except (NotSignedIn, AccountLocked):
        service.sign_ins.failed(address)
        raise
    service.sign_ins.succeeded(address)
    answer = session.to_dict()
    if body.kind == "cookie":
        max_age = int((session.expires_at - service.config.clock.now()).total_seconds())
        response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, httponly=True, secure=True,
                            samesite="strict", path="/")
        answer["csrf_token"] = session.csrf
        answer["csrf_header"] = CSRF_HEADER
        del answer["token"]  # a browser's token stays in its HTTP-only cookie
    return answer


def _home_node(service, code: str) -> str:  # type: ignore[no-untyped-def]
    """The region node whose database holds the account; an unknown code is counted in the first served region."""
    world = service.worlds.world()
    for node in service.config.regions:
        if get_operator(world.region(node), code) is not None:
            return node
    if not service.config.regions:
        raise ApiError(421, "node.elsewhere", "the hub signs nobody in: sign in at your region's node", "operator")
    return service.config.regions[0]


@router.delete("/session", summary="Sign out: the session ends now")
def sign_out(request: Request, response: Response) -> dict[str, object]:
    service = service_of(request)
    principal_of(request)  # a valid session (and CSRF for a cookie)
    token, _ = presented_token(request)
    node = staff.token_node(token or "")
    with service.worlds.writing(node) as world:
        staff.sign_out(world.region(node), token or "", now=service.config.clock.now())
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


@router.get("/session", summary="Who this session belongs to")
def whoami(call: Call = Depends(staff_call())) -> dict[str, object]:
    return call.principal.to_dict()


@router.post("/session/password", summary="Change one's own password (the other sessions end)")
def change_password(body: PasswordChange, request: Request, call: Call = Depends(staff_call())) -> dict[str, object]:
    token, _ = presented_token(request)
    staff.change_password(call.world().region(call.principal.node), call.principal, token or "",
                          password=body.password, new_password=body.new_password, now=call.now,
                          writing=partial(call.service.worlds.write_lock, call.principal.node))
    return {"changed": True}
