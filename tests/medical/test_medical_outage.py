"""An insured region the hub cannot reach: settled offline against DF04/EF06, queued, reconciled later."""

from __future__ import annotations

import datetime as dt

from medical_world import NOW, PIN, circumstances, clock, medical_template, medical_world  # noqa: F401

from sbcard.reference import medical as ref
from sbcard.chip.medical_log import OFFLINE
from sbcard.clock import BEIJING
from sbcard.domain import medical

AMOXICILLIN, CT, BLOOD = "XJ01CAA040", "002103000010000", "002502010010000"
LINES = ((AMOXICILLIN, 40, "12.50"), (CT, 4, "220.00"))
POLICY = ref.policy("130000", "employee", False)


def test_hub_links(medical_world):
    code, _, _, links = medical_world.run("hub", "links", "--json")
    assert code == 0 and [(l["node"], l["up"]) for l in links] == [("bj", True), ("tj", True), ("he", True)]
    code, _, _, link = medical_world.run("hub", "link", "he", "--down", "--note", "fibre cut", "--json")
    assert (link["up"], link["note"], link["changed"]) == (False, "fibre cut", True)
    code, _, _, links = medical_world.run("hub", "links", "--json")
    assert [l["up"] for l in links] == [True, True, False]
    code, _, err, _ = medical_world.run("hub", "link", "xx", "--down", "--json")
    assert code == 2 and "NODE" in err


def test_offline_settlement_against_the_card(medical_world):
    medical_world.link("he", "down")
    limit, used, year = medical_world.offline_data("zhao")
    assert (limit, used, year) == (POLICY.offline_limit_fen, 0, NOW.year)
    code, done = medical_world.settle("zhao", "BJH003", *LINES)
    assert code == 0, done
    assert (done["mode"], done["status"], done["account_fen"], done["self_pay"]) == ("offline", "queued", 0, "cash")
    h = ref.hospital("BJH003")
    want = medical.settle([medical.ClaimLine(AMOXICILLIN, 40, 1250), medical.ClaimLine(CT, 4, 22000)], ref.catalogue("110000"), POLICY,
                    medical.YearToDate(NOW.year), circumstances(h, "130000"))
    assert (done["fund_fen"], done["self_fen"], done["deductible_fen"]) == (want.fund_fen, want.self_fen,
                                                                             want.deductible_fen)
    assert medical_world.offline_data("zhao") == (limit, want.fund_fen, NOW.year)
    [record] = medical_world.medical_log("zhao")
    assert (record.kind, record.fund_fen, record.self_fen) == (OFFLINE, want.fund_fen, want.self_fen)
    assert medical_world.query("he", "SELECT * FROM medical_claims") == []
    [queued] = medical_world.query("bj", "SELECT * FROM medical_offline_queue")
    assert (queued["claim_id"], queued["status"], queued["insured_node"]) == (done["claim_id"], "queued", "he")
    code, _, _, claims = medical_world.run("medical", "claims", "--json")
    assert [(c["claim_id"], c["status"]) for c in claims] == [(done["claim_id"], "queued")]
    code, err = medical_world.refund(done["claim_id"])
    assert code == 1 and "reconcile" in err


def test_offline_beyond_the_limit_is_refused_and_changes_nothing(medical_world):
    medical_world.link("he", "down")
    card_before = medical_world.card_state("zhao")
    big = ((CT, 60, "220.00"),)
    code, err = medical_world.settle("zhao", "HEH001", *big)
    assert code == 1 and "offline limit" in err
    assert medical_world.card_state("zhao") == card_before
    assert medical_world.query("he", "SELECT * FROM medical_offline_queue") == []


def test_offline_the_accounts_cannot_pay(medical_world):
    medical_world.link("he", "down")
    code, err = medical_world.settle("sun", "HEH001", *LINES, options=("--pin", PIN, "--self-pay", "account"))
    assert code == 1 and "cash" in err
    code, done = medical_world.settle("zhao", "BJH003", *LINES, options=("--pin", PIN))
    assert code == 0 and done["account_fen"] == 0 and any("personal account" in n for n in done["notes"])


def test_the_insured_region_down_only_stops_its_own_holders(medical_world):
    medical_world.link("he", "down")
    assert medical_world.ok_settle("liu", "BJH003", *LINES)["mode"] == "online"
    medical_world.link("bj", "down")  # the hospital's own region: no way to the hub either
    code, done = medical_world.settle("liu", "BJH003", (BLOOD, 1, "25.00"))
    assert code == 0 and done["mode"] == "offline"


