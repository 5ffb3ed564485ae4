"""The accounts and passwords of the API tests' world (imported by ``conftest.py`` and the tests).

A module of its own, with a name no other folder uses: ``from conftest import …`` would find
whichever folder's ``conftest`` was imported first when the whole suite runs.
"""

from __future__ import annotations

from argon2 import PasswordHasher, profiles

from sbcard.services.outlets import staff as staff_service
from world_template import COUNTER_OUTLETS

# argon2 at its production cost takes ~0.5 s a hash on the 2-core test machine; the tests sign in
# hundreds of times, so they hash with argon2's cheapest profile (what is tested is the flow, not
# the cost). The subprocess tests of ``sbcard serve`` run the production parameters.
staff_service._HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)

FIRST_PASSWORD = "first-Pass-2025"
PASSWORD = "own-Secret-7788"

# code → (name, staff role, region, outlet)
STAFF: dict[str, tuple[str, str, str, str | None]] = {
    "BJ-ADMIN": ("周敏", "admin", "110000", None),
    "BJ-C1": ("王芳", "counter", "110105", COUNTER_OUTLETS["bj"]),
    "BJ-C2": ("陈刚", "counter", "110105", None),
    "BJ-FM": ("刘洋", "finance_maker", "110000", None),
    "BJ-FC": ("孙丽", "finance_checker", "110000", None),
    "BJ-SUP": ("郑伟", "supervisor", "110000", None),
    "BJ-AUD": ("吴静", "auditor", "110000", None),
    "TJ-C1": ("李娜", "counter", "120103", COUNTER_OUTLETS["tj"]),
    "TJ-FM": ("马超", "finance_maker", "120000", None),
    "TJ-FC": ("何琳", "finance_checker", "120000", None),
    "HE-C1": ("赵磊", "counter", "130102", COUNTER_OUTLETS["he"]),
}


