"""Staff accounts: credentials, sign-in, sessions and lockout, for the network service.

An account is an operator (``operators``) with a credential (``staff_accounts``) in the
operator's own region's database. Passwords are hashed with argon2id (argon2-cffi's
defaults); a session's token is random and only its SHA-256 is stored, so whoever copies
the database cannot sign in with what they find. The first password is set by whoever
creates the account and must be changed at the first sign-in. Wrong passwords in a row
lock the account for a while (``sbcard.domain.staff``); every sign-in, failed or not, is
in the audit log. Nothing here knows about HTTP: the service maps the errors to statuses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any, ContextManager

import attrs
import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sbcard.domain import staff as rules
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.outlets import OutletCode
from sbcard.domain.regions import node_of
from sbcard.services.outlets import audit, operators
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, node_of_db

_HASHER = PasswordHasher()
# A wrong operator code costs the same as a wrong password: no timing tells which codes exist.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")
# argon2 takes ~64 MiB and a core for a fraction of a second: no more at once than there are cores.
_ARGON2_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
CLI_HOLDER = "cli"  # who acts from the command line: whoever holds the world's files
IDEMPOTENCY_KEPT = dt.timedelta(days=7)

Serialise = Callable[[], ContextManager[Any]]


class NotSignedIn(SbcardError):
    """No valid session, or a wrong code or password (HTTP 401)."""

    exit_code = 1


class AccountLocked(SbcardError):
    """Too many wrong passwords, or locked by an administrator (HTTP 423 with Retry-After)."""

    exit_code = 1

    def __init__(self, code: str, message: str, field: str | None = None, *,
                 retry_after: int | None = None) -> None:
        super().__init__(code, message, field)
        self.retry_after = retry_after


class Forbidden(SbcardError):
    """Signed in, but the role or the scope does not allow the act (HTTP 403)."""

    exit_code = 1


@attrs.frozen
class Principal:
    """Who a valid session belongs to: what the service checks an act against."""

    code: str
    name: str
    role: str  # the staff role
    region: str  # the district (or province) they work in
    outlet: str | None
    node: str
    session_kind: str
    must_change: bool

    @property
    def roles(self) -> tuple[str, ...]:
        return (self.role,)

    def to_dict(self) -> dict[str, Any]:
        return {"operator": self.code, "name": self.name, "roles": list(self.roles), "region": self.region,
                "outlet": self.outlet, "node": self.node}


@attrs.frozen
class NewPassword:
    """A password already checked and hashed (``new_password_for``); its text is not kept."""

    hash: str = attrs.field(repr=False)


@attrs.frozen
class Session:
    token: str
    csrf: str | None
    expires_at: dt.datetime
    principal: Principal

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "expires_at": self.expires_at.isoformat(),
                "roles": list(self.principal.roles), "operator": self.principal.code,
                "region": self.principal.region, "outlet": self.principal.outlet}


def token_node(token: str) -> str | None:
    """The node whose database holds the session, from the token's prefix (``sbs_bj_…``)."""
    parts = (token or "").split("_", 2)
    if len(parts) == 3 and parts[0] == "sbs" and parts[1] in REGION_NODES:
        return parts[1]
    return None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- accounts


def new_password_for(password: str, *, code: str, name: str, field: str = "password") -> NewPassword:
    """A first password checked and hashed: before any lock is taken, for argon2 is slow on purpose."""
    rules.check_password(password, field=field, code=code, name=name)
    return NewPassword(_hash(password))


def add_staff(db: sqlite_utils.Database, *, code: str, name: str, role: str, region: str, outlet: str | None,
              password: str | NewPassword, by: str, now: dt.datetime) -> dict[str, Any]:
    """Create an operator with a credential; ``by`` is the administrator (or the CLI's holder)."""
    role = rules.check_role(role)
    outlet = _check_outlet(db, outlet, region)
    name = _check_name(name)
    password_hash = password.hash if isinstance(password, NewPassword) else \
        new_password_for(password, code=code, name=name).hash
    with UnitOfWork(db).step():
        operators.add_operator(db, code=code, name=name, role=rules.SERVICE_ROLE[role], region=region, now=now,
                               roles=operators.ALL_ROLES, by=by)
        db["staff_accounts"].insert({
            "operator": code.strip(), "staff_role": role, "outlet": outlet, "password_hash": password_hash,
            "must_change": 1, "state": "active", "failed_signins": 0, "locked_until": None,
            "password_set_at": timestamp(now), "created_by": by, "created_at": timestamp(now),
        })
        audit.record(db, at=now, operator=by, action="staff.add", subject=code.strip(), outlet=outlet,
                     details={"role": role, "region": region})
    return get_staff(db, code)


