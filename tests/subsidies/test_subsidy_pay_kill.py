"""``sbcard subsidy pay`` killed for real (SIGKILL, Ctrl-C) at many points, in child processes, then run again
until done: every row ends paid exactly once, the ledger sums to zero after every kill, the batch's totals add
up. Two pays at once: one refuses (or waits), none pays twice.

The children are ``python -m sbcard …``; the tests stop exactly the processes they start, by their PID (and
wait for them). Kill points come from ``SBCARD_TEST_PAY_FAULT`` (a hook for tests only, see
``sbcard/cli/subsidy_payout.py``) or from a random delay.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from subsidy_pay_fixtures import home, template_home  # noqa: F401  (fixtures)
from subsidy_pay_world import (
    CHECKER, HOLDERS, ITEM, approved_batch, assert_paid_exactly_once, batch_rows, row, run_sbcard, start_sbcard,
)

from sbcard.store.db import open_db

CHUNK = "4"
FAULT = "SBCARD_TEST_PAY_FAULT"


@pytest.fixture
def batch_of(sbcard, tmp_path):
    """``batch_of(period)`` → an approved batch of every holder for ``period`` (two rows refused at import)."""

    def make(period: str, holders: range = range(HOLDERS), item: str = ITEM) -> str:
        rows = batch_rows(holders, period=period, item=item)
        rows[5]["name"] = "某某某"
        rows[-1] = row(len(rows), HOLDERS + 1, 30000, period=period, item=item)  # registered, no card
        return approved_batch(sbcard, tmp_path / f"{item}-{period}-{holders.start}.csv", rows)

    return make


def region_db(home: Path):
    return open_db(home / "tj.db")


def assert_consistent(home: Path, batch: str) -> dict:
    """After any kill: the ledger balances, and the batch's counters are exactly what its rows and ledger say."""
    db = region_db(home)
    try:
        assert db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM (SELECT txn_id FROM ledger_entries GROUP BY txn_id "
                          "HAVING sum(amount_fen) != 0)").fetchone()[0] == 0
        b = next(db.query("SELECT * FROM subsidy_batches WHERE id = ?", [batch]))
        paid = db.execute("SELECT count(*), coalesce(sum(amount_fen), 0) FROM subsidy_rows WHERE batch_id = ? "
                          "AND status = 'paid'", [batch]).fetchone()
        txns = db.execute("SELECT count(DISTINCT txn_id), coalesce(sum(CASE WHEN amount_fen > 0 THEN amount_fen END),"
                          " 0) FROM ledger_entries WHERE txn_id GLOB ?", [f"SUB-{batch}-*"]).fetchone()
        assert tuple(paid) == tuple(txns)
        if b["status"] != "approved":
            assert (b["paid_count"], b["paid_fen"]) == tuple(paid)
        return b
    finally:
        db.close()


def pay(home: Path, batch: str, fault: str | None = None, *extra: str):
    return run_sbcard(home, "subsidy", "pay", batch, "--operator", CHECKER, "--chunk", CHUNK, "--json",
                      *extra,
                      env={FAULT: fault} if fault else None)


@pytest.mark.parametrize("faults", [
    ["kill:lease_taken:0"],
    ["kill:before_commit:1"],
    ["kill:after_commit:1"],
    ["kill:before_commit:5", "kill:after_commit:2", "kill:before_commit:1", "kill:lease_taken:0"],
    ["kill:after_commit:10", "kill:before_commit:1"],  # the second kill is in the closing transaction
], ids=["at-lease", "in-chunk-1", "after-chunk-1", "four-kills", "in-the-close"])
def test_subsidy_pay_kill_at_fixed_points_then_rerun_pays_each_row_once(home, batch_of, faults):
    batch = batch_of("202610")
    for fault in faults:
        killed = pay(home, batch, fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr)
        assert assert_consistent(home, batch)["status"] in ("approved", "paying")
    done = pay(home, batch)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "paid" and result["resumed"] is True
    assert result["took_over"] is not None and result["took_over"]["forced"] is False  # the killed run's lease
    assert (result["paid"], result["failed"]) == (HOLDERS - 2, 2)
    db = region_db(home)
    try:
        header = assert_paid_exactly_once(db, batch)
    finally:
        db.close()
    assert header["paid_fen"] == result["paid_fen"]
    again = pay(home, batch)
    assert json.loads(again.stdout)["already"] is True


