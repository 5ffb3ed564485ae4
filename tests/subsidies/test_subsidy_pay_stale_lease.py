"""The pay lease's heartbeat: each chunk renews it; a lease a pay call saw unrenewed for STALE_LEASE, on its own
clock (no two machines' clocks compared), is taken over by the next pay wherever its payer ran (another machine, a
reused pid), and a payer that was only slow stops before paying anything more — each row is still paid once."""

from __future__ import annotations

import os

import pytest
from subsidy_pay_fixtures import home, template_home, tj, world  # noqa: F401  (fixtures)
from subsidy_pay_world import NOW, approved_batch, assert_paid_exactly_once, batch_rows

from sbcard.services.subsidies import payment

STALE = payment.STALE_LEASE


@pytest.fixture
def approved(sbcard, tmp_path):
    files = iter(range(1, 100))
    return lambda rows: approved_batch(sbcard, tmp_path / f"batch-{next(files)}.csv", rows)


def _lease(tj, batch: str, *, host: str, pid: int, renewed: str | None, started: str = NOW.isoformat()) -> None:
    tj["subsidy_pay_leases"].insert({"batch_id": batch, "token": "t", "host": host, "pid": pid,
                                     "started_at": started, "chunks": 4, "renewed_at": renewed})


def test_another_machine_s_lease_seen_unrenewed_is_taken_over_without_asking(approved, world, tj):
    batch = approved(batch_rows(range(3)))
    _lease(tj, batch, host="container-1f3a", pid=1, renewed=(NOW - STALE * 5).isoformat())
    with pytest.raises(payment.PayInProgress) as busy:  # first seen now: stale only once seen so for STALE_LEASE
        payment.pay(world, batch, now=NOW, clock=lambda: NOW)
    assert f"may be taken over from {(NOW + STALE).isoformat()}" in busy.value.message
    assert busy.value.retry_at == NOW + STALE
    with pytest.raises(payment.PayInProgress):  # seen unchanged for exactly STALE_LEASE: not yet stale
        payment.pay(world, batch, now=NOW + STALE, clock=lambda: NOW + STALE)
    later = NOW + STALE + payment.timedelta(seconds=1)
    done = payment.pay(world, batch, now=later, clock=lambda: later)
    assert done["took_over"]["host"] == "container-1f3a" and done["took_over"]["forced"] is False
    assert done["took_over"]["stale_since"] == NOW.isoformat()
    assert_paid_exactly_once(tj, batch)
    assert tj.execute("SELECT count(*) FROM subsidy_pay_lease_sightings").fetchone()[0] == 0


def test_staleness_does_not_compare_two_machines_clocks(approved, world, tj):
    """The red team's finding: the holder's renewed_at (its clock) was compared with the taker's clock."""
    batch = approved(batch_rows(range(3)))
    # a live payer whose clock is an hour behind: its fresh renewals look an hour old here, yet are renewals
    _lease(tj, batch, host="slow-clock", pid=1, renewed=(NOW - payment.timedelta(hours=1)).isoformat())
    with pytest.raises(payment.PayInProgress):
        payment.pay(world, batch, now=NOW, clock=lambda: NOW)
    tj.execute("UPDATE subsidy_pay_leases SET chunks = chunks + 1, renewed_at = ?",
               [(NOW - payment.timedelta(minutes=59)).isoformat()])
    later = NOW + STALE + payment.timedelta(seconds=1)
    with pytest.raises(payment.PayInProgress) as busy:  # renewed since it was seen: alive, seen afresh
        payment.pay(world, batch, now=later, clock=lambda: later)
    assert busy.value.retry_at == later + STALE
    # a dead payer whose clock was an hour ahead: its last renewal looks to come from the future, yet it is stale
    tj.execute("UPDATE subsidy_pay_leases SET host = 'fast-clock', token = 'u', renewed_at = ?",
               [(NOW + payment.timedelta(hours=1)).isoformat()])
    with pytest.raises(payment.PayInProgress):
        payment.pay(world, batch, now=later, clock=lambda: later)
    latest = later + STALE + payment.timedelta(seconds=1)
    done = payment.pay(world, batch, now=latest, clock=lambda: latest)
    assert done["took_over"]["host"] == "fast-clock" and done["took_over"]["stale_since"] == later.isoformat()
    assert_paid_exactly_once(tj, batch)


def test_a_live_pid_on_this_machine_whose_lease_is_stale_is_a_reused_pid(approved, world, tj):
    batch = approved(batch_rows(range(2)))
    # a process that runs (our parent) holds a lease started long ago and never renewed: a pid reused since
    _lease(tj, batch, host=os.uname().nodename, pid=os.getppid(), renewed=None,
           started=(NOW - STALE * 3).isoformat())
    with pytest.raises(payment.PayInProgress):
        payment.pay(world, batch, now=NOW, clock=lambda: NOW)
    later = NOW + STALE * 2
    done = payment.pay(world, batch, now=later, clock=lambda: later)
    assert done["took_over"]["pid"] == os.getppid() and "stale_since" in done["took_over"]
    assert_paid_exactly_once(tj, batch)


def test_each_chunk_renews_the_lease_on_the_run_s_clock(approved, world, tj):
    batch = approved(batch_rows(range(6)))
    ticks = iter(NOW + payment.timedelta(seconds=10 * n) for n in range(100))
    seen = []

    def look(point: str, n: int) -> None:
        if point == "after_commit":
            seen.append(tj.execute("SELECT renewed_at, chunks FROM subsidy_pay_leases").fetchone())

    payment.pay(world, batch, now=NOW, chunk=2, clock=lambda: next(ticks), fault=look)
    renewals = [r for r in seen if r is not None]
    assert [r[1] for r in renewals] == [1, 2, 3]
    assert len({r[0] for r in renewals}) == 3 and sorted(r[0] for r in renewals) == [r[0] for r in renewals]
    assert_paid_exactly_once(tj, batch)


def test_a_slow_payer_whose_stale_lease_was_taken_stops_and_nobody_is_paid_twice(approved, world, tj):
    batch = approved(batch_rows(range(6)))
    times = {"now": NOW}
    taken = []

    def stall(point: str, n: int) -> None:
        if (point, n) == ("after_commit", 1):  # the first payer stalls past STALE_LEASE; a second pay comes
            tj.execute("UPDATE subsidy_pay_leases SET host = 'elsewhere' WHERE batch_id = ?", [batch])
            with pytest.raises(payment.PayInProgress):  # seen first: live-looking
                payment.pay(world, batch, now=times["now"], chunk=2, clock=lambda: times["now"])
            times["now"] = NOW + STALE * 2
            taken.append(payment.pay(world, batch, now=times["now"], chunk=2, clock=lambda: times["now"]))

    with pytest.raises(payment.LeaseLost):
        payment.pay(world, batch, now=NOW, chunk=2, clock=lambda: times["now"], fault=stall)
    assert taken[0]["took_over"]["stale_since"] and taken[0]["this_run"]["paid"] == 4
    assert tj.execute("SELECT status FROM subsidy_batches WHERE id = ?", [batch]).fetchone()[0] == "paid"
    assert_paid_exactly_once(tj, batch)
