"""Who may start a clearing run: a finance checker or a supervisor of any region; never a maker (it says why)."""

from __future__ import annotations

import json

import pytest
from api_finance_world import finance, finance_template, key, server  # noqa: F401 - fixtures

from sbcard.store.world import open_world

RUN = "/api/v1/clearing/runs"


@pytest.mark.parametrize("operator, status", [
    ("BJ-FM", 403), ("TJ-FM", 403), ("BJ-AUD", 403), ("BJ-ADMIN", 403), ("BJ-C2", 403),
    ("BJ-FC", 200), ("TJ-FC", 200), ("BJ-SUP", 200),
])
def test_each_role_and_a_clearing_run(server, operator, status):  # noqa: F811
    answer = server.signed_in(operator).post(RUN, json={"date": "2025-02-28"}, headers=key())  # yesterday
    assert answer.status_code == status, answer.text
    if status == 403:
        error = answer.json()["error"]
        assert error["code"] == "role.forbidden" and error["field"] == "role"
        assert "finance checker or a supervisor" in error["message"]


def _audit(home, action: str) -> list[dict]:
    with open_world(home) as world:
        return list(world.region("tj").query("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]))


def test_a_run_clears_yesterday_by_default_and_today_only_when_a_supervisor_forces_it(server, finance):  # noqa: F811
    """Clearing today at 10:00 would close it for all three regions: refused unless a supervisor insists."""
    checker = server.signed_in("TJ-FC")
    default = checker.post(RUN, headers=key())
    assert default.status_code == 200, default.text
    assert default.json()["date"] == "2025-02-28"  # yesterday on the server's clock (2025-03-01, Beijing)
    today = checker.post(RUN, json={"date": "2025-03-01"}, headers=key())
    assert today.status_code == 422 and today.json()["error"]["code"] == "clearing.date"
    forced = checker.post(RUN, json={"date": "2025-03-01", "force": True}, headers=key())
    assert forced.status_code == 403 and forced.json()["error"]["field"] == "force"
    with open_world(finance.home) as world:
        assert list(world.hub().query("SELECT * FROM settlements WHERE day = '2025-03-01'")) == []
    supervisor = server.signed_in("BJ-SUP").post(RUN, json={"date": "2025-03-01", "force": True}, headers=key())
    assert supervisor.status_code == 200 and supervisor.json()["changed"] is True


def test_a_clearing_run_is_audited_in_its_operators_region_and_the_hub_keeps_the_operator(server, finance):  # noqa: F811
    answer = server.signed_in("TJ-FC").post(RUN, json={"date": "2025-02-28"}, headers=key())
    assert answer.status_code == 200, answer.text
    [entry] = _audit(finance.home, "clearing.run")
    assert (entry["operator"], entry["subject"]) == ("TJ-FC", "2025-02-28")
    assert json.loads(entry["details"])["changed"] is True
    with open_world(finance.home) as world:
        [message] = world.hub().query("SELECT payload FROM messages WHERE kind = 'settlement'")
    assert json.loads(message["payload"])["operator"] == "TJ-FC"
