"""Staff operators: who may act at a counter, in finance, or supervise.

An operator belongs to one region's service (the node of their region code) and acts in
that region's outlets. Every staff command names its operator; an unknown operator, or
one whose role does not allow the act, is refused before anything is written.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlite_utils

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.regions import NODE_NAMES, is_within, node_of, validate_region_code
from sbcard.reference import load_regions
from sbcard.services.outlets import audit
from sbcard.services.outlets.views import columns
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import node_of_db

ROLES: tuple[str, ...] = ("counter", "finance", "supervisor")
# auditors and administrators are staff accounts' roles (sbcard.domain.staff): no use case accepts them
ALL_ROLES: tuple[str, ...] = (*ROLES, "auditor", "admin")
ADMIN = "admin"  # who creates operators: the service's administrator, not an operator
FIELD = "--operator"
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,31}")
_MAX_NAME = 40


def add_operator(
    db: sqlite_utils.Database, *, code: str, name: str, role: str, region: str, now: datetime,
    roles: tuple[str, ...] = ROLES, by: str = ADMIN,
) -> dict[str, Any]:
    """Register an operator in this region's service; refuses a code already taken here.

    ``by``: who did it, for the audit log (the CLI's holder, or a signed-in administrator).
    """
    code = _check_code(code)
    name = (name or "").strip()
    if not name or len(name) > _MAX_NAME:
        raise InvalidInput("operator.name", f"an operator's name has 1 to {_MAX_NAME} characters", "--name")
    if role not in roles:
        raise InvalidInput("operator.role", f"role {role!r} is not one of {', '.join(roles)}", "--role")
    region = _check_region(region, node_of_db(db))
    row = {"code": code, "name": name, "role": role, "region": region, "created_at": timestamp(now)}
    with UnitOfWork(db).step():
        if db["operators"].count_where("code = ?", [code]):
            raise RuleRefused("operator.exists", f"operator {code} already exists", "CODE")
        db["operators"].insert(row)
        audit.record(db, at=now, operator=by, action="operator.add", subject=code,
                     details={"role": role, "region": region})
    return _public(row)


def get_operator(db: sqlite_utils.Database, code: str) -> dict[str, Any] | None:
    """The operator with this code in this region, or None."""
    rows = list(db.query("SELECT * FROM operators WHERE code = ?", [(code or "").strip()]))
    return _public(rows[0]) if rows else None


def require_operator(
    db: sqlite_utils.Database, code: str, *, roles: set[str] | None = None
) -> dict[str, Any]:
    """The operator, checked to exist in this region and, when `roles` is given, to hold one of them."""
    operator = get_operator(db, code)
    if operator is None:
        where = NODE_NAMES[node_of_db(db)]
        raise NotFound("operator.unknown", f"no operator {code!r} in {where}'s card service", FIELD)
    if roles is not None and operator["role"] not in roles:
        allowed = " or ".join(sorted(roles))
        raise RuleRefused(
            "operator.role", f"operator {operator['code']} is a {operator['role']} operator; this needs {allowed}", FIELD
        )
    return operator


def list_operators(db: sqlite_utils.Database, *, region: str | None = None) -> list[dict[str, Any]]:
    """This region's operators by code; `region` narrows to one district or prefecture."""
    rows = [_public(row) for row in db.query("SELECT * FROM operators ORDER BY code")]
    if region is None:
        return rows
    return [row for row in rows if is_within(row["region"], region)]


def _check_code(code: str) -> str:
    code = (code or "").strip()
    if not _CODE.fullmatch(code):
        raise InvalidInput(
            "operator.code", f"{code!r} is not an operator code: 2 to 32 letters, digits, '.', '_' or '-'", "CODE"
        )
    return code


def _check_region(region: str, node: str) -> str:
    try:
        code = validate_region_code(region)
        load_regions().get(code)
    except (InvalidInput, NotFound) as e:
        raise type(e)(e.code, e.message, "--region") from None
    if node_of(code) != node:
        raise InvalidInput(
            "operator.region", f"region {code} is not in {NODE_NAMES[node]}, whose service this is", "--region"
        )
    return code


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**columns(row, "code", "name", "role", "region"), "node": node_of(row["region"]),
            "created_at": row["created_at"]}