def get_staff(db: sqlite_utils.Database, code: str) -> dict[str, Any]:
    """The account as lists show it (never the hash); NotFound "staff.unknown"."""
    rows = list(db.query(
        "SELECT o.code, o.name, o.region, s.staff_role, s.outlet, s.state, s.must_change, s.failed_signins, "
        "s.locked_until, s.created_at FROM staff_accounts s JOIN operators o ON o.code = s.operator "
        "WHERE s.operator = ?", [(code or "").strip()]))
    if not rows:
        raise NotFound("staff.unknown", f"no staff account {code!r} in this region", "CODE")
    return _public(rows[0])


def list_staff(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [_public(row) for row in db.query(
        "SELECT o.code, o.name, o.region, s.staff_role, s.outlet, s.state, s.must_change, s.failed_signins, "
        "s.locked_until, s.created_at FROM staff_accounts s JOIN operators o ON o.code = s.operator ORDER BY o.code")]


def lock_staff(db: sqlite_utils.Database, code: str, *, by: str, now: dt.datetime, reason: str | None = None) -> dict:
    """Lock the account until an administrator unlocks it; its sessions end now."""
    get_staff(db, code)
    with UnitOfWork(db).step():
        db.execute("UPDATE staff_accounts SET state = 'locked' WHERE operator = ?", [code.strip()])
        db.execute("UPDATE staff_sessions SET ended_at = ? WHERE operator = ? AND ended_at IS NULL",
                   [timestamp(now), code.strip()])
        audit.record(db, at=now, operator=by, action="staff.lock", subject=code.strip(), reason=reason)
    return get_staff(db, code)


def unlock_staff(db: sqlite_utils.Database, code: str, *, by: str, now: dt.datetime) -> dict[str, Any]:
    """Open a locked account again (an administrator's lock or a lockout), failures forgotten."""
    get_staff(db, code)
    with UnitOfWork(db).step():
        db.execute("UPDATE staff_accounts SET state = 'active', failed_signins = 0, locked_until = NULL "
                   "WHERE operator = ?", [code.strip()])
        audit.record(db, at=now, operator=by, action="staff.unlock", subject=code.strip())
    return get_staff(db, code)


def grant_role(db: sqlite_utils.Database, code: str, role: str, *, by: str, now: dt.datetime) -> dict[str, Any]:
    """Give the account another role (its one role is replaced); its sessions end, so the next sign-in carries it."""
    role = rules.check_role(role)
    before = get_staff(db, code)
    with UnitOfWork(db).step():
        db.execute("UPDATE staff_accounts SET staff_role = ? WHERE operator = ?", [role, code.strip()])
        db.execute("UPDATE operators SET role = ? WHERE code = ?", [rules.SERVICE_ROLE[role], code.strip()])
        db.execute("UPDATE staff_sessions SET ended_at = ? WHERE operator = ? AND ended_at IS NULL",
                   [timestamp(now), code.strip()])
        audit.record(db, at=now, operator=by, action="staff.grant", subject=code.strip(),
                     details={"from": before["role"], "to": role})
    return get_staff(db, code)


def reset_password(db: sqlite_utils.Database, code: str, password: str | NewPassword, *, by: str,
                   now: dt.datetime) -> dict:
    """A new first password from an administrator: changed again at the next sign-in."""
    account = get_staff(db, code)
    password_hash = password.hash if isinstance(password, NewPassword) else \
        new_password_for(password, code=account["code"], name=account["name"]).hash
    with UnitOfWork(db).step():
        db.execute("UPDATE staff_accounts SET password_hash = ?, must_change = 1, failed_signins = 0, "
                   "locked_until = NULL, password_set_at = ? WHERE operator = ?",
                   [password_hash, timestamp(now), code.strip()])
        db.execute("UPDATE staff_sessions SET ended_at = ? WHERE operator = ? AND ended_at IS NULL",
                   [timestamp(now), code.strip()])
        audit.record(db, at=now, operator=by, action="staff.password_reset", subject=code.strip())
    return get_staff(db, code)


# ----------------------------------------------------------------------------- signing in


def sign_in(db: sqlite_utils.Database, code: str, password: str, *, now: dt.datetime, kind: str = "bearer",
            new_password: str | None = None, source: str | None = None,
            writing: Serialise = contextlib.nullcontext) -> Session:
    """Check the password and open a session; the first sign-in must set ``new_password``.

    Refusals: NotSignedIn (a wrong code or password: one answer for both, and an unknown
    code is counted and locked out like a real one), AccountLocked (with the seconds until
    it opens), Forbidden "staff.password_change_required". argon2 runs before ``writing``
    (the caller's write lock) is taken and outside any transaction: a slow hash never holds
    the database. Every attempt is audited; a wrong password counts towards the lockout.
    """
    code = (code or "").strip()
    seen = _credential(db, code)
    verified = _verify(seen["password_hash"] if seen else _DUMMY_HASH, password)
    fresh: str | None = None
    if verified and new_password is not None:
        rules.check_password(new_password, field="new_password", code=code, name=seen["name"])
        if _verify(seen["password_hash"], new_password):
            raise InvalidInput("staff.password", "the new password must differ from the old one", "new_password")
        fresh = _hash(new_password)
    details = {"kind": kind, **({"source": source} if source else {})}
    # A refusal is decided inside the step and raised after it: its audit entry and the
    # failure count must be kept, not rolled back with the refusal.
    refusal: SbcardError | None = None
    session: Session | None = None
    with writing(), UnitOfWork(db).step():
        row = _credential(db, code)
        if row is None:
            refusal = _unknown_code_failure(db, code, details, now)
        elif (locked := _lock_state(row, now)) is not None and (not verified or row["state"] != "locked"):
            audit.record(db, at=now, operator=code, action="staff.signin_refused", subject=code,
                         details={**details, "why": "locked"})
            refusal = locked
        elif not verified or row["password_hash"] != seen["password_hash"]:
            refusal = _count_failure(db, row, "staff.signin_failed", details, now)
        elif row["state"] == "locked":
            audit.record(db, at=now, operator=code, action="staff.signin_refused", subject=code,
                         details={**details, "why": "locked by an administrator"})
            refusal = AccountLocked("session.locked", "the account is locked by an administrator: ask them to "
                                    "unlock it", "operator")
        elif row["must_change"] and fresh is None:
            _forget_failures(db, code)
            audit.record(db, at=now, operator=code, action="staff.signin_refused", subject=code,
                         details={**details, "why": "first password not yet changed"})
            refusal = Forbidden("session.password_change_required",
                                "this is the first sign-in: choose your own password (send new_password)",
                                "new_password")
        else:
            session = _signed_in(db, row, password, fresh, details, kind=kind, now=now)
    if refusal is not None:
        raise refusal
    assert session is not None
    return session


def _unknown_code_failure(db: sqlite_utils.Database, code: str, details: dict[str, Any],
                          now: dt.datetime) -> SbcardError:
    """A code no account has is counted and locked out as an account would be: the answers do not tell them apart."""
    subject = _unknown_subject(code)
    rows = list(db.query("SELECT failed, locked_until FROM signin_throttle WHERE subject = ?", [subject]))
    failed, until = (rows[0]["failed"], rows[0]["locked_until"]) if rows else (0, None)
    audit.record(db, at=now, operator="?", action="staff.signin_failed", subject=subject,
                 details={**details, "why": "unknown operator"})
    if until and dt.datetime.fromisoformat(until) > now:
        return _locked_out(dt.datetime.fromisoformat(until), now)
    if until:  # a lockout that has run out starts the count again
        failed = 0
    failed += 1
    locked = rules.locked_until(failed, now)
    db.execute("INSERT INTO signin_throttle (subject, failed, locked_until) VALUES (?, ?, ?) "
               "ON CONFLICT (subject) DO UPDATE SET failed = excluded.failed, locked_until = excluded.locked_until",
               [subject, failed, timestamp(locked) if locked else None])
    if locked is not None:
        return _locked_out(locked, now)
    return NotSignedIn("session.invalid", "wrong operator code or password", "password")


def _count_failure(db: sqlite_utils.Database, row: dict[str, Any], action: str, details: dict[str, Any],
                   now: dt.datetime) -> SbcardError:
    code = row["operator"]
    failed = 0 if row["locked_until"] else row["failed_signins"]  # a lockout that ran out starts the count again
    failed += 1
    until = rules.locked_until(failed, now)
    db.execute("UPDATE staff_accounts SET failed_signins = ?, locked_until = ? WHERE operator = ?",
               [failed, timestamp(until) if until else None, code])
    audit.record(db, at=now, operator=code, action=action, subject=code,
                 details={**details, "why": "wrong password", "failed": failed})
    if until is None:
        if action == "staff.password_change_failed":
            return Forbidden("password.wrong", "the current password is wrong", "password")
        return NotSignedIn("session.invalid", "wrong operator code or password", "password")
    audit.record(db, at=now, operator=code, action="staff.locked_out", subject=code, details={"until": timestamp(until)})
    return _locked_out(until, now)


def _locked_out(until: dt.datetime, now: dt.datetime) -> AccountLocked:
    return AccountLocked("session.locked", f"too many wrong passwords: locked until {timestamp(until)}", "operator",
                         retry_after=max(1, int((until - now).total_seconds())))


def _signed_in(db: sqlite_utils.Database, row: dict[str, Any], password: str, fresh: str | None,
               details: dict[str, Any], *, kind: str, now: dt.datetime) -> Session:
    code = row["operator"]
    if fresh is not None:
        db.execute("UPDATE staff_accounts SET password_hash = ?, must_change = 0, password_set_at = ? "
                   "WHERE operator = ?", [fresh, timestamp(now), code])
        audit.record(db, at=now, operator=code, action="staff.password_change", subject=code)
    session = _open_session(db, row, kind=kind, now=now)
    _forget_failures(db, code)
    audit.record(db, at=now, operator=code, action="staff.signin", subject=code, outlet=row["outlet"], details=details)
    _prune(db, now)
    return session


def authenticate(db: sqlite_utils.Database, token: str, *, now: dt.datetime) -> tuple[Principal, str | None]:
    """The principal of a live session and its CSRF hash; NotSignedIn when expired, ended or unknown."""
    rows = list(db.query("SELECT * FROM staff_sessions WHERE token_hash = ?", [_digest(token or "")]))
    if not rows or rows[0]["ended_at"] is not None:
        raise NotSignedIn("session.invalid", "not signed in (no session, or it was signed out)", "Authorization")
    session = rows[0]
    if dt.datetime.fromisoformat(session["expires_at"]) <= now:
        raise NotSignedIn("session.expired", "the session has expired: sign in again", "Authorization")
    row = _credential(db, session["operator"])
    if row is None or row["state"] != "active":
        raise NotSignedIn("session.invalid", "the account is locked: its sessions have ended", "Authorization")
    return _principal(db, row, session["kind"]), session["csrf_hash"]


def csrf_matches(expected_hash: str | None, presented: str | None) -> bool:
    return bool(expected_hash and presented) and hmac.compare_digest(expected_hash, _digest(presented))


def sign_out(db: sqlite_utils.Database, token: str, *, now: dt.datetime) -> None:
    principal, _ = authenticate(db, token, now=now)
    with UnitOfWork(db).step():
        db.execute("UPDATE staff_sessions SET ended_at = ? WHERE token_hash = ?", [timestamp(now), _digest(token)])
        audit.record(db, at=now, operator=principal.code, action="staff.signout", subject=principal.code)


def change_password(db: sqlite_utils.Database, principal: Principal, token: str, *, password: str,
                    new_password: str, now: dt.datetime, writing: Serialise = contextlib.nullcontext) -> None:
    """A signed-in person changes their own password, the current one asked again.

    A wrong current password counts towards the lockout, as at sign-in (a stolen session
    must not be a way to guess it); the other sessions of the account end.
    """
    seen = _credential(db, principal.code)
    verified = seen is not None and _verify(seen["password_hash"], password)
    fresh = None
    if verified:
        rules.check_password(new_password, field="new_password", code=principal.code, name=principal.name)
        if _verify(seen["password_hash"], new_password):
            raise InvalidInput("staff.password", "the new password must differ from the old one", "new_password")
        fresh = _hash(new_password)
    refusal: SbcardError | None = None
    with writing(), UnitOfWork(db).step():
        row = _credential(db, principal.code)
        if row is None or fresh is None or row["password_hash"] != seen["password_hash"]:
            refusal = (_count_failure(db, row, "staff.password_change_failed", {}, now) if row is not None
                       else NotSignedIn("session.invalid", "the account is gone", "Authorization"))
        else:
            db.execute("UPDATE staff_accounts SET password_hash = ?, must_change = 0, password_set_at = ? "
                       "WHERE operator = ?", [fresh, timestamp(now), principal.code])
            db.execute("UPDATE staff_sessions SET ended_at = ? WHERE operator = ? AND ended_at IS NULL "
                       "AND token_hash != ?", [timestamp(now), principal.code, _digest(token)])
            _forget_failures(db, principal.code)
            audit.record(db, at=now, operator=principal.code, action="staff.password_change", subject=principal.code)
    if refusal is not None:
        raise refusal


# ----------------------------------------------------------------------------- helpers


def _open_session(db: sqlite_utils.Database, row: dict[str, Any], *, kind: str, now: dt.datetime) -> Session:
    if kind not in ("bearer", "cookie"):
        raise InvalidInput("session.kind", "a session is 'bearer' or 'cookie'", "kind")
    token = f"sbs_{node_of_db(db)}_{secrets.token_urlsafe(32)}"
    csrf = secrets.token_urlsafe(32) if kind == "cookie" else None
    expires = now + rules.SESSION_TTL
    db["staff_sessions"].insert({"token_hash": _digest(token), "operator": row["operator"], "kind": kind,
                                 "csrf_hash": _digest(csrf) if csrf else None, "created_at": timestamp(now),
                                 "expires_at": expires.isoformat(), "ended_at": None})
    return Session(token=token, csrf=csrf, expires_at=expires, principal=_principal(db, {**row, "must_change": 0}, kind))


def _principal(db: sqlite_utils.Database, row: dict[str, Any], kind: str) -> Principal:
    return Principal(code=row["operator"], name=row["name"], role=row["staff_role"], region=row["region"],
                     outlet=row["outlet"], node=node_of(row["region"]), session_kind=kind,
                     must_change=bool(row["must_change"]))


def _credential(db: sqlite_utils.Database, code: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT s.*, o.name, o.region FROM staff_accounts s JOIN operators o ON o.code = s.operator "
                         "WHERE s.operator = ?", [code]))
    return rows[0] if rows else None


