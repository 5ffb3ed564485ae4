"""A pay whose lease was left by a payer on another machine (a service's container that died) is no longer stuck:
once the lease has gone STALE_LEASE without renewal, a new pay call over HTTP takes it over and pays each row
once; before that, the job fails naming when it may be taken over."""

from __future__ import annotations

import datetime as dt

from api_finance_world import (balance, finance, finance_template, key, server, standard_batch, upload,  # noqa: F401
                               wait_for_job)
from world_template import NOW

from sbcard.services.subsidies import payment
from sbcard.store.world import open_world

BATCHES = "/api/v1/subsidies/batches"


def test_a_stale_lease_of_another_machine_is_taken_over_by_a_new_pay_call(server, finance):  # noqa: F811
    made = upload(server.signed_in("BJ-FM"), standard_batch(finance))
    batch = made.json()["batch_id"]
    checker = server.signed_in("BJ-FC")
    assert checker.post(f"{BATCHES}/{batch}/approve", headers=key()).status_code == 200
    with open_world(finance.home) as world:  # a pay by a service on host "pod-a1" renewed it at NOW, then died
        db = world.region("bj")
        db["subsidy_pay_leases"].insert({"batch_id": batch, "token": "gone", "host": "pod-a1", "pid": 7,
                                         "started_at": NOW.isoformat(), "chunks": 0, "renewed_at": NOW.isoformat()})
    before = balance(finance.home, "LIU")

    held = wait_for_job(checker, checker.post(f"{BATCHES}/{batch}/pay", headers=key()).json()["url"])
    assert held["state"] == "failed" and held["error"]["code"] == "subsidy.pay_in_progress"
    stale_at = (NOW + payment.STALE_LEASE).isoformat()
    assert "pod-a1" in held["error"]["message"] and stale_at in held["error"]["message"]

    server.clock.advance(payment.STALE_LEASE + dt.timedelta(seconds=1))
    job = wait_for_job(checker, checker.post(f"{BATCHES}/{batch}/pay", headers=key()).json()["url"])
    assert job["state"] == "done", job["error"]
    result = job["result"]
    assert result["took_over"]["host"] == "pod-a1" and result["took_over"]["stale_since"] == NOW.isoformat()
    assert (result["status"], result["paid"], result["this_run"]["paid"]) == ("paid", 2, 2)
    assert balance(finance.home, "LIU") == before + 10000
    again = wait_for_job(checker, checker.post(f"{BATCHES}/{batch}/pay", headers=key()).json()["url"])
    assert again["result"]["already"] is True and balance(finance.home, "LIU") == before + 10000