def test_subsidy_pay_kill_inside_and_after_every_chunk(home, batch_of):
    """38 valid rows in chunks of 4: chunks 1-10 pay, chunk 11 closes the batch; a kill inside (before COMMIT)
    and after each of them, each on its own batch, then one clean run."""
    points = [(where, n) for n in range(1, 12) for where in ("before_commit", "after_commit")]
    slots = [(item, f"2026{month:02d}") for item in ("CJRLXBT", "CXJMJCYLJ", "ZDSHBZJ") for month in range(1, 11)]
    for (where, n), (item, period) in zip(points, slots):
        batch = batch_of(period, item=item)
        killed = pay(home, batch, f"kill:{where}:{n}")
        assert killed.returncode == -signal.SIGKILL, (where, n, killed.stderr)
        b = assert_consistent(home, batch)
        committed = n - (where == "before_commit")
        assert b["paid_count"] == min(committed * 4, HOLDERS - 2), (where, n)
        assert b["status"] == ("paid" if committed == 11 else "paying"), (where, n)
        done = pay(home, batch)
        assert done.returncode == 0, done.stderr
        db = region_db(home)
        try:
            assert_paid_exactly_once(db, batch)
        finally:
            db.close()


def test_subsidy_pay_kill_after_random_delays_until_done(home, batch_of):
    rng = random.Random(20261122)
    batches = [batch_of(period) for period in ("202607", "202608", "202609")]
    kills = 0
    for batch in batches:
        for attempt in range(40):
            child = start_sbcard(home, "subsidy", "pay", batch, "--operator", CHECKER, "--chunk", CHUNK,
                                 "--json",
                                 env={FAULT: "sleep:after_commit:0.08"})
            # Later tries get further; the last is let finish (on a loaded machine a child may
            # not even start within its delay, 40 times over).
            last = attempt == 39
            try:
                child.wait(timeout=120 if last else rng.uniform(0.1, 0.9) + 0.05 * attempt)
            except subprocess.TimeoutExpired:  # still running: kill exactly this child
                child.send_signal(signal.SIGKILL)
                child.wait()
            out, err = child.communicate()
            if child.returncode == 0:
                assert json.loads(out)["status"] == "paid"
                break
            assert child.returncode == -signal.SIGKILL, err
            kills += 1
            assert_consistent(home, batch)
        else:
            pytest.fail(f"{batch} not paid after 40 attempts")
        db = region_db(home)
        try:
            assert_paid_exactly_once(db, batch)
        finally:
            db.close()
    assert kills >= 6  # the delays did interrupt payments (and startups) along the way


def wait_for_lease(home: Path, batch: str, child, seconds: float = 60) -> None:
    """Until the child has committed its first chunk (a deadline in seconds, not in polls: a loaded
    machine may take seconds to start the child)."""
    db = region_db(home)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if db.execute("SELECT chunks FROM subsidy_pay_leases WHERE batch_id = ? AND chunks > 0",
                          [batch]).fetchone():
                return
            assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        pytest.fail("the first pay never took the lease")
    finally:
        db.close()


