"""`sbcard clearing run | report` and `sbcard settlement show` through the command line."""

from __future__ import annotations

import datetime as dt

import attrs
from clearing_helpers import loaded, taps  # noqa: F401
from purse_world import NOW, clock, purse_template, purse_world  # noqa: F401


def test_run_report_and_show(loaded, clock):
    good = taps(loaded, "chen", [300, 400]) + taps(loaded, "liu", [200], first_serial=3)
    forged = attrs.evolve(taps(loaded, "chen", [500], first_serial=5, start=NOW + dt.timedelta(hours=2))[0],
                          tac="00000000")
    loaded.upload(good + [forged], now=NOW)
    clock.tick(dt.timedelta(hours=14))
    code, out, err, done = loaded.run("clearing", "run", "--date", "2025-03-03", "--json")
    assert code == 0, err
    assert done["date"] == "2025-03-03" and done["changed"] is True
    assert sorted(done) == sorted(["date", "changed", "message", "routed", "regions", "lines", "delivered",
                                   "undelivered", "gaps", "files", "settlement", "corrections", "blocks"])
    code, out, err, _ = loaded.run("clearing", "run", "--date", "2025-03-03")
    assert code == 0 and "was run before: nothing changed" in out

    code, _, err, rep = loaded.run("clearing", "report", "--date", "2025-03-03", "--json")
    assert code == 0, err
    assert rep["totals"] == {"accepted": 3, "accepted_fen": 900, "flagged": 0, "rejected": 1, "duplicates": 0,
                             "gaps": 0, "medical_claims": 0, "medical_fen": 0, "corrections": 0,
                             "corrected_fen": 0, "shortfall_fen": 0, "blocked": 0, "blocked_float_fen": 0,
                             "overspent_fen": 0}
    assert rep["rejected"][0]["category"] == "forged_tac"
    code, out, err, _ = loaded.run("clearing", "report", "--date", "2025-03-03")
    assert code == 0, err
    assert "forged_tac" in out and "bj-subway" in out and "rejected" in out

    code, _, err, shown = loaded.run("settlement", "show", "--date", "2025-03-03", "--json")
    assert code == 0, err
    assert sorted(shown) == ["date", "matrix", "net", "operators", "reconciliation"]
    assert shown["net"] == {"bj": 700, "tj": -700, "he": 0}
    assert sorted(shown["reconciliation"]["tj"]) == sorted(["float_fen", "cards_fen", "uncleared_fen",
                                                            "pending_loads_fen", "refunded_fen", "difference_fen",
                                                            "ok"])
    code, out, err, _ = loaded.run("settlement", "show", "--date", "2025-03-03")
    assert code == 0, err
    assert "¥7.00" in out and "-¥7.00" in out and "ok" in out


def test_the_default_date_is_today_and_bad_dates_are_refused(loaded, clock):
    code, _, err, done = loaded.run("clearing", "run", "--json")
    assert code == 0, err and done["date"] == NOW.date().isoformat()
    code, _, err, _ = loaded.run("clearing", "run", "--date", "2025-13-01", "--json")
    assert code == 2 and "--date" in err and "YYYY-MM-DD" in err
    code, _, err, _ = loaded.run("clearing", "run", "--date", "2025-03-04", "--json")
    assert code == 2 and "has not begun yet" in err
    code, _, err, _ = loaded.run("settlement", "show", "--date", "yesterday", "--json")
    assert code == 2 and "--date" in err
    code, _, _, rep = loaded.run("clearing", "report", "--date", "2025-03-02", "--json")
    assert code == 0 and rep["run"] is False and rep["transit"] == []
