"""A write that found the world locked is run again only if it wrote nothing yet."""

from __future__ import annotations

import sqlite3

import pytest

from sbcard.api.calls import _retrying
from sbcard.store.world import open_world


def test_a_use_case_locked_out_before_writing_is_run_again(api_home):
    calls = []

    def use_case():
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    with open_world(api_home) as world:
        assert _retrying(world, use_case) == "done"
    assert len(calls) == 2


def test_a_use_case_that_already_wrote_a_part_is_not_run_twice(api_home):
    calls = []
    with open_world(api_home) as world:
        def use_case():
            calls.append(1)
            world.region("bj").execute("UPDATE staff_accounts SET failed_signins = failed_signins + 1")
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(sqlite3.OperationalError):
            _retrying(world, use_case)
    assert len(calls) == 1


def test_other_store_errors_are_not_retried(api_home):
    calls = []

    def use_case():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nothing")

    with open_world(api_home) as world, pytest.raises(sqlite3.OperationalError):
        _retrying(world, use_case)
    assert len(calls) == 1
