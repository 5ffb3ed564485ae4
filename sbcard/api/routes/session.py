"""Signing in and out; the caller's own account."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from sbcard.api.auth import CSRF_HEADER, SESSION_COOKIE, presented_token, principal_of, staff_call
from sbcard.api.calls import Call, service_of
from sbcard.domain.errors import NotFound
from sbcard.services.exchange.lookup import find_operator
from sbcard.services.outlets import staff
from sbcard.services.outlets.staff import NotSignedIn

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
    world = service.worlds.world()
    found = None
    try:
        found = find_operator(world, body.operator, regions=service.config.regions)  # this node's staff only
    except NotFound:
        found = None
    node = found[0] if found and service.config.serves(found[0]) else service.config.regions[0] \
        if service.config.regions else None
    if node is None:
        raise NotSignedIn("session.invalid", "this node signs nobody in: sign in at a region's node", "operator")
    with service.worlds.writing() as world:
        session = staff.sign_in(world.region(node), body.operator, body.password, now=service.config.clock.now(),
                                kind=body.kind, new_password=body.new_password,
                                source=request.client.host if request.client else None)
    answer = session.to_dict()
    if body.kind == "cookie":
        max_age = int((session.expires_at - service.config.clock.now()).total_seconds())
        response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, httponly=True, secure=True,
                            samesite="strict", path="/")
        answer["csrf_token"] = session.csrf
        answer["csrf_header"] = CSRF_HEADER
        del answer["token"]  # a browser's token stays in its HTTP-only cookie
    return answer


@router.delete("/session", summary="Sign out: the session ends now")
def sign_out(request: Request, response: Response) -> dict[str, object]:
    service = service_of(request)
    principal_of(request)  # a valid session (and CSRF for a cookie)
    token, _ = presented_token(request)
    node = staff.token_node(token or "")
    with service.worlds.writing() as world:
        staff.sign_out(world.region(node), token or "", now=service.config.clock.now())
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


@router.get("/session", summary="Who this session belongs to")
def whoami(call: Call = Depends(staff_call())) -> dict[str, object]:
    return call.principal.to_dict()


@router.post("/session/password", summary="Change one's own password")
def change_password(body: PasswordChange, call: Call = Depends(staff_call())) -> dict[str, object]:
    def do(world):
        staff.change_password(world.region(call.principal.node), call.principal, password=body.password,
                              new_password=body.new_password, now=call.now)
        return {"changed": True}

    return call.write(do, idempotent=False)
