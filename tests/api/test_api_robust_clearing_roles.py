"""Who may start a clearing run: a finance checker or a supervisor of any region; never a maker (it says why)."""

from __future__ import annotations

import pytest
from api_finance_world import finance, finance_template, key, server  # noqa: F401 - fixtures

RUN = "/api/v1/clearing/runs"


@pytest.mark.parametrize("operator, status", [
    ("BJ-FM", 403), ("TJ-FM", 403), ("BJ-AUD", 403), ("BJ-ADMIN", 403), ("BJ-C2", 403),
    ("BJ-FC", 200), ("TJ-FC", 200), ("BJ-SUP", 200),
])
def test_each_role_and_a_clearing_run(server, operator, status):  # noqa: F811
    answer = server.signed_in(operator).post(RUN, json={"date": "2025-03-01"}, headers=key())
    assert answer.status_code == status, answer.text
    if status == 403:
        error = answer.json()["error"]
        assert error["code"] == "role.forbidden" and error["field"] == "role"
        assert "finance checker or a supervisor" in error["message"]
