from datetime import datetime

import pytest

from sbcard.clock import BEIJING, FixedClock
from sbcard.store.db import open_db


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING))


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "node.db")
    yield database
    database.close()
