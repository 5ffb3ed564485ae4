"""Cross-region registrations (异地就医备案) end to end: recorded at the insured region, looked up at settlement.

The holder is 王建国, a retired Tianjin employee (Tianjin's cuts: referral and emergency
10 points, other temporary 15, unregistered 20, long-term 0), treated at 正定县人民医院
(HEH007, 二级, Hebei; 75 % at home). Inside Jing-Jin-Ji the fixtures deem every treatment
registered (视同备案); ``jjj_off`` turns that switch off in a copy of the fixtures, as the
data allows, so that the registration kinds decide.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from medical_world import NOW, circumstances, clock, medical_template, medical_world  # noqa: F401

from sbcard.reference import medical as ref
from sbcard import reference
from sbcard.clock import BEIJING
from sbcard.domain import medical

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
VISIT, BLOOD = "001102000010000", "002502010010000"
LINES = ((VISIT, 1, "12.00"), (BLOOD, 2, "22.00"))
HOSPITAL = "HEH007"
LEVEL_RATIO = ref.policy("120000", "employee", True).ratio_pct[2]  # 75


@pytest.fixture
def jjj_off(tmp_path, monkeypatch):
    """The fixtures with the Jing-Jin-Ji same-treatment switch off (cross_region.csv), caches emptied."""
    shutil.copytree(FIXTURES, tmp_path / "fixtures")
    path = tmp_path / "fixtures" / "medical" / "cross_region.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",jjj_deemed,0,on,", ",jjj_deemed,0,off,"),
                    encoding="utf-8")
    monkeypatch.setenv(reference.ENV_VAR, str(tmp_path / "fixtures"))
    ref.clear_caches()
    yield tmp_path / "fixtures" / "medical"
    monkeypatch.undo()
    ref.clear_caches()


def register(world, *args: str, holder: str = "wang") -> tuple[int, object]:
    code, _, err, done = world.run("medical", "register", "--card", world.cards[holder].number, *args, "--json")
    return code, done if done is not None else err


def ok_register(world, *args: str) -> dict:
    code, done = register(world, *args)
    assert code == 0, done
    return done


# --------------------------------------------------------------------------- recording a registration


def test_a_registration_is_recorded_and_listed(medical_world):
    done = ok_register(medical_world, "--kind", "other_temporary", "--province", "130000", "--from", "2025-03-01",
                       "--to", "2025-08-31", "--operator", "TJ-C1")
    assert {k: done[k] for k in ("kind", "kind_name", "province", "valid_from", "valid_to", "operator",
                                 "valid_today")} == {
        "kind": "other_temporary", "kind_name": "其他临时外出就医", "province": "130000", "valid_from": "2025-03-01",
        "valid_to": "2025-08-31", "operator": "TJ-C1", "valid_today": True}
    by_holder = ok_register(medical_world, "--kind", "retired_resettled", "--province", "110000")
    assert (by_holder["operator"], by_holder["valid_from"], by_holder["valid_to"]) == ("holder", "2025-03-03", None)
    code, _, _, rows = medical_world.run("medical", "registrations", "--card", medical_world.cards["wang"].number,
                                         "--json")
    assert code == 0 and [r["kind"] for r in rows] == ["other_temporary", "retired_resettled"]
    [audit] = medical_world.query("tj", "SELECT * FROM audit_log WHERE action = 'medical.register' AND operator = "
                                        "'TJ-C1'")
    assert json.loads(audit["details"])["province"] == "130000"
    code, out, _, _ = medical_world.run("medical", "registrations", "--card", medical_world.cards["wang"].number)
    assert code == 0 and "其他临时外出就医" in out and "open" in out


@pytest.mark.parametrize(("args", "code", "says"), [
    (("--kind", "other_temporary", "--province", "120000", "--to", "2025-04-01"), 1, "needs no registration"),
    (("--kind", "other_temporary", "--province", "130000"), 2, "last day"),
    (("--kind", "referral", "--province", "130000", "--from", "2025-04-01", "--to", "2025-03-31"), 2, "before"),
    (("--kind", "emergency", "--province", "130000"), 2, "--kind"),
    (("--kind", "posted_worker", "--province", "130000", "--from", "2025-02-30"), 2, "--from"),
    (("--kind", "posted_worker", "--province", "990000"), 2, "--province"),
    (("--kind", "posted_worker", "--province", "130000", "--operator", "XX-C9"), 2, "XX-C9"),
    (("--kind", "posted_worker", "--province", "130000", "--operator", "HE-C1"), 2, "HE-C1"),
    (("--kind", "posted_worker", "--province", "13"), 2, "--province"),
    (("--kind", "referral", "--province", "130000", "--from", "1954-12-31", "--to", "1955-01-05"), 2,
     "before the holder was born (1955-01-01)"),
    (("--kind", "posted_worker", "--province", "130000", "--from", "2026-03-05"), 2, "more than a year ahead"),
    (("--kind", "referral", "--province", "130000", "--from", "2025-03-03", "--to", "2035-03-04"), 2,
     "more than 10 years"),
], ids=["home province", "temporary without end", "ends before it starts", "emergency", "bad date",
        "bad province", "unknown operator", "another region's operator", "malformed province",
        "before birth", "over a year ahead", "over ten years long"])
def test_a_registration_is_refused(medical_world, args, code, says):
    got, err = register(medical_world, *args)
    assert got == code and says in err
    assert medical_world.query("tj", "SELECT * FROM medical_registrations") == []


@pytest.mark.parametrize("args", [
    ("--kind", "referral", "--province", "130000", "--from", "1955-01-01", "--to", "1955-01-05"),  # born that day
    ("--kind", "posted_worker", "--province", "130000", "--from", "2026-03-04"),  # a year (366 days) ahead
    ("--kind", "referral", "--province", "130000", "--from", "2025-03-03", "--to", "2035-03-03"),  # ten years
], ids=["from the birth day", "a year ahead", "ten years long"])
def test_a_registration_at_the_edges_of_its_dates_is_recorded(medical_world, args):
    assert register(medical_world, *args)[0] == 0


def test_overlapping_registrations_for_one_place_are_refused(medical_world):
    ok_register(medical_world, "--kind", "referral", "--province", "130000", "--to", "2025-03-31")
    code, err = register(medical_world, "--kind", "other_temporary", "--province", "130000", "--from", "2025-03-31",
                         "--to", "2025-05-01")
    assert code == 1 and "already covers" in err
    ok_register(medical_world, "--kind", "other_temporary", "--province", "130000", "--from", "2025-04-01",
                "--to", "2025-05-01")  # the next day is free
    ok_register(medical_world, "--kind", "other_temporary", "--province", "110000", "--to", "2025-05-01")


def test_a_cancelled_registration_no_longer_counts(medical_world, jjj_off):
    reg = ok_register(medical_world, "--kind", "long_term_resident", "--province", "130000", "--operator", "TJ-C1")
    assert medical_world.ok_settle("wang", HOSPITAL, *LINES)["registration_kind"] == "long_term_resident"
    card = medical_world.cards["wang"].number
    code, _, err, done = medical_world.run("medical", "unregister", str(reg["id"]), "--card", card, "--json")
    assert code == 0, err
    assert done["cancelled_at"] is not None and done["valid_today"] is False
    assert medical_world.ok_settle("wang", HOSPITAL, *LINES)["registration_kind"] == "unregistered"
    code, _, err, _ = medical_world.run("medical", "unregister", str(reg["id"]), "--card", card, "--json")
    assert code == 1 and "already" in err
    code, _, err, _ = medical_world.run("medical", "unregister", "999", "--card", card, "--json")
    assert code == 2 and "no registration 999" in err
    ok_register(medical_world, "--kind", "long_term_resident", "--province", "130000")  # free again


def test_an_unknown_card_is_not_found(medical_world):
    code, _, err, _ = medical_world.run("medical", "register", "--card", "TJ0000000X", "--kind", "posted_worker",
                                        "--province", "130000", "--json")
    assert code == 2 and "no card" in err


# --------------------------------------------------------------------------- settling on the terms of the day

KINDS = [
    (None, (), "unregistered", 20),
    (("--kind", "other_temporary", "--to", "2025-06-30"), (), "other_temporary", 15),  # below the 20-point cap
    (("--kind", "referral", "--to", "2025-06-30"), (), "referral", 10),
    (("--kind", "long_term_resident",), (), "long_term_resident", 0),
    (("--kind", "retired_resettled",), (), "retired_resettled", 0),
    (("--kind", "posted_worker", "--to", "2025-12-31"), (), "posted_worker", 0),
    (None, ("--emergency",), "emergency", 10),  # 视同已备案
    (None, ("--referral",), "referral", 10),
    (("--kind", "other_temporary", "--to", "2025-06-30"), ("--emergency",), "emergency", 10),  # the better one
]


@pytest.mark.parametrize(("registration", "options", "kind", "cut"), KINDS,
                         ids=[f"{k}{'+' + o[0][2:] if o else ''}{'-registered' if r else ''}"
                              for r, o, k, _ in KINDS])
def test_each_kind_is_settled_with_its_cut(medical_world, jjj_off, registration, options, kind, cut):
    if registration:
        ok_register(medical_world, *registration, "--province", "130000")
    done = medical_world.ok_settle("wang", HOSPITAL, *LINES, options=options)
    assert (done["registration_kind"], done["cut_points"], done["ratio_pct"]) == (kind, cut, LEVEL_RATIO - cut)
    h = ref.hospital(HOSPITAL)
    regs = medical_world.query("tj", "SELECT * FROM medical_registrations")
    reg = None
    if regs:
        r = regs[0]
        reg = medical.Registration(r["kind"], r["province"], dt.date.fromisoformat(r["valid_from"]),
                             dt.date.fromisoformat(r["valid_to"]) if r["valid_to"] else None, r["id"])
    visit = options[0][2:] if options else ""
    c = circumstances(h, "120000", registration=reg, visit=visit)
    want = medical.settle([medical.ClaimLine(VISIT, 1, 1200), medical.ClaimLine(BLOOD, 2, 2200)], ref.catalogue(h.province),
                    ref.policy("120000", "employee", True), medical.YearToDate(NOW.year), c)
    assert (done["fund_fen"], done["self_fen"]) == (want.fund_fen, want.self_fen)
    [row] = medical_world.query("tj", "SELECT registration_kind, cut_points, visit FROM medical_claims")
    assert (row["registration_kind"], row["cut_points"], row["visit"]) == (kind, cut, visit)
    assert done["illustrative"] is True and done["confidence"] == "illustrative"  # Tianjin's figures are


@pytest.mark.parametrize(("moment", "kind"), [
    (dt.datetime(2025, 3, 9, 23, 59, tzinfo=BEIJING), "unregistered"),  # the eve of its first day
    (dt.datetime(2025, 3, 10, 0, 1, tzinfo=BEIJING), "other_temporary"),  # its first day
    (dt.datetime(2025, 4, 30, 23, 59, tzinfo=BEIJING), "other_temporary"),  # its last day
    (dt.datetime(2025, 5, 1, 0, 1, tzinfo=BEIJING), "unregistered"),  # the day after
], ids=["eve", "first day", "last day", "day after"])
def test_the_registration_valid_on_the_day_of_treatment_counts(medical_world, jjj_off, clock, moment, kind):
    ok_register(medical_world, "--kind", "other_temporary", "--province", "130000", "--from", "2025-03-10",
                "--to", "2025-04-30", "--operator", "TJ-C1")
    clock.move_to(moment)
    assert medical_world.ok_settle("wang", HOSPITAL, *LINES)["registration_kind"] == kind


def test_inside_jing_jin_ji_the_claim_is_deemed_registered(medical_world):
    done = medical_world.ok_settle("wang", HOSPITAL, *LINES)
    assert (done["registration_kind"], done["cut_points"], done["ratio_pct"]) == ("jjj_deemed", 0, LEVEL_RATIO)
    assert "city-policy-digest" in {s["id"] for s in done["source"]}
    code, out, _, _ = medical_world.run("medical", "claims")
    assert code == 0 and "illustrative" in out  # Tianjin's outpatient figures are the simulator's own


def test_the_receipt_says_its_terms_and_that_figures_are_illustrative(medical_world, jjj_off):
    code, out, err = medical_world.run("medical", "settle", "--reader", medical_world.reader("wang"),
                                       "--hospital", HOSPITAL, "--items",
                                       str(medical_world.items(*LINES)), "--referral")[:3]
    assert code == 0, err
    assert "异地转诊 (referral), 10 points off" in out and "illustrative" in out


# --------------------------------------------------------------------------- inpatient through the CLI


def test_an_inpatient_admission_pays_its_own_deductible_each_time(medical_world):
    policy = ref.policy("110000", "employee", False, "inpatient")
    lines = ((VISIT, 1, "5000.00"),)
    first = medical_world.ok_settle("liu", "BJH003", *lines, options=("--inpatient",))
    second = medical_world.ok_settle("liu", "BJH003", *lines, options=("--inpatient",))
    assert first["episode"] == second["episode"] == "inpatient"
    assert first["deductible_fen"] == second["deductible_fen"] == policy.deductible_fen[3] == 130_000
    assert first["fund_fen"] == (500_000 - 130_000) * policy.ratio_pct[3] // 100
    assert second["after"]["inpatient_deductible_paid_fen"] == 260_000
    assert second["after"]["deductible_paid_fen"] == 0  # the outpatient year is untouched
    outpatient = medical_world.ok_settle("liu", "BJH003", (VISIT, 1, "50.00"))
    assert outpatient["episode"] == "outpatient" and outpatient["deductible_fen"] == 5_000
    code, done = medical_world.refund(first["claim_id"])
    assert code == 0, done
    [year] = medical_world.query("bj", "SELECT inpatient_deductible_paid_fen, inpatient_fund_paid_fen "
                                       "FROM medical_years")
    assert (year["inpatient_deductible_paid_fen"], year["inpatient_fund_paid_fen"]) == (130_000, second["fund_fen"])


# --------------------------------------------------------------------------- the policy listing


def test_the_policy_listing_carries_every_figures_source(medical_world):
    code, _, err, data = medical_world.run("medical", "policies", "--json")
    assert code == 0, err
    assert len(data["policies"]) == 24 and len(data["cross_region"]) == 3 * len(medical.TERMS_KINDS)
    bj = next(p for p in data["policies"] if (p["region"], p["insurance_type"], p["retired"], p["episode"]) ==
              ("110000", "employee", False, "outpatient"))
    assert (bj["band_fen"], bj["band_ratio_pct"], bj["cap_fen"], bj["confidence"]) == (2_000_000, 60, None, "secondary")
    assert bj["band"]["illustrative"] is True and bj["source"]
    assert data["national_caps"]["points"] == {"long_term": 0, "referral": 10, "emergency": 10, "other_temporary": 20}
    code, out, _, _ = medical_world.run("medical", "policies", "--region", "120000")
    assert code == 0 and "illustrative" in out and "national caps" in out


def test_rules_beyond_the_national_cap_stop_the_command_with_exit_3(medical_world, jjj_off):
    path = jjj_off / "cross_region.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("120000,other_temporary,15,", "120000,other_temporary,"
                                                                                          "21,"), encoding="utf-8")
    ref.clear_caches()
    code, _, err, _ = medical_world.run("medical", "policies", "--json")
    assert code == 3 and "exceeds the national cap" in err
    code, err = medical_world.settle("wang", HOSPITAL, *LINES)
    assert code == 3


# --------------------------------------------------------------------------- receipts stored before this change


def test_a_claim_stored_before_the_terms_existed_is_read_and_refunded(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    before_claim = {"deductible_paid_fen": 0, "fund_paid_fen": 0}
    from sbcard.store.db import open_db
    from sbcard.store.world import WorldPaths

    db = open_db(WorldPaths(medical_world.home).db("bj"))
    try:  # the row as an older sbcard wrote it: no terms, no provenance, no eligible money in the split
        [row] = db.query("SELECT split FROM medical_claims WHERE claim_id = ?", [done["claim_id"]])
        split = json.loads(row["split"])
        old = {k: v for k, v in split.items() if k not in ("episode", "registration_kind", "cut_points",
                                                             "band_ratio_pct", "source", "confidence", "illustrative")}
        for side in ("before", "after"):
            old[side] = {k: split[side][k] for k in ("year", "deductible_paid_fen", "fund_paid_fen")}
        db.execute("UPDATE medical_claims SET split = ?, registration_kind = NULL, cut_points = NULL WHERE "
                   "claim_id = ?", [json.dumps(old, ensure_ascii=False), done["claim_id"]])
        db.execute("UPDATE medical_years SET eligible_fen = 0")  # as migration 14 leaves an old year
        db.conn.commit()
    finally:
        db.close()
    code, _, _, claims = medical_world.run("medical", "claims", "--json")
    [claim] = claims
    assert (claim["episode"], claim["registration_kind"], claim["cut_points"]) == ("outpatient", None, None)
    assert (claim["confidence"], claim["illustrative"], claim["source"]) == ("illustrative", True, [])
    code, refunded = medical_world.refund(done["claim_id"])
    assert code == 0, refunded
    [year] = medical_world.query("bj", "SELECT deductible_paid_fen, fund_paid_fen, eligible_fen FROM medical_years")
    assert {k: year[k] for k in before_claim} == before_claim and year["eligible_fen"] == 0
