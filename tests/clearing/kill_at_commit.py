"""``python tests/clearing/kill_at_commit.py --home H clearing run …``: the ``sbcard`` command with a
kill hook at its database commits (tests only).

``SBCARD_TEST_KILL_AT_COMMIT=before:N`` (or ``after:N``) makes the process SIGKILL itself just
before (after) the N-th COMMIT of a unit of work, on whichever database: every commit point of
a command, counted in the order it commits, without a hook in each service. With
``SBCARD_TEST_COUNT_COMMITS=FILE`` it writes how many commits it made into FILE at exit (the
reference run that says how many points there are). ``SBCARD_TEST_NOW`` (ISO time) freezes the clock
there (freezegun), as the in-process tests freeze theirs.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sbcard.store import unit_of_work  # noqa: E402

KILL_ENV = "SBCARD_TEST_KILL_AT_COMMIT"
COUNT_ENV = "SBCARD_TEST_COUNT_COMMITS"


def install() -> None:
    spec = os.environ.get(KILL_ENV, "")
    where, _, at = spec.partition(":")
    kill_at = (where, int(at)) if spec else None
    commits = [0]

    def point(moment: str) -> None:
        if kill_at == (moment, commits[0]):
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(original):
        def commit(self):  # noqa: ANN001, ANN202
            commits[0] += 1
            point("before")
            original(self)
            point("after")
        return commit

    unit_of_work.UnitOfWork.commit = wrap(unit_of_work.UnitOfWork.commit)
    unit_of_work.UnitOfWork.finish = wrap(unit_of_work.UnitOfWork.finish)
    count_file = os.environ.get(COUNT_ENV)
    if count_file:
        atexit.register(lambda: Path(count_file).write_text(str(commits[0])))


if __name__ == "__main__":
    install()
    if os.environ.get("SBCARD_TEST_NOW"):
        from freezegun import freeze_time

        freeze_time(os.environ["SBCARD_TEST_NOW"]).start()
    from sbcard.cli.main import main

    sys.argv[0] = "sbcard"
    main()
