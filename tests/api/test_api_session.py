"""Signing in to the service: first password, sessions, expiry, sign-out, lockout, CSRF, audit."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from api_world import FIRST_PASSWORD, PASSWORD

from sbcard.domain.staff import MAX_FAILED_SIGNINS, SESSION_TTL
from sbcard.store.world import open_world


def _audit(home, action: str) -> list[dict]:
    with open_world(home) as world:
        return list(world.region("bj").query("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]))


def test_health_and_the_schema_need_no_session(live_server):
    client = live_server.client()
    assert client.get("/api/v1/health").json()["status"] == "ok"
    schema = client.get("/api/openapi.json").json()
    assert "/api/v1/session" in schema["paths"]
    assert client.get("/api/docs").status_code == 200


def test_the_first_sign_in_must_choose_a_new_password(live_server):
    refused = live_server.sign_in("BJ-C1", FIRST_PASSWORD)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "session.password_change_required"
    answer = live_server.sign_in("BJ-C1", FIRST_PASSWORD, new_password=PASSWORD)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) >= {"token", "expires_at", "roles"} and body["roles"] == ["counter"]
    assert live_server.sign_in("BJ-C1", FIRST_PASSWORD).status_code == 401  # the first password is gone
    assert live_server.sign_in("BJ-C1", PASSWORD).status_code == 200


@pytest.mark.parametrize("new_password, reason", [
    ("short", "10 to 128 characters"), ("aaaaaaaaaaaa", "4 different characters"), ("xxBJ-C1xx-2025", "code or name"),
])
def test_a_weak_new_password_is_refused_naming_the_field(live_server, new_password, reason):
    answer = live_server.sign_in("BJ-C1", FIRST_PASSWORD, new_password=new_password)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == "new_password" and reason in error["message"]


def test_a_token_works_until_it_expires_or_is_signed_out(live_server, signed_in):
    client = signed_in("BJ-C1")
    assert client.get("/api/v1/session").json()["operator"] == "BJ-C1"
    live_server.clock.advance(SESSION_TTL + dt.timedelta(seconds=1))
    expired = client.get("/api/v1/session")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "session.expired"
    again = signed_in("BJ-C1")
    assert again.delete("/api/v1/session").status_code == 200
    assert again.get("/api/v1/session").status_code == 401


def test_state_changes_without_a_session_are_401(live_server):
    client = live_server.client()
    answer = client.post("/api/v1/staff", json={"code": "X1", "name": "x", "role": "counter", "region": "110105",
                                                "password": "whatever-1234"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    bogus = live_server.client(headers={"Authorization": "Bearer sbs_bj_forged"})
    assert bogus.post("/api/v1/session/password", json={"password": "a", "new_password": "b"}).status_code == 401


def test_wrong_passwords_lock_the_account_with_a_retry_after(live_server, signed_in):
    signed_in("BJ-C2")
    for _ in range(MAX_FAILED_SIGNINS - 1):
        assert live_server.sign_in("BJ-C2", "wrong-password-1").status_code == 401
    locked = live_server.sign_in("BJ-C2", "wrong-password-1")
    assert locked.status_code == 423
    assert int(locked.headers["Retry-After"]) > 0
    assert live_server.sign_in("BJ-C2", PASSWORD).status_code == 423  # even the right one, while locked
    live_server.clock.advance(dt.timedelta(seconds=int(locked.headers["Retry-After"]) + 1))
    assert live_server.sign_in("BJ-C2", PASSWORD).status_code == 200
    failures = _audit(live_server.home, "staff.signin_failed")
    assert len([row for row in failures if row["subject"] == "BJ-C2"]) == MAX_FAILED_SIGNINS
    assert _audit(live_server.home, "staff.locked_out")


def test_every_sign_in_is_audited_without_the_password(live_server, signed_in):
    signed_in("BJ-SUP")
    rows = _audit(live_server.home, "staff.signin")
    assert [row["operator"] for row in rows] == ["BJ-SUP"]
    assert PASSWORD not in str(rows) and FIRST_PASSWORD not in str(rows)


def test_an_unknown_operator_gets_the_same_answer_as_a_wrong_password(live_server):
    unknown = live_server.sign_in("NOBODY", PASSWORD)
    wrong = live_server.sign_in("BJ-C1", "not-the-password-9")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_a_cookie_session_needs_its_csrf_token_to_change_anything(live_server):
    live_server.signed_in("BJ-SUP")  # first password changed
    browser = live_server.client()
    answer = browser.post("/api/v1/session", json={"operator": "BJ-SUP", "password": PASSWORD, "kind": "cookie"})
    assert answer.status_code == 200
    body = answer.json()
    assert "token" not in body and body["csrf_token"]
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    page = live_server.client(cookies={"sbcard_session": token})
    assert page.get("/api/v1/session").status_code == 200  # reading needs no CSRF token
    forged = page.post("/api/v1/session/password", json={"password": PASSWORD, "new_password": "another-Secret-1"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf.invalid"
    wrong = page.post("/api/v1/session/password", json={"password": PASSWORD, "new_password": "another-Secret-1"},
                      headers={"X-CSRF-Token": "guessed"})
    assert wrong.status_code == 403
    right = page.post("/api/v1/session/password", json={"password": PASSWORD, "new_password": "another-Secret-1"},
                      headers={"X-CSRF-Token": body["csrf_token"]})
    assert right.status_code == 200


def test_errors_have_one_shape_and_a_request_id(live_server):
    client = live_server.client()
    for answer in (client.get("/api/v1/nowhere"), client.post("/api/v1/session", content=b"{not json"),
                   client.post("/api/v1/session", json={"operator": "BJ-C1"})):
        assert set(answer.json()) == {"error"} and set(answer.json()["error"]) == {"code", "field", "message"}
        assert answer.headers["X-Request-Id"]
    assert client.post("/api/v1/session", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 400
    missing = client.post("/api/v1/session", json={"operator": "BJ-C1"})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "password"


def test_a_lockout_that_ran_out_starts_the_count_again(live_server, signed_in):
    signed_in("BJ-C2")
    for _ in range(MAX_FAILED_SIGNINS):
        live_server.sign_in("BJ-C2", "wrong-password-1")
    live_server.clock.advance(dt.timedelta(minutes=16))
    assert live_server.sign_in("BJ-C2", "wrong-password-1").status_code == 401  # one more is not a new lockout
    assert live_server.sign_in("BJ-C2", PASSWORD).status_code == 200


def test_an_unknown_code_is_locked_out_like_an_account(live_server, signed_in):
    signed_in("BJ-C2")
    known = [live_server.sign_in("BJ-C2", "wrong-password-1") for _ in range(MAX_FAILED_SIGNINS)]
    unknown = [live_server.sign_in("BJ-NOBODY", "wrong-password-1") for _ in range(MAX_FAILED_SIGNINS)]
    assert [a.status_code for a in known] == [a.status_code for a in unknown] == [401] * 4 + [423]
    assert known[-1].json() == unknown[-1].json()
    assert known[-1].headers["Retry-After"] == unknown[-1].headers["Retry-After"]


def test_an_unknown_code_is_audited_hashed_for_it_may_be_a_password(live_server):
    live_server.sign_in("My-Real-Pw-2025!", "oops")
    rows = _audit(live_server.home, "staff.signin_failed")
    assert rows and "My-Real-Pw-2025!" not in str(rows)
    assert rows[-1]["subject"].startswith("unknown:")


def test_one_address_guessing_is_throttled_before_any_password_is_checked(live_server):
    answers = [live_server.sign_in(f"GUESS-{i:02d}", "wrong-password-1") for i in range(21)]
    assert [a.status_code for a in answers[:20]] == [401] * 20
    assert answers[20].status_code == 429 and int(answers[20].headers["Retry-After"]) > 0
    assert answers[20].json()["error"]["code"] == "session.throttled"


def test_changing_the_password_asks_the_current_one_and_ends_the_other_sessions(live_server, signed_in):
    desk = signed_in("BJ-SUP")
    laptop = signed_in("BJ-SUP")
    wrong = desk.post("/api/v1/session/password", json={"password": "not-it-at-all-1", "new_password": "next-Pass-2026"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "password.wrong"
    assert desk.get("/api/v1/session").status_code == 200  # a wrong password does not end the session
    same = desk.post("/api/v1/session/password", json={"password": PASSWORD, "new_password": PASSWORD})
    assert same.status_code == 422 and same.json()["error"]["field"] == "new_password"
    changed = desk.post("/api/v1/session/password", json={"password": PASSWORD, "new_password": "next-Pass-2026"})
    assert changed.status_code == 200
    assert desk.get("/api/v1/session").status_code == 200
    assert laptop.get("/api/v1/session").status_code == 401
    assert _audit(live_server.home, "staff.password_change_failed")


def test_a_body_too_large_is_refused_before_it_is_read(live_server):
    answer = live_server.client().post("/api/v1/session", content=b"x" * (2 << 20),
                                       headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request.too_large"


def test_a_password_with_control_characters_is_refused(live_server):
    answer = live_server.sign_in("BJ-C1", FIRST_PASSWORD, new_password="new-Pass-20\x0025")
    assert answer.status_code == 422 and "control" in answer.json()["error"]["message"]
