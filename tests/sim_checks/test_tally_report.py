"""The tally counts and round-trips; the report's summary has the stable keys and its page the four
charts, self-contained and the same bytes every time."""

from __future__ import annotations

import json
import random
import re

import pytest

from sbcard.sim import report
from sbcard.sim.invariants import NAMES, Result
from sbcard.sim.tally import KINDS, Tally

SETTLEMENT = {
    "date": "2025-03-03",
    "matrix": {"bj": {"bj": 0, "tj": 12_345, "he": 500}, "tj": {"bj": 234_567, "tj": 0, "he": 0},
               "he": {"bj": 987_654, "tj": 100, "he": 0}},
    "net": {"bj": 1_209_376, "tj": -222_122, "he": -987_254},
}


def busy_tally(seed: int = 1) -> Tally:
    rng = random.Random(seed)
    t = Tally()
    for _ in range(500):
        t.tap(rng.choice(["bj", "bj", "tj", "he"]), rng.choice([7, 8, 8, 9, 12, 17, 18, 18, 22]))
    for kind in ("apply", "issue", "activate", "load", "tap_refused", "upload", "clearing"):
        for node in ("bj", "tj", "he"):
            t.count(kind, node, rng.randint(0, 40))
    for insured in ("bj", "tj", "he"):
        for hospital in ("bj", "tj", "he"):
            t.medical(insured, hospital, rng.randint(1, 900_000), rng.randint(1, 30))
    t.medical("tj", "bj", -5_000, n=0)  # a refund
    t.subsidy("paid", 180)
    t.subsidy("failed", 3)
    t.fault("torn_purchase", 4)
    t.fault("message_lost")
    return t


def test_tally_counts_by_kind_and_region():
    t = Tally()
    t.count("issue", "bj")
    t.count("issue", "bj", 2)
    t.count("issue", "he")
    t.tap("tj", 8)
    t.tap("tj", 8)
    t.medical("he", "bj", 12_000)
    t.medical("he", "bj", 3_000)
    assert t.of("issue", "bj") == 3 and t.total("issue") == 4 and t.of("tap", "tj") == 2
    data = t.to_json()
    assert data["counts"] == {"issue": {"bj": 3, "he": 1}, "tap": {"tj": 2}}
    assert data["taps_per_hour"]["tj"][8] == 2 and sum(data["taps_per_hour"]["tj"]) == 2
    assert data["medical"] == {"he": {"bj": {"claims": 2, "fen": 15_000}}}
    assert t.kinds() == ["issue", "tap"]


def test_tally_round_trips_through_json():
    t = busy_tally()
    data = t.to_json()
    again = Tally.from_json(json.loads(json.dumps(data)))
    assert again == t and again.to_json() == data
    assert json.dumps(data, sort_keys=True) == json.dumps(data)  # keys come sorted


