"""A state change interrupted after it wrote a part keeps its key: a blind retry must not do that part twice."""

from __future__ import annotations

import pytest
from api_world import start_server
from fastapi import Depends

from sbcard.api.app import create_app
from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.config import ServiceConfig
from sbcard.clock import SimClock
from world_template import NOW


@pytest.fixture
def half_done_server(api_home):
    clock = SimClock(NOW)
    app = create_app(ServiceConfig(home=api_home, clock=clock))
    attempts: list[int] = []

    @app.post("/api/v1/test/half-done")
    def half_done(call: Call = Depends(staff_call())):
        def do(world):
            attempts.append(1)
            world.region("bj").execute("INSERT INTO audit_log (at, operator, action, subject, details) "
                                       "VALUES ('2025-03-01T09:30:00+08:00', 'x', 'test.part', 'x', '{}')")
            raise RuntimeError("the process fell over half way")

        return call.write(do)

    server = start_server(api_home, clock, app=app)
    try:
        yield server, attempts
    finally:
        server.stop()


def test_a_retry_after_a_half_done_write_is_refused_not_run_again(half_done_server):
    server, attempts = half_done_server
    clerk = server.signed_in("BJ-C1")
    first = clerk.post("/api/v1/test/half-done", headers={"Idempotency-Key": "once"})
    assert first.status_code == 500 and "Traceback" not in first.text
    assert first.json()["error"]["code"] == "internal.error"
    retry = clerk.post("/api/v1/test/half-done", headers={"Idempotency-Key": "once"})
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "idempotency.unfinished"
    assert attempts == [1]
