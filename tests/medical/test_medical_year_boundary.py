"""The deductible and the cap are per calendar year: they start again on 1 January (Beijing time)."""

from __future__ import annotations

import datetime as dt

import pytest
from medical_world import PIN, clock, medical_template, medical_world  # noqa: F401

from sbcard.reference import medical as ref
from sbcard.clock import BEIJING
from sbcard.domain import medical

LINES = (("XJ01CAA040", 40, "12.50"), ("002103000010000", 6, "220.00"))
NEW_YEARS_EVE = dt.datetime(2025, 12, 31, 23, 59, 30, tzinfo=BEIJING)
NEW_YEAR = dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=BEIJING)


def test_the_year_starts_again_on_the_first_of_january(medical_world, clock):
    clock.move_to(NEW_YEARS_EVE)
    december = medical_world.ok_settle("zhao", "HEH001", *LINES, options=("--pin", PIN))
    clock.move_to(NEW_YEAR)
    january = medical_world.ok_settle("zhao", "HEH001", *LINES, options=("--pin", PIN))
    assert (december["year"], january["year"]) == (2025, 2026)
    assert january["before"] == medical.YearToDate(2026).to_json()
    assert (january["deductible_fen"], january["fund_fen"]) == (december["deductible_fen"], december["fund_fen"])
    assert medical_world.year("zhao", "--year", "2025")["fund_paid_fen"] == december["fund_fen"]
    this_year = medical_world.year("zhao")
    assert (this_year["year"], this_year["fund_paid_fen"], this_year["claims"]) == (2026, january["fund_fen"], 1)
    allocation = ref.policy("130000", "employee", False).personal_account_annual_fen
    assert this_year["allocated_fen"] == allocation  # a new year's allocation with its first claim
    assert january["personal_account_fen"] == (
        december["personal_account_fen"] + allocation - january["account_fen"])


def test_a_claim_of_a_closed_year_is_not_refunded(medical_world, clock):
    clock.move_to(NEW_YEARS_EVE)
    december = medical_world.ok_settle("liu", "BJH003", *LINES)
    clock.move_to(NEW_YEAR)
    before = medical_world.state()
    code, err = medical_world.refund(december["claim_id"])
    assert code == 1 and "closed year" in err
    assert medical_world.state() == before


@pytest.mark.parametrize("moment", [NEW_YEARS_EVE, NEW_YEAR], ids=["eve", "new-year"])
def test_the_year_is_the_beijing_calendar_year(medical_world, clock, moment):
    clock.move_to(moment.astimezone(dt.timezone.utc))
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    assert done["year"] == moment.year
    assert medical_world.year("liu", "--year", str(moment.year))["claims"] == 1


@pytest.mark.parametrize("year", ["0", "1899", "10000", "99999999999999999999", "-2025", "２０２５"])
def test_a_year_outside_1900_to_9999_is_refused_not_taken_for_this_year(medical_world, year):
    code, _, err, _ = medical_world.run("medical", "year", "--card", medical_world.cards["zhao"].number,
                                        "--year", year)
    assert code == 2 and err.startswith("error: --year: ") and err.count("\n") == 1, err
