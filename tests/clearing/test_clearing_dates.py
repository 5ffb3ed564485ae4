"""A clearing day is a date whose window (the day before … two days after) is still a date: the first and last
dates Python knows are bad input, never an OverflowError."""

from __future__ import annotations

import pytest
from purse_world import clock, purse_template, purse_world  # noqa: F401

from sbcard.domain.errors import InvalidInput
from sbcard.services.clearing.purse_records import parse_day


@pytest.mark.parametrize("text", ["0001-01-01", "1899-12-31", "9999-12-31"])
def test_a_day_past_the_edges_of_the_calendar_is_bad_input(text):
    with pytest.raises(InvalidInput) as bad:
        parse_day(text)
    assert bad.value.code == "clearing.date" and bad.value.field == "--date" and "outside" in bad.value.message


@pytest.mark.parametrize("command", [("clearing", "run"), ("clearing", "report"), ("settlement", "show")])
def test_the_commands_refuse_it_in_one_line(purse_world, command):
    code, _, err, _ = purse_world.run(*command, "--date", "0001-01-01")
    assert code == 2 and err.startswith("error: --date: ") and err.count("\n") == 1, err
