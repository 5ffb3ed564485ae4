"""A first-come, first-served queue for writing, in one process.

SQLite lets one connection write a database at a time; the others wait in its busy
handler, which sleeps and polls (1, 2, 5 … 100 ms): a thread that has just arrived may
win over one that has waited long, and under load a few unlucky writers wait far longer
than the rest (the p99). The threads of one process that share a database (the network
service's workers) queue at a ``WriteGate`` instead: the gate is handed to the waiters in
the order they came, and SQLite's own lock (with its busy timeout) is left for the other
processes writing the same world (the CLI, a second server).

``UnitOfWork`` passes the gate of its database (``db.write_gate``, set by whoever opened
the world: ``open_world(gates=...)``) before ``BEGIN IMMEDIATE`` and hands it on when its
transaction ends. A waiter that is not served within ``timeout`` gets sqlite3's own
"database is locked", which the callers already handle as a busy store (a bounded retry,
then 503): the gate never turns a slow writer into a hang, even if two transactions were
ever opened on two databases in opposite orders. The order the code keeps when one
transaction opens another is the hub's, then a region's (an upload's exchange records the
chunk on the hub and checks it at the issuer).

The gate is reentrant: the thread that holds it may take it again (and must let it go as
many times).
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriteGate:
    """A reentrant lock served in arrival order (FIFO), with a timeout that reads as SQLite's busy error."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: collections.deque[tuple[int, threading.Lock]] = collections.deque()

    def acquire(self, timeout: float | None = None) -> None:
        """Take the gate, after those already waiting; sqlite3.OperationalError (busy) after ``timeout`` s."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append((me, turn))
        served = turn.acquire(timeout=-1 if timeout is None else timeout)
        if served:
            return  # ``release`` made this thread the owner before waking it
        with self._mutex:
            if self._owner == me:  # handed over between the timeout and now: take it after all
                return
            self._waiters.remove((me, turn))
        raise sqlite3.OperationalError(f"database is locked (waited {timeout:g} s for the {self.name} write gate)")

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError(f"the {self.name} write gate is released by a thread that does not hold it")
            self._depth -= 1
            if self._depth:
                return
            if self._waiters:
                owner, turn = self._waiters.popleft()
                self._owner, self._depth = owner, 1
                turn.release()
            else:
                self._owner = None

    def held(self) -> bool:
        """Whether the calling thread holds the gate."""
        return self._owner == threading.get_ident()

    def locked(self) -> bool:
        """Whether some thread holds the gate (``threading.Lock.locked``)."""
        return self._owner is not None

    def waiting(self) -> int:
        """How many threads wait for the gate now."""
        return len(self._waiters)

    def let_waiters_in(self) -> None:
        """Between two transactions of a long run: those waiting go first, then the run takes the gate again.

        Only for a gate held once (not nested): a nested hold cannot be let go here.
        """
        with self._mutex:
            if self._owner != threading.get_ident() or self._depth != 1 or not self._waiters:
                return
        self.release()
        self.acquire()

    @contextmanager
    def held_for(self, timeout: float | None = None) -> Iterator[None]:
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()
