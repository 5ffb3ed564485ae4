"""The simulator's database connections, tuned for a run (page cache, WAL, no fsync).

Its own module because the engine (each day's world) and the set-up's workers (each
region's batches) both open worlds and tune them the same way.
"""

from __future__ import annotations

from sbcard.store.world import REGION_NODES, World

CACHE_KIB = 64 * 1024  # SQLite's page cache per database (its default, 2 MB, is a region of a few thousand cards)
WAL_PAGES = 10_000  # pages in the WAL before SQLite copies it back into the database (its default: 1,000)


def tune(world: World) -> None:
    """The simulator's connections keep the databases' hot pages (indexes of hundreds of thousands of
    cards) in memory, and fold the WAL back into the database every 10,000 pages rather than every
    1,000.

    And they never wait for the disk (``synchronous = OFF``: no fsync when the WAL is folded back).
    What a commit writes, and that it is all or nothing, does not change, and a killed process loses
    nothing (the system has the pages); only a crash of the machine itself could leave a database
    damaged, and a simulation never goes on from the world it was running in: ``--resume`` puts
    the last checkpoint's world back (``checkpoint.restore``). On this machine's busy disk those
    fsyncs kept the engine waiting about a tenth of the morning rush of a 100,000-person day.
    """
    for db in (*(world.region(node) for node in REGION_NODES), world.hub()):
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
        db.execute("PRAGMA synchronous = OFF")

