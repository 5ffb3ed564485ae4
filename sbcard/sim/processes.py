"""The simulator's helper processes: how they start, and that they end with the simulation.

In a big world three kinds of work run beside the engine: the day's taps
(``validators.WorkerLane``), the set-up's production batches (``setup.issue_region``) and the
night's read-ahead of card files (``night``). Each is a *spawned* process (a fresh
interpreter: no copy of the engine's memory, open databases or threads), and each watches
the simulation's process, so that killing the simulation leaves no worker behind. This
module imports the standard library only: a worker's start-up stays lean.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.context
import multiprocessing.pool
import os
import threading
import time


def spawn() -> multiprocessing.context.SpawnContext:
    """The start method of every helper process: a fresh interpreter."""
    return multiprocessing.get_context("spawn")


def watch_parent(parent: int) -> None:
    """In a worker: end this process as soon as the simulation's process is gone (killed)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def one_worker_pool() -> multiprocessing.pool.Pool:
    """A pool of one watched worker (the night's read-ahead)."""
    return spawn().Pool(1, initializer=watch_parent, initargs=(os.getpid(),))


def worker_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` watched workers (the set-up's regions)."""
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=spawn(),
                                                  initializer=watch_parent, initargs=(os.getpid(),))
