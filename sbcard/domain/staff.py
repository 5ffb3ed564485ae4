"""Staff accounts: the roles a signed-in person may hold, and the rules of signing in.

A staff account is an operator with a credential. The service's use cases check the
operator's *service role* (counter, finance, supervisor: what a clerk may do at a counter
or in finance); the network service checks the finer *staff role* first (a finance maker
uploads a batch, a finance checker approves it). Each staff role has the service role its
operator row carries: both finance roles are ``finance`` to the use cases, which is why the
use cases still refuse the maker approving their own batch. Auditors and administrators
have no service role that any use case accepts: they read, and administer accounts.
"""

from __future__ import annotations

import datetime as dt

from sbcard.domain.errors import InvalidInput

COUNTER = "counter"
FINANCE_MAKER = "finance_maker"
FINANCE_CHECKER = "finance_checker"
SUPERVISOR = "supervisor"
AUDITOR = "auditor"
ADMIN = "admin"

STAFF_ROLES: tuple[str, ...] = (COUNTER, FINANCE_MAKER, FINANCE_CHECKER, SUPERVISOR, AUDITOR, ADMIN)

# the operator row's role for each staff role (sbcard.services.outlets.operators.ROLES)
SERVICE_ROLE: dict[str, str] = {
    COUNTER: "counter",
    FINANCE_MAKER: "finance",
    FINANCE_CHECKER: "finance",
    SUPERVISOR: "supervisor",
    AUDITOR: "auditor",
    ADMIN: "admin",
}

# Who may see a holder's unmasked personal data when they ask for it (audited).
REVEAL_ROLES = frozenset({COUNTER, SUPERVISOR, AUDITOR})

MIN_PASSWORD = 10
MAX_PASSWORD = 128
MAX_FAILED_SIGNINS = 5  # the 5th wrong password in a row locks the account
LOCKOUT = dt.timedelta(minutes=15)
SESSION_TTL = dt.timedelta(hours=8)  # a working day at a counter; then sign in again


def check_role(role: str, field: str = "--role") -> str:
    """The role, or InvalidInput naming the field."""
    role = (role or "").strip()
    if role not in STAFF_ROLES:
        raise InvalidInput("staff.role", f"role {role!r} is not one of {', '.join(STAFF_ROLES)}", field)
    return role


def check_password(password: str, *, field: str = "password", code: str = "", name: str = "") -> str:
    """A password a person chose: long enough, not their code or name, not all one character."""
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise InvalidInput("staff.password", f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", field)
    if not password.isprintable():
        raise InvalidInput("staff.password", "a password holds no control characters", field)
    lowered = password.lower()
    if (code and code.lower() in lowered) or (name and name.strip() and name.strip().lower() in lowered):
        raise InvalidInput("staff.password", "a password must not contain the operator's code or name", field)
    if len(set(password)) < 4:
        raise InvalidInput("staff.password", "a password needs at least 4 different characters", field)
    return password


def locked_until(failed: int, now: dt.datetime) -> dt.datetime | None:
    """When an account with ``failed`` wrong passwords in a row opens again (None: not locked)."""
    return now + LOCKOUT if failed >= MAX_FAILED_SIGNINS else None