def _lock_state(row: dict[str, Any], now: dt.datetime) -> AccountLocked | None:
    if row["state"] == "locked":
        return AccountLocked("session.locked", "the account is locked by an administrator", "operator")
    if row["locked_until"]:
        until = dt.datetime.fromisoformat(row["locked_until"])
        if until > now:
            return AccountLocked("session.locked", f"too many wrong passwords: the account is locked until "
                                 f"{row['locked_until']}", "operator",
                                 retry_after=max(1, int((until - now).total_seconds())))
    return None


def _verify(password_hash: str, password: str) -> bool:
    with _ARGON2_SLOTS:
        try:
            return _HASHER.verify(password_hash, password or "")
        except (VerificationError, InvalidHashError):
            return False


def _hash(password: str) -> str:
    with _ARGON2_SLOTS:
        return _HASHER.hash(password)


def _forget_failures(db: sqlite_utils.Database, code: str) -> None:
    db.execute("UPDATE staff_accounts SET failed_signins = 0, locked_until = NULL WHERE operator = ?", [code])


def _unknown_subject(code: str) -> str:
    """How the audit log and the throttle name a code no account has: hashed, for it may be a mistyped password."""
    return "unknown:" + hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()[:16]


def _prune(db: sqlite_utils.Database, now: dt.datetime) -> None:
    """Sessions ended or expired more than a day ago, idempotency answers older than a week: gone."""
    day_ago = (now - dt.timedelta(days=1)).isoformat()
    db.execute("DELETE FROM staff_sessions WHERE expires_at < ? OR ended_at < ?", [day_ago, day_ago])
    db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [timestamp(now - IDEMPOTENCY_KEPT)])


def _check_outlet(db: sqlite_utils.Database, outlet: str | None, region: str) -> str | None:
    """The outlet's code, if it is one of this region's (an outlet of another region is not found here)."""
    if not outlet:
        return None
    code = str(OutletCode.parse(outlet))
    if not db["outlets"].count_where("code = ?", [code]):
        raise NotFound("outlet.unknown", f"no outlet {code} in this region's service", "--outlet")
    return code


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name.isprintable():
        raise InvalidInput("operator.name", "a name holds no control characters", "--name")
    return name


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {"code": row["code"], "name": row["name"], "role": row["staff_role"], "region": row["region"],
            "node": node_of(row["region"]), "outlet": row["outlet"], "state": row["state"],
            "must_change_password": bool(row["must_change"]), "failed_signins": row["failed_signins"],
            "locked_until": row["locked_until"], "created_at": row["created_at"]}
