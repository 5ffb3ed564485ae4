"""Night after night with a ``Memory``: a night reads again only what may have changed, and still
catches every violation a full read catches — on a card the engine did not touch that day too."""

from __future__ import annotations

import datetime as dt
import os
import shutil

from checks_world import DAY, NOW, edit_card, tap
from freezegun import freeze_time

from sbcard.sim import invariants
from sbcard.store.world import open_world


def night(checks, memory=None, touched=()):
    with open_world(checks.home) as world:
        return invariants.check_day(world, checks.home, DAY, memory=memory, touched=touched)


def same_as_full_read(checks, memory, touched=()):
    """The night with the memory says exactly what a full read says."""
    kept = night(checks, memory, touched)
    assert kept == night(checks)
    return kept


def test_a_night_with_nothing_changed_reads_nothing_again(checks, monkeypatch):
    monkeypatch.setattr(invariants, "RACY_NS", 0)  # the world's files were copied just now: trust them all the same
    memory = invariants.Memory()
    first = same_as_full_read(checks, memory)
    assert all(r.ok for r in first.values()), invariants.describe(first)
    assert memory.reads["card_files"] == len(checks.holders) and memory.reads["log_records"] > 0
    assert same_as_full_read(checks, memory) == first
    assert memory.reads == {"card_files": 0, "log_records": 0}


def test_a_card_edited_behind_the_engines_back_is_read_again(checks, monkeypatch):
    """Not in ``touched`` (the engine never opened it): its file's signature changed, so it is read."""
    monkeypatch.setattr(invariants, "RACY_NS", 0)
    memory = invariants.Memory()
    assert all(r.ok for r in night(checks, memory).values())
    edit_card(checks, "chen", lambda doc: doc["purse"].__setitem__("balance", doc["purse"]["balance"] + 1000))
    results = same_as_full_read(checks, memory, touched=())
    assert set(invariants.failures(results)) == {"purse_float_reconciled"}
    assert "(off by -¥10.00)" in results["purse_float_reconciled"].detail
    assert memory.reads["card_files"] == 1


def test_a_touched_card_is_read_again_whatever_its_signature_says(checks, monkeypatch):
    """A write within the file system's clock tick leaves the signature as it was: ``touched`` tells."""
    monkeypatch.setattr(invariants, "RACY_NS", 0)
    memory = invariants.Memory()
    assert all(r.ok for r in night(checks, memory).values())
    edit_card(checks, "chen", lambda doc: doc["purse"].__setitem__("offline_counter",
                                                                   doc["purse"]["offline_counter"] + 2))
    kept = memory.cards[checks.holders["chen"].app_serial]
    assert os.path.samefile(kept.path, checks.card_path("chen"))
    kept.signature = invariants._signature(os.stat(kept.path))  # as if written within the same tick
    results = night(checks, memory, touched={str(checks.card_path("chen"))})
    assert "no_debit_without_record" in invariants.failures(results)
    assert "offline counters 4, 5 used" in results["no_debit_without_record"].detail


def test_records_logged_since_are_read_and_checked_with_the_earlier_ones(checks):
    """A card image put back and spent again: the new record's counter is one an earlier night read."""
    from terminals.emulator.card_file import read_state

    memory = invariants.Memory()
    path = checks.card_path("liu")
    kept = path.read_bytes()
    before = read_state(path)["purse"]["offline_counter"]
    with freeze_time(NOW + dt.timedelta(hours=7)):
        tap(checks, "liu", "bj_bus")
    assert all(r.ok for r in same_as_full_read(checks, memory, touched={str(path)}).values())
    path.write_bytes(kept)  # the old image restored behind the engine's back
    with freeze_time(NOW + dt.timedelta(hours=8)):
        tap(checks, "liu", "tj_bus")
    results = same_as_full_read(checks, memory, touched={str(path)})
    assert memory.reads["log_records"] == 1
    assert f"card {checks.holders['liu'].number}: counter {before} used by 2 purchases" in \
        results["counters_forward"].detail


def test_a_card_changed_just_before_the_night_is_not_kept(checks, monkeypatch):
    """Racily clean: changed within ``RACY_NS`` of the read, a same-tick write could hide; read again next night."""
    # The copies were made just now; "just now" is widened so that a slow machine (a copy that
    # took more than the usual two seconds) does not make them look settled.
    monkeypatch.setattr(invariants, "RACY_NS", 600 * 10 ** 9)
    memory = invariants.Memory()
    assert all(r.ok for r in night(checks, memory).values())  # the copies are fresh: nothing kept
    assert memory.cards == {}
    edit_card(checks, "chen", lambda doc: doc["purse"].__setitem__("balance", doc["purse"]["balance"] + 1))
    assert "purse_float_reconciled" in invariants.failures(same_as_full_read(checks, memory))


def test_a_terminal_log_put_back_from_an_older_copy_is_read_whole(checks):
    memory = invariants.Memory()
    terminal = checks.home / "terminals" / checks.terminals["bj_bus"]
    old = checks.home.parent / "bj_bus-before"
    shutil.copytree(terminal, old)
    with freeze_time(NOW + dt.timedelta(hours=7)):
        tap(checks, "chen", "bj_bus")
        tap(checks, "liu", "bj_bus")
    same_as_full_read(checks, memory, touched={str(checks.card_path(h)) for h in ("chen", "liu")})
    shutil.rmtree(terminal)
    shutil.copytree(old, terminal)  # the log loses its two newest records
    results = same_as_full_read(checks, memory)
    assert "no_debit_without_record" in invariants.failures(results)


def test_a_simulation_checked_with_a_memory_sees_what_a_full_read_sees(tmp_path, monkeypatch):
    """Every night of a run with faults (torn cards, crashed terminals, uploads sent twice): the checks
    with the night's memory and the engine's ``touched`` answer exactly what reading everything answers."""
    from sbcard.sim.engine import Options, Simulation

    memory = invariants.Memory()
    nights = []

    def check_invariants(self, day):
        kept = invariants.check_day(self.world, self.home, day, memory=memory, touched=set(self._touched))
        full = invariants.check_day(self.world, self.home, day)
        assert kept == full
        nights.append(dict(memory.reads))
        self.invariants = full

    monkeypatch.setattr(Simulation, "check_invariants", check_invariants)
    sim = Simulation(tmp_path / "world", Options(population=150, days=3, seed=3, faults="heavy"))
    sim.run()
    assert all(r.ok for r in sim.invariants.values()), invariants.describe(sim.invariants)
    assert len(nights) == 3
    logged = sum(len(log.records) for log in memory.logs.values())
    assert 0 < nights[-1]["log_records"] < logged  # the last night read only the day's records
    assert memory.cards  # cards not touched on a night were kept (how many the day touches varies)
