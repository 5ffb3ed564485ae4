"""The counter's look-ups by person use an index: a day of 2,400 applications in a region of 40,000
cards must not read the whole applications table each time."""

from __future__ import annotations

import datetime as dt

import sqlite_utils

from sbcard.clock import BEIJING
from sbcard.services.cards.issuance import OPEN_APPLICATION_SQL
from sbcard.store import schema_region
from sbcard.store.migrations import migrate


def test_the_open_application_of_a_person_is_found_through_the_partial_index() -> None:
    db = sqlite_utils.Database(memory=True)
    migrate(db, "region", schema_region.MIGRATIONS, lambda: dt.datetime(2025, 3, 3, tzinfo=BEIJING),
            region_code="110000")
    plan = " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {OPEN_APPLICATION_SQL}",
                                                  ["110105198506151236"]))
    assert "USING INDEX one_open_application_per_person" in plan, plan