def test_reconcile_settles_with_the_real_accumulators_and_pays_back_the_difference(medical_world):
    # Part of the deductible is paid online first; offline, the point of sale takes it as unpaid.
    first = medical_world.ok_settle("zhao", "HEH001", (BLOOD, 8, "25.00"))
    paid = first["after"]["deductible_paid_fen"]
    assert 0 < paid < POLICY.deductible_fen[3]
    medical_world.link("he", "down")
    offline = medical_world.ok_settle("zhao", "BJH003", *LINES)
    account_before, he_before = medical_world.account("zhao"), medical_world.balances("he")

    code, _, _, waiting = medical_world.run("medical", "reconcile", "--json")
    assert waiting["waiting"] == [{"claim_id": offline["claim_id"], "insured_node": "he"}] and not waiting["reconciled"]

    medical_world.link("he", "up")
    code, _, _, done = medical_world.run("medical", "reconcile", "--json")
    assert code == 0 and [c["claim_id"] for c in done["reconciled"]] == [offline["claim_id"]]
    claim = done["reconciled"][0]
    h = ref.hospital("BJH003")
    real = medical.settle([medical.ClaimLine(AMOXICILLIN, 40, 1250), medical.ClaimLine(CT, 4, 22000)], ref.catalogue("110000"), POLICY,
                    medical.YearToDate(NOW.year, paid, first["after"]["fund_paid_fen"]), circumstances(h, "130000"))
    assert (claim["mode"], claim["fund_fen"], claim["self_fen"]) == ("offline", real.fund_fen, real.self_fen)
    adjustment = offline["self_fen"] - real.self_fen
    assert claim["adjustment_fen"] == adjustment > 0 and claim["owed_fen"] == 0
    assert medical_world.account("zhao") == account_before + adjustment  # the holder paid too much offline
    he = medical_world.balances("he")
    assert he["FUND-MEDICAL-POOL"] - he_before.get("FUND-MEDICAL-POOL", 0) == -real.fund_fen
    assert he["CLEARING-bj"] - he_before.get("CLEARING-bj", 0) == real.total_fen - offline["self_fen"]
    year = medical_world.year("zhao")
    assert (year["deductible_paid_fen"], year["fund_paid_fen"]) == (real.after.deductible_paid_fen,
                                                                     real.after.fund_paid_fen)
    [queued] = medical_world.query("bj", "SELECT status FROM medical_offline_queue")
    assert queued["status"] == "reconciled"

    code, _, _, again = medical_world.run("medical", "reconcile", "--json")
    assert again == {"reconciled": [], "refused": [], "waiting": []}
    assert len(medical_world.hub_messages("medical.settle")) == 2


def test_the_next_online_claim_reconciles_its_region_first(medical_world):
    medical_world.link("he", "down")
    offline = medical_world.ok_settle("zhao", "BJH003", *LINES)
    medical_world.link("he", "up")
    online = medical_world.ok_settle("zhao", "TJH001", (BLOOD, 1, "25.00"))
    assert online["before"] == {**offline["after"], "year": NOW.year}
    rows = medical_world.query("he", "SELECT claim_id, mode FROM medical_claims ORDER BY recorded_at, rowid")
    assert [(r["claim_id"], r["mode"]) for r in rows] == [(offline["claim_id"], "offline"),
                                                          (online["claim_id"], "online")]


def test_offline_in_a_new_year_starts_the_cards_used_amount_again(medical_world, clock):
    medical_world.link("he", "down")
    medical_world.ok_settle("zhao", "BJH003", *LINES)
    used = medical_world.offline_data("zhao")[1]
    assert used > 0
    clock.move_to(dt.datetime(NOW.year + 1, 1, 2, 10, 0, tzinfo=BEIJING))
    done = medical_world.ok_settle("zhao", "BJH003", *LINES)
    assert medical_world.offline_data("zhao") == (POLICY.offline_limit_fen, done["fund_fen"], NOW.year + 1)
    medical_world.link("he", "up")
    code, _, _, reconciled = medical_world.run("medical", "reconcile", "--json")
    assert [c["year"] for c in reconciled["reconciled"]] == [NOW.year, NOW.year + 1]


def test_online_and_offline_receipts_have_the_same_keys(medical_world):
    online = medical_world.ok_settle("zhao", "BJH003", *LINES)
    medical_world.link("he", "down")
    offline = medical_world.ok_settle("zhao", "BJH003", *LINES)
    assert list(online) == list(offline)


def test_every_command_speaks_to_people_too(medical_world):
    done = medical_world.ok_settle("liu", "BJH003", *LINES)
    medical_world.link("he", "down")
    medical_world.ok_settle("zhao", "BJH003", *LINES)
    number = medical_world.cards["liu"].number
    outputs = {}
    for args in (("hub", "links"), ("hub", "link", "he"), ("medical", "hospitals", "--region", "110105"),
                 ("medical", "catalogue", "--region", "120000"), ("medical", "claims"),
                 ("medical", "year", "--card", number), ("medical", "reconcile"),
                 ("medical", "refund", done["claim_id"], "--items", AMOXICILLIN)):
        code, out, err, _ = medical_world.run(*args)
        assert code == 0, (args, err)
        outputs[args[1]] = out
    assert "he" in outputs["link"] and "DOWN" in outputs["link"]
    assert "1 waiting" in outputs["reconcile"] and "queued" in outputs["claims"]
    assert f"{done['claim_id']}-R" in outputs["refund"]