@pytest.mark.parametrize("call, message", [
    (lambda t: t.count("issue", "sh"), "node 'sh' is not a region node"),
    (lambda t: t.count("Issue!", "bj"), "kind 'Issue!' is not a lower-case identifier"),
    (lambda t: t.count("issue", "bj", -1), "n must be an int >= 0"),
    (lambda t: t.tap("bj", 24), "hour must be an int 0-23"),
    (lambda t: t.medical("bj", "xx", 1), "hospital_node 'xx' is not a region node"),
    (lambda t: t.medical("bj", "tj", 1.5), "fen must be an int"),
])
def test_tally_refuses_bad_counts_naming_the_field(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(Tally())


def test_tally_from_json_refuses_a_damaged_checkpoint():
    with pytest.raises(ValueError, match="taps_per_hour.bj must be a list of 24 counts"):
        Tally.from_json({"taps_per_hour": {"bj": [1, 2]}})
    with pytest.raises(ValueError, match="not a tally"):
        Tally.from_json({"medical": {"bj": {"tj": {"claims": 1}}}})


def test_summary_has_the_stable_keys():
    t = busy_tally()
    invariants = {name: Result(True, "fine") for name in NAMES}
    s = report.summary(42, 2000, 3, t, SETTLEMENT, invariants, None, 12.34567)
    assert set(s) >= {"seed", "population", "days", "counts", "settlement", "faults", "invariants", "elapsed_s"}
    assert (s["seed"], s["population"], s["days"], s["elapsed_s"]) == (42, 2000, 3, 12.346)
    assert s["counts"] == t.to_json()["counts"] and s["counts"]["tap"]["bj"] == t.of("tap", "bj")
    assert s["invariants"] == dict.fromkeys(NAMES, True)
    assert s["faults"] == {"message_lost": 1, "torn_purchase": 4}
    assert s["settlement"]["matrix"]["he"]["bj"] == 987_654
    json.dumps(s)  # JSON-ready


def test_total_settlement_adds_days_up():
    day2 = {"date": "2025-03-04", "matrix": {"bj": {"tj": 5}}, "net": {"bj": -5, "tj": 5, "he": 0}}
    total = report.total_settlement([SETTLEMENT, day2])
    assert total["days"] == ["2025-03-03", "2025-03-04"]
    assert total["matrix"]["bj"]["tj"] == 12_350 and total["net"]["tj"] == -222_117
    assert sum(total["net"].values()) == 0


def test_the_page_has_the_four_charts_and_is_self_contained(tmp_path):
    t = busy_tally()
    s = report.summary(42, 2000, 3, t, SETTLEMENT, {"money_conserved": True, "hub_conserved": False}, None, 9.9)
    page = report.write_html(tmp_path / "out", s, t)
    html = page.read_text(encoding="utf-8")
    assert page.name == "index.html"
    assert json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8")) == s
    titles = re.findall(r"<svg[^>]*><title>([^<]*)</title>", html)
    assert titles == ["Taps per hour per region (Beijing time)",
                      "Settlement matrix: what each payer region owes each payee region",
                      "Medical spend by region pair", "Subsidy rows by outcome"]
    for text in ("北京", "天津", "河北", "hour of day", "payer 付款方", "payee 收款方", "¥9,876.54", "paid",
                 "✗ invariants violated: hub_conserved"):
        assert text in html, text
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "9.9" not in html  # the elapsed time stays out of the page


def test_the_page_is_the_same_bytes_for_the_same_run(tmp_path):
    pages = []
    for i in range(2):
        t = busy_tally(seed=5)
        s = report.summary(7, 100, 1, t, SETTLEMENT, dict.fromkeys(NAMES, True), None, elapsed_s=float(i))
        pages.append(report.write_html(tmp_path / f"run{i}", s, t).read_bytes())
    assert pages[0] == pages[1]


def test_the_page_of_an_empty_run_says_so(tmp_path):
    t = Tally()
    s = report.summary(1, 0, 0, t, None, {}, {}, 0.0)
    html = report.write_html(tmp_path, s, t).read_text(encoding="utf-8")
    assert "no taps 无刷卡记录" in html and "no subsidy batch paid" in html and "nothing counted" in html
    assert html.count("<svg") == 4


def test_kinds_are_documented_in_the_page():
    assert set(KINDS) <= set(report.KIND_NAMES)


def test_summary_adds_up_a_list_of_days():
    day2 = {"date": "2025-03-04", "matrix": {"bj": {"tj": 5}}, "net": {"bj": -5, "tj": 5, "he": 0},
            "operators": {"tj-bus": {"kind": "transit", "node": "tj", "count": 2, "amount_fen": 5, "from": {"bj": 5}}},
            "reconciliation": {"bj": {"ok": True}}}
    s = report.summary(1, 10, 2, Tally(), [SETTLEMENT, day2], {}, {}, 1.0)
    assert s["settlement"]["days"] == ["2025-03-03", "2025-03-04"]
    assert s["settlement"]["matrix"]["bj"]["tj"] == 12_350
    assert s["settlement"]["operators"]["tj-bus"] == {"amount_fen": 5, "count": 2, "from": {"bj": 5},
                                                      "kind": "transit", "node": "tj"}
    assert s["settlement"]["reconciliation"] == {"bj": {"ok": True}}


def test_the_page_lists_what_each_operator_is_owed(tmp_path):
    settled = dict(SETTLEMENT, operators={
        "bj-subway": {"kind": "transit", "node": "bj", "count": 3, "amount_fen": 900, "from": {"tj": 600, "he": 300}},
        "TJH001": {"kind": "medical", "node": "tj", "count": 1, "amount_fen": 12_000, "from": {"bj": 12_000}}})
    t = Tally()
    html = report.write_html(tmp_path, report.summary(1, 1, 1, t, settled, {}, {}, 0.0), t).read_text("utf-8")
    assert html.index("TJH001") < html.index("bj-subway")  # the largest first
    assert "<td>bj-subway</td><td>transit</td><td>北京</td><td class=\"n\">3</td><td class=\"n\">¥9.00</td>" \
           "<td>河北 ¥3.00, 天津 ¥6.00</td>" in html
