"""The invariants hold on a world the services made, and on an empty one."""

from __future__ import annotations

import datetime as dt

from checks_world import DAY, NOW, check, copy_world, tap
from freezegun import freeze_time

from sbcard.clock import FixedClock
from sbcard.sim import invariants
from sbcard.store.world import init_world, open_world


def test_a_clean_world_holds_every_invariant(checks):
    results = check(checks)
    assert list(results) == list(invariants.NAMES)
    assert {name: r.ok for name, r in results.items()} == dict.fromkeys(invariants.NAMES, True), \
        invariants.describe(results)
    assert invariants.to_json(results) == dict.fromkeys(invariants.NAMES, True)
    assert invariants.failures(results) == {} and invariants.describe(results) == ""
    # 北京's card: ¥50 loaded, three ¥2 rides in Tianjin cleared that night (their ¥6 left the float),
    # three ¥1 rides in Beijing not uploaded; 天津's card: ¥50 loaded, ¥5 of rides in no clearing yet.
    float_detail = results["purse_float_reconciled"].detail
    assert "北京 (bj): float ¥44.00 vs cards ¥41.00 − refunds ¥0.00 + uncleared ¥3.00" in float_detail
    assert "天津 (tj): float ¥50.00 vs cards ¥45.00 − refunds ¥0.00 + uncleared ¥5.00" in float_detail
    assert "3 purchase(s) in a clearing" in results["no_record_cleared_twice"].detail
    assert "1 settlement(s) net to zero" in results["hub_conserved"].detail


def test_an_empty_world_holds_every_invariant(tmp_path):
    home = tmp_path / "empty"
    init_world(home, FixedClock(NOW), rng_seed=3)
    with open_world(home) as world:
        results = invariants.check_day(world, home, DAY)
    assert all(r.ok for r in results.values()), invariants.describe(results)


def test_a_purchase_torn_at_its_commit_is_in_flight_not_lost(checks):
    """The card committed the debit, the terminal never got the answer: the purchase is in flight
    at the terminal (recovered at the card's next tap there), so no debit lacks a record and the
    float still adds up; after the recovery tap it is an ordinary record."""
    with freeze_time(NOW + dt.timedelta(hours=6)) as clock:
        try:
            tap(checks, "liu", "bj_bus", "?tear=4")  # the 4th persistent write: the card's commit
        except AssertionError:
            pass  # exit 3: card torn
        results = check(checks)
        assert results["no_debit_without_record"].ok, results["no_debit_without_record"].detail
        assert "1 in flight" in results["no_debit_without_record"].detail
        assert results["purse_float_reconciled"].ok, results["purse_float_reconciled"].detail
        clock.tick(dt.timedelta(seconds=20))
        tap(checks, "liu", "bj_bus")  # the retry: recovered from the card's prove
        results = check(checks)
        assert all(r.ok for r in results.values()), invariants.describe(results)
        assert "0 in flight" in results["no_debit_without_record"].detail


def test_a_purchase_torn_before_its_commit_is_not_counted(checks):
    with freeze_time(NOW + dt.timedelta(hours=6)):
        try:
            tap(checks, "liu", "bj_bus", "?tear=3")  # a journal write: the card keeps its old state
        except AssertionError:
            pass
        results = check(checks)
    assert all(r.ok for r in results.values()), invariants.describe(results)
    assert "0 in flight" in results["no_debit_without_record"].detail


def test_checks_run_on_a_copy_of_the_world_elsewhere(checks, tmp_path):
    """Card files are found under <home>/cards by chip serial, not by the absolute path issuance stored."""
    moved = copy_world(checks, tmp_path / "elsewhere")
    results = check(moved)
    assert all(r.ok for r in results.values()), invariants.describe(results)


def test_a_region_out_of_reach_leaves_money_on_its_way_and_the_invariants_hold(checks):
    """天津 unreachable from the second day's afternoon: its card's Beijing rides wait at the operator,
    北京's lines to 天津 (rides and a claim made in the morning) wait at the hub, a claim settles
    offline — every invariant holds, counting what is on its way; the next night, with the link
    back, nothing is left on the way."""
    from checks_world import clear_day, cli, settle

    day2, day3 = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    with freeze_time(NOW + dt.timedelta(days=1)) as clock:
        tap(checks, "liu", "tj_bus")
        settle(checks, "liu", "TJH001")  # a Beijing patient in Tianjin
        cli(checks.home, "transit", "upload", "--terminal", checks.terminals["tj_bus"], "--json")
        clock.tick(dt.timedelta(hours=4))
        cli(checks.home, "hub", "link", "tj", "--down", "--json")
        tap(checks, "chen", "bj_bus")
        tap(checks, "liu", "bj_bus")
        clock.tick(dt.timedelta(hours=1))
        settle(checks, "chen", "BJH003")  # offline: queued at the hospital's region
        sent = cli(checks.home, "transit", "upload", "--terminal", checks.terminals["bj_bus"], "--json")
        assert sent["awaiting"] >= 1
        clear_day(checks.home, day2)
        results = check(checks)
        assert all(r.ok for r in results.values()), invariants.describe(results)
        assert "北京 (bj)/天津 (tj) ¥" in results["hub_conserved"].detail  # on its way
    with freeze_time(NOW + dt.timedelta(days=2)):
        cli(checks.home, "hub", "link", "tj", "--up", "--json")
        cli(checks.home, "medical", "reconcile", "--json")
        clear_day(checks.home, day3)
        results = check(checks)
    assert all(r.ok for r in results.values()), invariants.describe(results)
    assert "CLEARING accounts mirror exactly" in results["hub_conserved"].detail
