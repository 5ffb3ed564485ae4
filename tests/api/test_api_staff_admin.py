"""Administering staff over the service: only an administrator, in their own region, every act audited."""

from __future__ import annotations

import pytest
from api_world import FIRST_PASSWORD, PASSWORD

from sbcard.store.world import open_world

NEW = {"code": "BJ-C9", "name": "黄磊", "role": "counter", "region": "110105", "outlet": "BJ-110105-01",
       "password": "given-Pass-2025"}


def test_an_administrator_creates_an_account_who_then_signs_in(live_server, signed_in):
    admin = signed_in("BJ-ADMIN")
    created = admin.post("/api/v1/staff", json=NEW, headers={"Idempotency-Key": "new-c9"})
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "counter" and created.json()["must_change_password"] is True
    assert "password" not in created.text.replace("must_change_password", "")
    assert live_server.sign_in("BJ-C9", "given-Pass-2025", new_password="his-Own-Pass-1").status_code == 200
    with open_world(live_server.home) as world:
        rows = list(world.region("bj").query("SELECT operator FROM audit_log WHERE action = 'staff.add' "
                                             "AND subject = 'BJ-C9'"))
    assert rows == [{"operator": "BJ-ADMIN"}]  # the session's operator, not anyone the body could name


@pytest.mark.parametrize("code", ["BJ-C1", "BJ-FM", "BJ-FC", "BJ-SUP", "BJ-AUD"])
def test_no_other_role_may_create_staff(signed_in, code):
    answer = signed_in(code).post("/api/v1/staff", json=NEW, headers={"Idempotency-Key": "try"})
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "role.forbidden" and "admin" in error["message"]


def test_an_administrator_acts_only_in_their_own_region(signed_in):
    answer = signed_in("BJ-ADMIN").post("/api/v1/staff", json={**NEW, "code": "TJ-C9", "region": "120103",
                                                               "outlet": None}, headers={"Idempotency-Key": "tj"})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "scope.region"


def test_a_taken_code_is_refused_nationally(signed_in):
    answer = signed_in("BJ-ADMIN").post("/api/v1/staff", json={**NEW, "code": "TJ-C1"},
                                        headers={"Idempotency-Key": "dup"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "operator.exists"


def test_creating_twice_with_one_key_creates_once(signed_in):
    admin = signed_in("BJ-ADMIN")
    first = admin.post("/api/v1/staff", json=NEW, headers={"Idempotency-Key": "once"})
    again = admin.post("/api/v1/staff", json=NEW, headers={"Idempotency-Key": "once"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = admin.post("/api/v1/staff", json={**NEW, "name": "别人"}, headers={"Idempotency-Key": "once"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency.mismatch"
    assert admin.post("/api/v1/staff", json=NEW).status_code == 400  # no key at all


def test_granting_a_role_ends_the_sessions_and_the_next_one_carries_it(live_server, signed_in):
    clerk = signed_in("BJ-C2")
    granted = signed_in("BJ-ADMIN").post("/api/v1/staff/BJ-C2/role", json={"role": "supervisor"})
    assert granted.status_code == 200 and granted.json()["role"] == "supervisor"
    assert clerk.get("/api/v1/session").status_code == 401
    assert live_server.sign_in("BJ-C2", PASSWORD).json()["roles"] == ["supervisor"]


def test_a_locked_account_cannot_sign_in_until_unlocked(live_server, signed_in):
    clerk = signed_in("BJ-C2")
    admin = signed_in("BJ-ADMIN")
    assert admin.post("/api/v1/staff/BJ-C2/lock", json={"reason": "left the outlet"}).json()["state"] == "locked"
    assert clerk.get("/api/v1/session").status_code == 401
    assert live_server.sign_in("BJ-C2", PASSWORD).status_code == 423
    assert admin.post("/api/v1/staff/BJ-C2/unlock").json()["state"] == "active"
    assert live_server.sign_in("BJ-C2", PASSWORD).status_code == 200


def test_a_password_reset_asks_for_a_new_own_password(live_server, signed_in):
    signed_in("BJ-C2")
    reset = signed_in("BJ-ADMIN").post("/api/v1/staff/BJ-C2/password", json={"password": FIRST_PASSWORD})
    assert reset.json()["must_change_password"] is True
    assert live_server.sign_in("BJ-C2", FIRST_PASSWORD).status_code == 403


def test_supervisors_and_auditors_read_the_accounts_but_clerks_do_not(signed_in):
    listed = signed_in("BJ-AUD").get("/api/v1/staff").json()["staff"]
    assert {row["code"] for row in listed} >= {"BJ-ADMIN", "BJ-C1"}
    assert all(row["node"] == "bj" for row in listed)
    assert signed_in("BJ-C1").get("/api/v1/staff").status_code == 403


def test_an_idempotency_key_is_bound_to_the_whole_request(signed_in):
    admin = signed_in("BJ-ADMIN")
    first = admin.post("/api/v1/staff/BJ-C2/password", json={"password": "reset-One-1111"},
                       headers={"Idempotency-Key": "K"})
    assert first.status_code == 200
    other = admin.post("/api/v1/staff/BJ-C2/password", json={"password": "reset-Two-2222"},
                       headers={"Idempotency-Key": "K"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency.mismatch"
    elsewhere = admin.post("/api/v1/staff/BJ-C2/password?x=1", json={"password": "reset-One-1111"},
                           headers={"Idempotency-Key": "K"})
    assert elsewhere.status_code == 422


def test_another_caller_never_gets_my_kept_answer(signed_in, live_server):
    admin = signed_in("BJ-ADMIN")
    assert admin.post("/api/v1/staff", json=NEW, headers={"Idempotency-Key": "shared"}).status_code == 201
    clerk = signed_in("BJ-C1")
    answer = clerk.post("/api/v1/staff", json=NEW, headers={"Idempotency-Key": "shared"})
    assert answer.status_code == 403  # the clerk's own call, refused by role: not the admin's answer replayed


def test_errors_name_the_json_fields_not_the_command_line_options(signed_in):
    answer = signed_in("BJ-ADMIN").post("/api/v1/staff", json={**NEW, "outlet": "NOT-AN-OUTLET"},
                                        headers={"Idempotency-Key": "bad-outlet"})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "outlet"
