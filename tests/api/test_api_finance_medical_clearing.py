"""Medical claims and refunds, clearing and settlement reports over HTTP against a live server."""

from __future__ import annotations

import pytest
from api_finance_world import balance, finance, finance_template, key, server  # noqa: F401 - fixtures

from sbcard.store.world import open_world

CLAIMS = "/api/v1/medical/claims"


def _audit(home, action: str) -> list[dict]:
    with open_world(home) as world:
        return list(world.region("bj").query("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]))


def test_the_back_office_reads_the_regions_claims(server, finance):
    auditor = server.signed_in("BJ-AUD")
    listed = auditor.get(CLAIMS)
    assert listed.status_code == 200, listed.text
    [claim] = listed.json()["claims"]
    assert (claim["claim_id"], claim["card_number"], claim["status"]) == (finance.claim_id, finance.cards["LIU"],
                                                                          "settled")
    assert claim["total_fen"] == 2500 and claim["fund_fen"] + claim["account_fen"] + claim["self_fen"] == 2500
    assert auditor.get(CLAIMS, params={"card": finance.cards["CHEN"]}).json()["claims"] == []
    shown = auditor.get(f"{CLAIMS}/{finance.claim_id}").json()
    assert shown["hospital"] == "BJH003" and shown["items"][0]["code"] == "XJ01CAA040"
    assert server.signed_in("TJ-FC").get(CLAIMS).json()["claims"] == []
    assert server.signed_in("TJ-FC").get(f"{CLAIMS}/{finance.claim_id}").status_code == 403
    assert server.signed_in("BJ-C2").get(CLAIMS).status_code == 403
    unknown = auditor.get(f"{CLAIMS}/BJH003-99999999")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "medical.claim.unknown"


def test_a_claim_is_refunded_once_by_the_back_office(server, finance):
    before = balance(finance.home, "LIU")
    supervisor = server.signed_in("BJ-SUP")
    assert server.signed_in("BJ-AUD").post(f"{CLAIMS}/{finance.claim_id}/refund", headers=key()).status_code == 403
    wrong = supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", json={"items": ["NOPE"]}, headers=key())
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "medical.refund.items"
    assert supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", json={"items": []},
                           headers=key()).status_code == 422
    refund_key = key()
    answer = supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", headers=refund_key)
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert (done["claim_id"], done["status"], done["refund_fen"], done["operator"]) == (finance.claim_id, "refunded",
                                                                                        2500, "BJ-SUP")
    assert done["resettled"] is None and done["ef08_written"] is None
    assert done["fund_fen"] + done["account_fen"] + done["self_fen"] == 2500
    replay = supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", headers=refund_key)
    assert replay.json() == done and replay.headers["Idempotent-Replayed"] == "true"
    again = supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", headers=key())
    assert again.status_code == 409 and again.json()["error"]["code"] == "medical.refund.done"
    assert server.signed_in("BJ-AUD").get(f"{CLAIMS}/{finance.claim_id}").json()["status"] == "refunded"
    assert balance(finance.home, "LIU") == before  # the claim's self share was cash: the account is untouched
    assert [e["operator"] for e in _audit(finance.home, "medical.refund_requested")] == ["BJ-SUP"]


def test_an_online_claim_owes_nothing(server, finance):
    client = server.signed_in("BJ-FC")
    answer = client.post(f"{CLAIMS}/{finance.claim_id}/settle-owed", headers=key())
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "medical.owed.none"
    cash = client.post(f"{CLAIMS}/{finance.claim_id}/settle-owed", json={"outlet": "BJ-110105-02"}, headers=key())
    assert cash.status_code == 422 and cash.json()["error"]["field"] == "outlet"


def test_clearing_runs_once_and_its_reports_are_read(server, finance):
    supervisor = server.signed_in("BJ-SUP")
    assert server.signed_in("BJ-AUD").post("/api/v1/clearing/runs", json={"date": "2025-03-01"},
                                           headers=key()).status_code == 403
    today = supervisor.post("/api/v1/clearing/runs", json={"date": "2025-03-01"}, headers=key())
    assert today.status_code == 422 and today.json()["error"]["code"] == "clearing.date"  # today: only forced
    assert "force" in today.json()["error"]["message"]
    first = supervisor.post("/api/v1/clearing/runs", json={"date": "2025-03-01", "force": True}, headers=key())
    assert first.status_code == 200, first.text
    run = first.json()
    assert {"date", "changed", "message", "regions", "lines", "settlement", "files"} <= set(run)
    assert run["changed"] is True and run["date"] == "2025-03-01"
    second = supervisor.post("/api/v1/clearing/runs", json={"date": "2025-03-01", "force": True}, headers=key())
    assert second.status_code == 200 and second.json()["changed"] is False
    assert second.json()["settlement"] == run["settlement"]

    auditor = server.signed_in("BJ-AUD")
    report = auditor.get("/api/v1/clearing/report", params={"date": "2025-03-01"})
    assert report.status_code == 200, report.text
    assert report.json()["date"] == "2025-03-01" and report.json()["run"]
    assert report.json()["totals"]["medical_claims"] == 1
    settlement = auditor.get("/api/v1/settlement", params={"date": "2025-03-01"}).json()
    assert set(settlement["net"]) == {"bj", "tj", "he"} and sum(settlement["net"].values()) == 0
    assert auditor.get("/api/v1/settlement").json()["date"] == "2025-03-01"  # today, on the server's clock


@pytest.mark.parametrize("path, params, status", [
    ("/api/v1/clearing/report", {"date": "2025-02-30"}, 422),
    ("/api/v1/settlement", {"date": "yesterday"}, 422),
])
def test_a_bad_date_is_422_naming_it(server, finance, path, params, status):
    answer = server.signed_in("BJ-FC").get(path, params=params)
    assert answer.status_code == status and answer.json()["error"]["field"] == "date"


def test_reports_need_a_session_and_a_role(server, finance):
    assert server.client().get("/api/v1/settlement").status_code == 401
    assert server.signed_in("BJ-C2").get("/api/v1/clearing/report").status_code == 403
    assert server.signed_in("BJ-ADMIN").post("/api/v1/clearing/runs", headers=key()).status_code == 403
    future = server.signed_in("BJ-SUP").post("/api/v1/clearing/runs", json={"date": "2025-03-09"}, headers=key())
    assert future.status_code == 422 and future.json()["error"]["field"] == "date"
