"""Writes are serialised per node: two regions write at once, one region's writers queue in order."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sbcard.api.calls import _retrying
from sbcard.api.config import ServiceConfig, Worlds
from sbcard.api.errors import is_busy
from sbcard.domain.citizen_id import compute_check_char
from sbcard.store.unit_of_work import UnitOfWork


def _touch(world, node: str) -> None:
    """A small write of ``node``'s database, in its own transaction."""
    with UnitOfWork(world.region(node)).transaction() as uow:
        uow.db.execute("UPDATE staff_accounts SET failed_signins = failed_signins")


def _hold(worlds: Worlds, node: str, held: threading.Event, leave: threading.Event) -> threading.Thread:
    """A use case of ``node`` that writes, then keeps its node's lock and its transaction until ``leave``."""
    def run() -> None:
        with worlds.writing(node) as world, UnitOfWork(world.region(node)) as uow:
            uow.db.execute("UPDATE staff_accounts SET failed_signins = failed_signins")
            held.set()
            leave.wait(10)
            uow.finish()

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(10)
    return thread


def test_two_regions_write_at_once_and_one_regions_writers_wait(api_home):
    worlds = Worlds(ServiceConfig(home=api_home))
    held, leave = threading.Event(), threading.Event()
    try:
        beijing = _hold(worlds, "bj", held, leave)
        started = time.monotonic()
        with worlds.writing("tj") as world:  # Tianjin does not wait for Beijing's use case
            _touch(world, "tj")
        assert time.monotonic() - started < 2

        other_bj: list[float] = []

        def second_beijing_writer() -> None:
            with worlds.writing("bj") as world:
                other_bj.append(time.monotonic())
                _touch(world, "bj")

        waiter = threading.Thread(target=second_beijing_writer)
        waiter.start()
        time.sleep(0.3)
        assert other_bj == []  # a second Beijing use case waits for the first
        released = time.monotonic()
        leave.set()
        beijing.join(10)
        waiter.join(10)
        assert other_bj and other_bj[0] >= released
    finally:
        leave.set()
        worlds.close()


def test_one_nodes_use_cases_are_served_in_the_order_they_came(api_home):
    worlds = Worlds(ServiceConfig(home=api_home))
    held, leave = threading.Event(), threading.Event()
    entered: list[int] = []
    try:
        first = _hold(worlds, "he", held, leave)
        lock = worlds._locks["he"]
        waiters = []
        for i in range(5):
            def write(i: int = i) -> None:
                with worlds.writing("he") as world:
                    entered.append(i)
                    _touch(world, "he")

            waiters.append(threading.Thread(target=write))
            waiters[-1].start()
            deadline = time.monotonic() + 5
            while lock.waiting() < i + 1:
                assert time.monotonic() < deadline
                time.sleep(0.001)
        leave.set()
        for thread in [first, *waiters]:
            thread.join(10)
        assert entered == [0, 1, 2, 3, 4]
    finally:
        leave.set()
        worlds.close()


def test_a_transaction_kept_waiting_past_the_busy_timeout_is_a_busy_store_retried(api_home, monkeypatch):
    """Another thread's transaction on the same database (an upload's exchange reaching this region, say)
    holds its gate: the waiter gets SQLite's own busy error, run again by the bounded retry."""
    import sbcard.store.unit_of_work as unit_of_work

    monkeypatch.setattr(unit_of_work, "BUSY_TIMEOUT_MS", 100)
    worlds = Worlds(ServiceConfig(home=api_home))
    held, leave = threading.Event(), threading.Event()
    try:
        beijing = _hold(worlds, "bj", held, leave)
        world = worlds.world()
        with pytest.raises(sqlite3.OperationalError) as caught:
            _retrying(world, lambda: _touch(world, "bj"))
        assert is_busy(caught.value)
        leave.set()
        beijing.join(10)
        _retrying(world, lambda: _touch(world, "bj"))  # free again
    finally:
        leave.set()
        worlds.close()


def _person(district: str, n: int) -> str:
    first17 = f"{district}1980{n % 12 + 1:02d}{n % 28 + 1:02d}{n:03d}"
    return first17 + compute_check_char(first17)


def test_clerks_of_two_regions_registering_at_once_all_get_their_answers(live_server, signed_in):
    clerks = {"bj": signed_in("BJ-C1"), "tj": signed_in("TJ-C1")}
    districts = {"bj": "110105", "tj": "120103"}

    def register(job: tuple[str, int]) -> int:
        node, n = job
        answer = clerks[node].post("/api/v1/persons", json={
            "citizen_id": _person(districts[node], n), "name": "刘洋", "region": districts[node],
            "insurance": "employee"})
        return answer.status_code

    jobs = [(node, n) for n in range(15) for node in ("bj", "tj")]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(register, jobs))
    assert answers == [201] * len(jobs)
    for node in ("bj", "tj"):
        for n in range(15):
            got = clerks[node].get(f"/api/v1/persons/{_person(districts[node], n)}")
            assert got.status_code == 200, got.text

