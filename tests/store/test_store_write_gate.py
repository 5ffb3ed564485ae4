"""The write gate: one writer at a time, served in the order they came, never a hang."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from sbcard.store.db import open_db
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.write_gate import WriteGate


def _queue_behind(gate: WriteGate, count: int, entered: list[int]) -> list[threading.Thread]:
    """``count`` threads waiting for ``gate`` (held by the caller), each queued before the next starts."""
    threads = []
    for i in range(count):
        def wait(i: int = i) -> None:
            with gate.held_for():
                entered.append(i)

        thread = threading.Thread(target=wait)
        thread.start()
        deadline = time.monotonic() + 5
        while gate.waiting() < i + 1:
            assert time.monotonic() < deadline, "the waiter never queued"
            time.sleep(0.001)
        threads.append(thread)
    return threads


def test_waiters_are_served_in_the_order_they_came():
    gate = WriteGate("bj.db")
    entered: list[int] = []
    gate.acquire()
    threads = _queue_behind(gate, 6, entered)
    assert entered == []  # nobody gets in while it is held
    gate.release()
    for thread in threads:
        thread.join(5)
    assert entered == list(range(6))


def test_the_holder_may_take_it_again_and_lets_it_go_as_often():
    gate = WriteGate("hub.db")
    gate.acquire()
    gate.acquire()
    assert gate.held()
    gate.release()
    assert gate.held()
    gate.release()
    assert not gate.held()
    with pytest.raises(RuntimeError):
        gate.release()


def test_a_waiter_not_served_in_time_gets_sqlites_busy_error_and_leaves_the_queue():
    gate = WriteGate("tj.db")
    gate.acquire()
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            gate.acquire(timeout=0.05)
        except sqlite3.OperationalError as exc:
            failed.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    thread.join(5)
    assert len(failed) == 1 and "database is locked" in str(failed[0])  # what the callers retry, then answer 503
    assert gate.waiting() == 0
    gate.release()
    gate.acquire(timeout=0.05)  # free again
    gate.release()


def test_a_unit_of_work_holds_its_databases_gate_for_its_transaction_only(tmp_path):
    gate = WriteGate("bj.db")
    db = open_db(tmp_path / "a.db")
    db.write_gate = gate
    db.execute("CREATE TABLE t (x INTEGER)")
    with UnitOfWork(db) as uow:
        assert gate.held()
        uow.db.execute("INSERT INTO t VALUES (1)")
        uow.finish()
        assert not gate.held()  # handed on at the commit, before the block ends
    with pytest.raises(ValueError), UnitOfWork(db):
        assert gate.held()
        raise ValueError("refused")
    assert not gate.held()  # and on a rollback
    db.close()


def test_a_long_run_lets_the_waiters_in_between_its_transactions():
    gate = WriteGate("bj.db")
    entered: list[int] = []
    gate.acquire()
    threads = _queue_behind(gate, 3, entered)
    gate.let_waiters_in()
    assert gate.held() and entered == [0, 1, 2]
    gate.release()
    for thread in threads:
        thread.join(5)
