"""Subsidy batches over HTTP against a live server: upload, approve by a second person, pay as a job, reverse."""

from __future__ import annotations

import io
import threading

import openpyxl
import pytest
from api_finance_world import (  # noqa: F401 - fixtures
    DISTRICT,
    PERSONS,
    balance,
    batch_csv,
    finance,
    finance_template,
    key,
    server,
    standard_batch,
    upload,
    wait_for_job,
)

from sbcard.store.world import open_world

BATCHES = "/api/v1/subsidies/batches"


def _audit(home, action: str) -> list[dict]:
    with open_world(home) as world:
        return list(world.region("bj").query("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]))


def _uploaded(server, finance, content: bytes | None = None) -> str:
    answer = upload(server.signed_in("BJ-FM"), content or standard_batch(finance))
    assert answer.status_code == 201, answer.text
    return answer.json()["batch_id"]


def _approved(server, finance) -> str:
    batch = _uploaded(server, finance)
    answer = server.signed_in("BJ-FC").post(f"{BATCHES}/{batch}/approve", headers=key())
    assert answer.status_code == 200, answer.text
    return batch


def _paid(server, finance) -> str:
    batch = _approved(server, finance)
    client = server.signed_in("BJ-FC")
    job = wait_for_job(client, client.post(f"{BATCHES}/{batch}/pay", headers=key()).json()["url"])
    assert job["state"] == "done", job
    return batch


def test_a_batch_uploaded_approved_by_another_person_and_paid_as_a_job_credits_each_card_once(server, finance):
    maker, checker = server.signed_in("BJ-FM"), server.signed_in("BJ-FC")
    before = {holder: balance(finance.home, holder) for holder in ("LIU", "CHEN")}

    uploaded = upload(maker, standard_batch(finance).decode().encode("gbk"), name="民政局 高龄津贴.csv")
    assert uploaded.status_code == 201, uploaded.text
    made = uploaded.json()
    assert (made["encoding"], made["rows"], made["valid"], made["invalid"]) == ("GBK", 3, 2, 1)
    assert made["valid_fen"] == 30000 and made["invalid_fen"] == 5000
    batch = made["batch_id"]

    shown = checker.get(f"{BATCHES}/{batch}").json()
    assert (shown["status"], shown["maker"], shown["checker"]) == ("imported", "BJ-FM", None)
    assert shown["file_name"] == "民政局_高龄津贴.csv" and shown["declared_total_fen"] == 35000
    assert [b["batch_id"] for b in checker.get(BATCHES, params={"status": "imported"}).json()["batches"]] == [batch]

    approved = checker.post(f"{BATCHES}/{batch}/approve", headers=key())
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["checker"]) == ("approved", "BJ-FC")

    pay_key = key()
    accepted = checker.post(f"{BATCHES}/{batch}/pay", json={"chunk": 1}, headers=pay_key)
    assert accepted.status_code == 202, accepted.text
    first = accepted.json()
    assert first["state"] in ("queued", "running", "done") and first["batch_id"] == batch
    assert accepted.headers["Location"] == first["url"] == f"/api/v1/jobs/{first['job_id']}"
    job = wait_for_job(checker, first["url"])
    assert job["state"] == "done" and job["error"] is None, job
    assert (job["done"], job["total"], job["operator"]) == (2, 2, "BJ-FC")
    result = job["result"]
    assert (result["status"], result["paid"], result["paid_fen"], result["already"]) == ("paid", 2, 30000, False)
    assert result["failed"] == 1 and result["paid_fen"] + result["failed_fen"] == result["declared_total_fen"]
    assert balance(finance.home, "LIU") == before["LIU"] + 10000
    assert balance(finance.home, "CHEN") == before["CHEN"] + 20000

    replayed = checker.post(f"{BATCHES}/{batch}/pay", json={"chunk": 1}, headers=pay_key)
    assert replayed.status_code == 202 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == first

    again = checker.post(f"{BATCHES}/{batch}/pay", headers=key())  # a new request: the use case answers
    assert again.status_code == 202 and again.json()["job_id"] != first["job_id"]
    later = wait_for_job(checker, again.json()["url"])
    assert later["state"] == "done" and later["result"]["already"] is True and later["result"]["this_run"]["paid"] == 0
    assert balance(finance.home, "LIU") == before["LIU"] + 10000
    assert balance(finance.home, "CHEN") == before["CHEN"] + 20000
    assert checker.get(f"{BATCHES}/{batch}").json()["status"] == "paid"
    assert [e["operator"] for e in _audit(finance.home, "subsidy.pay_started")] == ["BJ-FC"]


def test_a_second_pay_while_the_first_waits_gets_the_same_job(server, finance):
    batch = _approved(server, finance)
    client = server.signed_in("BJ-SUP")
    jobs = server.server.config.app.state.jobs
    release = threading.Event()

    def hold(world, job, between) -> None:  # keeps the one job thread busy, letting the requests write meanwhile
        while not release.wait(0.01):
            between()

    jobs.submit("test.hold", "hold", node="bj", operator="test", work=hold)
    try:
        first = client.post(f"{BATCHES}/{batch}/pay", headers=key())
        second = client.post(f"{BATCHES}/{batch}/pay", headers=key())
        assert first.status_code == second.status_code == 202
        assert first.json()["state"] == "queued" and first.json()["already_running"] is False
        assert second.json()["job_id"] == first.json()["job_id"] and second.json()["already_running"] is True
        polled = client.get(first.json()["url"]).json()
        assert polled["state"] == "queued" and polled["result"] is None
    finally:
        release.set()
    job = wait_for_job(client, first.json()["url"])
    assert job["state"] == "done" and job["result"]["paid"] == 2 and job["operator"] == "BJ-SUP"


def test_the_maker_cannot_check_their_own_batch_even_with_a_checker_role(server, finance):
    batch = _uploaded(server, finance)
    maker = server.signed_in("BJ-FM")
    refused = maker.post(f"{BATCHES}/{batch}/approve", headers=key())
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role.forbidden"

    granted = server.signed_in("BJ-ADMIN").post("/api/v1/staff/BJ-FM/role", json={"role": "finance_checker"})
    assert granted.status_code == 200, granted.text
    second_session = server.signed_in("BJ-FM")  # the grant ended the first session
    assert second_session.get("/api/v1/session").json()["roles"] == ["finance_checker"]
    for verb, body in (("approve", None), ("reject", {"reason": "wrong month"})):
        answer = second_session.post(f"{BATCHES}/{batch}/{verb}", json=body, headers=key())
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "subsidy.maker_checker"
    assert server.signed_in("BJ-FC").get(f"{BATCHES}/{batch}").json()["status"] == "imported"


def test_the_failures_download_is_the_csv_to_correct_and_resubmit(server, finance):
    batch = _paid(server, finance)
    auditor = server.signed_in("BJ-AUD")
    answer = auditor.get(f"{BATCHES}/{batch}/failures")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert f'filename="{batch}-failures.csv"' in answer.headers["content-disposition"]
    assert answer.headers["cache-control"] == "no-store, private"
    assert answer.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for spreadsheet programs
    lines = answer.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "seq,citizen_id,name,card_number,item,period,amount,remark,reason_code,reason"
    assert len(lines) == 2 and lines[1].startswith(f"3,{PERSONS['ZHAO'][0]},赵强,,GLJT,202503,50.00,")
    assert (answer.headers["X-Rows"], answer.headers["X-Amount-Fen"]) == ("1", "5000")
    assert [e["operator"] for e in _audit(finance.home, "subsidy.failures")] == ["BJ-AUD"]


def test_a_rejected_batch_is_never_paid(server, finance):
    batch = _uploaded(server, finance)
    checker = server.signed_in("BJ-FC")
    no_reason = checker.post(f"{BATCHES}/{batch}/reject", json={"reason": ""}, headers=key())
    assert no_reason.status_code == 422 and no_reason.json()["error"]["field"] == "reason"
    rejected = checker.post(f"{BATCHES}/{batch}/reject", json={"reason": "the period should be 202504"}, headers=key())
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reject_reason"]) == ("rejected", "the period should be 202504")
    pay = checker.post(f"{BATCHES}/{batch}/pay", headers=key())
    assert pay.status_code == 409 and pay.json()["error"]["code"] == "subsidy.rejected"
    approve = checker.post(f"{BATCHES}/{batch}/approve", headers=key())
    assert approve.status_code == 409 and approve.json()["error"]["code"] == "subsidy.rejected"


def test_a_paid_row_is_reversed_once(server, finance):
    batch = _paid(server, finance)
    paid = balance(finance.home, "LIU")
    maker = server.signed_in("BJ-FM")
    alone = maker.post(f"{BATCHES}/{batch}/rows/1/reverse", json={"reason": "paid in error"}, headers=key())
    assert alone.status_code == 409 and alone.json()["error"]["code"] == "subsidy.maker_reverses"
    client = server.signed_in("BJ-FC")  # money back out of a holder's account: not by the batch's own maker
    reverse_key = key()
    answer = client.post(f"{BATCHES}/{batch}/rows/1/reverse", json={"reason": "paid in error"}, headers=reverse_key)
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert (done["seq"], done["amount_fen"], done["operator"], done["card_number"]) == (1, 10000, "BJ-FC",
                                                                                          finance.cards["LIU"])
    assert "*" in done["account_no"] and done["balance_fen"] == paid - 10000
    assert balance(finance.home, "LIU") == paid - 10000
    replay = client.post(f"{BATCHES}/{batch}/rows/1/reverse", json={"reason": "paid in error"}, headers=reverse_key)
    assert replay.json() == done and replay.headers["Idempotent-Replayed"] == "true"
    again = client.post(f"{BATCHES}/{batch}/rows/1/reverse", json={"reason": "paid in error"}, headers=key())
    assert again.status_code == 409 and again.json()["error"]["code"] == "subsidy.already_reversed"
    never_paid = client.post(f"{BATCHES}/{batch}/rows/3/reverse", json={"reason": "x"}, headers=key())
    assert never_paid.status_code == 409 and never_paid.json()["error"]["code"] == "subsidy.not_paid"
    assert balance(finance.home, "LIU") == paid - 10000
    assert client.post(f"{BATCHES}/{batch}/rows/0/reverse", json={"reason": "x"}, headers=key()).status_code == 422


def test_an_xlsx_without_a_trailer_takes_the_declared_totals_and_a_file_is_imported_once(server, finance):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark"])
    sheet.append([1, PERSONS["LIU"][0], "刘洋", finance.cards["LIU"], "GLJT", "202503", "88.80", None])
    sheet.append([2, PERSONS["CHEN"][0], "陈静", finance.cards["CHEN"], "GLJT", "202503", "11.20", None])
    content = io.BytesIO()
    book.save(content)
    maker = server.signed_in("BJ-FM")
    first_key = key()
    answer = upload(maker, content.getvalue(), name="batch.xlsx", count="2", total="100.00", headers=first_key)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["format"], answer.json()["valid"], answer.json()["valid_fen"]) == ("xlsx", 2, 10000)
    replay = upload(maker, content.getvalue(), name="batch.xlsx", count="2", total="100.00", headers=first_key)
    assert replay.status_code == 201 and replay.json() == answer.json()
    other = upload(maker, batch_csv([(1, "LIU", "", "GLJT", "1.00")]), headers=first_key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency.mismatch"
    twice = upload(maker, content.getvalue(), name="again.xlsx", count="2", total="100.00")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "subsidy.same_file"
    off = upload(maker, batch_csv([(1, "LIU", "", "GLJT", "1.00")], trailer=False), count="1", total="1.01")
    assert off.status_code == 422, off.text


@pytest.mark.parametrize("who, region, status, code", [
    (None, DISTRICT, 401, "session.missing"),
    ("BJ-C2", DISTRICT, 403, "role.forbidden"),
    ("BJ-FC", DISTRICT, 403, "role.forbidden"),
    ("TJ-FM", DISTRICT, 403, "scope.region"),
    ("BJ-FM", "11010", 422, None),
])
def test_who_may_upload_and_where(server, finance, who, region, status, code):
    client = server.signed_in(who) if who else server.client()
    answer = upload(client, standard_batch(finance), region=region)
    assert answer.status_code == status, answer.text
    if code:
        assert answer.json()["error"]["code"] == code
    else:
        assert answer.json()["error"]["field"] == "region"


def test_refusals_by_role_scope_state_and_header(server, finance):
    batch = _uploaded(server, finance)
    checker, auditor = server.signed_in("BJ-FC"), server.signed_in("BJ-AUD")
    assert auditor.get(f"{BATCHES}/{batch}").status_code == 200
    assert auditor.post(f"{BATCHES}/{batch}/approve", headers=key()).status_code == 403
    assert server.signed_in("BJ-C2").get(f"{BATCHES}/{batch}").status_code == 403
    elsewhere = server.signed_in("TJ-FC")
    assert elsewhere.get(f"{BATCHES}/{batch}").json()["error"]["code"] == "scope.region"
    assert elsewhere.post(f"{BATCHES}/{batch}/approve", headers=key()).status_code == 403
    assert elsewhere.get(BATCHES).json()["batches"] == []
    assert elsewhere.get(BATCHES, params={"region": DISTRICT}).status_code == 403
    missing = checker.post(f"{BATCHES}/{batch}/approve")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "idempotency.missing"
    early = checker.post(f"{BATCHES}/{batch}/pay", headers=key())
    assert early.status_code == 409 and early.json()["error"]["code"] == "subsidy.not_approved"
    unknown = checker.get(f"{BATCHES}/BJ-S-20250301-999")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "subsidy.unknown_batch"
    assert checker.get("/api/v1/jobs/job-0000").status_code == 404
    bad_chunk = checker.post(f"{BATCHES}/{batch}/pay", json={"chunk": 0}, headers=key())
    assert bad_chunk.status_code == 422 and bad_chunk.json()["error"]["field"] == "chunk"
    assert checker.get(f"{BATCHES}/{batch}").json()["status"] == "imported"


def test_a_job_is_seen_only_in_its_region(server, finance):
    batch = _approved(server, finance)
    job = server.signed_in("BJ-FC").post(f"{BATCHES}/{batch}/pay", headers=key()).json()
    wait_for_job(server.signed_in("BJ-AUD"), job["url"])
    assert server.signed_in("TJ-FC").get(job["url"]).status_code == 403
    assert server.signed_in("BJ-C2").get(job["url"]).status_code == 403


def test_a_pay_refused_by_the_use_case_is_a_failed_job_with_the_error(server, finance):
    batch = _approved(server, finance)
    with open_world(finance.home) as world:  # a pay on another machine holds the batch (the CLI's, say)
        world.region("bj")["subsidy_pay_leases"].insert({"batch_id": batch, "token": "elsewhere", "host": "desk-7",
                                                         "pid": 4242, "started_at": "2025-03-01T09:00:00+08:00",
                                                         "renewed_at": "2025-03-01T09:30:00+08:00"})
    client = server.signed_in("BJ-FC")
    job = wait_for_job(client, client.post(f"{BATCHES}/{batch}/pay", headers=key()).json()["url"])
    assert job["state"] == "failed" and job["result"] is None
    assert (job["error"]["code"], job["error"]["field"]) == ("subsidy.pay_in_progress", "batch")
    assert "desk-7" in job["error"]["message"]
    assert client.get(f"{BATCHES}/{batch}").json()["paid_count"] == 0


def test_stopping_the_service_stops_a_running_job_between_two_transactions(server, finance):
    jobs = server.server.config.app.state.jobs
    started, rounds = threading.Event(), []

    def endless(world, job, between) -> None:
        started.set()
        while True:
            rounds.append(1)
            between()

    running, _ = jobs.submit("test.endless", "x", node="bj", operator="test", work=endless)
    queued, _ = jobs.submit("test.endless", "y", node="bj", operator="test", work=endless)
    assert started.wait(10)
    server.stop()
    assert (running.state, running.error["code"]) == ("failed", "job.interrupted")
    assert (queued.state, queued.error["code"], queued.started_at) == ("failed", "job.not_started", None)
    assert rounds


def test_a_batch_generated_from_the_registry_goes_through_the_same_checks(server, finance):
    maker = server.signed_in("BJ-FM")
    items = maker.get("/api/v1/subsidies/items").json()["items"]
    assert "GLJT" in [i["code"] for i in items] and all(isinstance(i["cap_fen"], int) for i in items)
    answer = maker.post(f"{BATCHES}/generate", json={"item": "GLJT", "region": DISTRICT}, headers=key())
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["source"], made["item"], made["period"], made["as_of"]) == ("generated", "GLJT", "202503",
                                                                             "2025-03-01")
    assert (made["rows"], made["valid"], made["invalid"]) == (1, 0, 1)  # 高德明 is 85 but has no card
    again = maker.post(f"{BATCHES}/generate", json={"item": "GLJT", "region": DISTRICT}, headers=key())
    assert again.status_code == 409 and again.json()["error"]["code"] == "subsidy.generated_before"
    unknown = maker.post(f"{BATCHES}/generate", json={"item": "NOPE", "region": DISTRICT}, headers=key())
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "item"
    later = maker.post(f"{BATCHES}/generate", json={"item": "GLJT", "region": DISTRICT, "as_of": "2025-04-01"},
                       headers=key())
    assert later.status_code == 422 and later.json()["error"]["field"] == "as_of"
    assert server.signed_in("BJ-FC").post(f"{BATCHES}/generate", json={"item": "GLJT", "region": DISTRICT},
                                          headers=key()).status_code == 403