def test_subsidy_pay_ctrl_c_rolls_back_the_chunk_and_says_where_it_stands(home, batch_of):
    """The child holds still after its first chunk until the Ctrl-C comes (``hold:after_commit:1``):
    the interruption lands after exactly one chunk however slow the machine is (with a mere delay
    per chunk, a loaded machine let the pay finish before the signal, or start too late)."""
    batch = batch_of("202606")
    child = start_sbcard(home, "subsidy", "pay", batch, "--operator", CHECKER, "--chunk", CHUNK,
                         env={FAULT: "hold:after_commit:1"})
    try:
        wait_for_lease(home, batch, child)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == 130, err
    assert "interrupted: the chunk in progress was rolled back" in err and f"subsidy pay {batch}" in err
    assert "still to pay" in err and "Traceback" not in err
    assert f"{CHUNK} rows paid" in err and f"{HOLDERS - 2 - int(CHUNK)} still to pay" in err
    b = assert_consistent(home, batch)
    assert b["status"] == "paying" and b["paid_count"] == int(CHUNK)
    db = region_db(home)
    try:
        assert db.execute("SELECT count(*) FROM subsidy_pay_leases").fetchone()[0] == 0  # given back
    finally:
        db.close()
    done = json.loads(pay(home, batch).stdout)
    assert done["resumed"] is True and done["took_over"] is None and done["paid"] == HOLDERS - 2


def test_subsidy_pay_two_at_once_one_refuses_naming_the_other(home, batch_of):
    """The first pay holds still after its first chunk (``hold:after_commit:1``) until both others have
    met it, then is let go (SIGUSR1): the order of events does not depend on the machine's speed."""
    batch = batch_of("202605")
    first = start_sbcard(home, "subsidy", "pay", batch, "--operator", CHECKER, "--chunk", CHUNK, "--json",
                         env={FAULT: "hold:after_commit:1"})
    waiting = None
    try:
        wait_for_lease(home, batch, first)
        second = pay(home, batch)
        waiting = start_sbcard(home, "subsidy", "pay", batch, "--operator", CHECKER, "--chunk", CHUNK, "--json",
                               "--wait", "60")
        told = waiting.stderr.readline()  # it has seen the first's lease and waits
        first.send_signal(signal.SIGUSR1)
        out, err = first.communicate(timeout=60)
        w_out, w_err = waiting.communicate(timeout=60)
    finally:
        for child in (first, waiting):
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
    waiter = subprocess.CompletedProcess(waiting.args, waiting.returncode, w_out, told + w_err)
    assert first.returncode == 0, err
    assert second.returncode == 1 and second.stdout == ""
    assert f"is being paid by process {first.pid}" in second.stderr and "--wait" in second.stderr
    assert waiter.returncode == 0, waiter.stderr
    assert "waiting (up to 60 s)" in waiter.stderr
    waited = json.loads(waiter.stdout)
    assert waited["already"] is True and waited["this_run"]["paid"] == 0
    assert json.loads(out)["paid"] == HOLDERS - 2
    db = region_db(home)
    try:
        assert_paid_exactly_once(db, batch)
    finally:
        db.close()


def test_subsidy_pay_two_batches_paying_the_same_people_at_once_pay_each_once(home, batch_of):
    one = batch_of("202604", range(0, 20))
    two = batch_of("202604", range(10, 30))  # holders 10..17 in both (imported before either was paid)
    children = [start_sbcard(home, "subsidy", "pay", b, "--operator", CHECKER, "--chunk", "2", "--json",
                             env={FAULT: "sleep:after_commit:0.01"}) for b in (one, two)]
    results = []
    try:
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for child in children:  # only if something above failed: stop exactly the children started here
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
    db = region_db(home)
    try:
        for b in (one, two):
            assert_paid_exactly_once(db, b)
        already = db.execute("SELECT count(*) FROM subsidy_rows WHERE batch_id IN (?, ?) AND reason_code = "
                             "'already_paid'", [one, two]).fetchone()[0]
    finally:
        db.close()
    # Valid in both: holders 10..18 but 15 (row 6 of the second batch is refused at import): 8 people.
    assert already == 8
    assert sum(r["paid"] for r in results) == 18 + 18 - 8
