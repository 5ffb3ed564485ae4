"""Staff accounts, administered by a signed-in administrator of the same region (every act audited)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.domain.regions import node_of, validate_region_code
from sbcard.domain.staff import ADMIN, AUDITOR, STAFF_ROLES, SUPERVISOR
from sbcard.services.exchange.lookup import refuse_taken_operator_code
from sbcard.services.outlets import staff

router = APIRouter(prefix="/staff", tags=["staff accounts"])


class NewStaff(BaseModel):
    code: str = Field(max_length=32)
    name: str = Field(max_length=40)
    role: str = Field(description=" | ".join(STAFF_ROLES))
    region: str = Field(description="The district (or province) the person works in, in the administrator's region.")
    outlet: str | None = Field(default=None, description="Scope: the one outlet they act at (none: the whole region).")
    password: str = Field(max_length=256, description="The first password; the person changes it at first sign-in.")


class Grant(BaseModel):
    role: str = Field(description=" | ".join(STAFF_ROLES))


class Lock(BaseModel):
    reason: str | None = Field(default=None, max_length=200)


class PasswordReset(BaseModel):
    password: str = Field(max_length=256)


@router.post("", status_code=201, summary="Create a staff account (administrators)")
def create(body: NewStaff, call: Call = Depends(staff_call(ADMIN))):
    call.require_scope(node=node_of(validate_region_code(body.region)))
    password = staff.new_password_for(body.password, code=body.code, name=body.name)  # argon2 before the lock

    def do(world):
        refuse_taken_operator_code(world, body.code)
        return staff.add_staff(world.region(call.principal.node), code=body.code, name=body.name, role=body.role,
                               region=body.region, outlet=body.outlet, password=password, by=call.operator,
                               now=call.now)

    return call.write(do, payload=body, status=201)


@router.get("", summary="This region's staff accounts (administrators, supervisors, auditors)")
def list_accounts(call: Call = Depends(staff_call(ADMIN, SUPERVISOR, AUDITOR))):
    return {"staff": call.read(lambda world: staff.list_staff(world.region(call.principal.node)))}


@router.get("/{code}", summary="One staff account")
def show(code: str, call: Call = Depends(staff_call(ADMIN, SUPERVISOR, AUDITOR))):
    return call.read(lambda world: staff.get_staff(world.region(call.principal.node), code))


@router.post("/{code}/role", summary="Grant a role (it replaces the account's role; its sessions end)")
def grant(code: str, body: Grant, call: Call = Depends(staff_call(ADMIN))):
    return call.write(lambda world: staff.grant_role(world.region(call.principal.node), code, body.role,
                                                     by=call.operator, now=call.now), payload=body, idempotent=False)


@router.post("/{code}/lock", summary="Lock an account until unlocked; its sessions end")
def lock(code: str, body: Lock | None = None, call: Call = Depends(staff_call(ADMIN))):
    reason = body.reason if body else None
    return call.write(lambda world: staff.lock_staff(world.region(call.principal.node), code, by=call.operator,
                                                     now=call.now, reason=reason), idempotent=False)


@router.post("/{code}/unlock", summary="Unlock an account")
def unlock(code: str, call: Call = Depends(staff_call(ADMIN))):
    return call.write(lambda world: staff.unlock_staff(world.region(call.principal.node), code, by=call.operator,
                                                       now=call.now), idempotent=False)


@router.post("/{code}/password", summary="Set a new first password (changed again at the next sign-in)")
def reset_password(code: str, body: PasswordReset, call: Call = Depends(staff_call(ADMIN))):
    account = call.read(lambda world: staff.get_staff(world.region(call.principal.node), code))
    password = staff.new_password_for(body.password, code=account["code"], name=account["name"])
    return call.write(lambda world: staff.reset_password(world.region(call.principal.node), code, password,
                                                         by=call.operator, now=call.now), idempotent=False)
