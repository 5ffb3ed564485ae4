"""`sbcard medical settle` end to end: the card read, the insured region's split, the ledger, the card's log."""

from __future__ import annotations

import pytest
from medical_world import NOW, PIN, circumstances, clock, medical_template, medical_world  # noqa: F401

from sbcard.reference import medical as ref
from sbcard.chip.medical_log import OFFLINE, ONLINE
from sbcard.domain import medical

AMOXICILLIN, CT, BLOOD = "XJ01CAA040", "002103000010000", "002502010010000"
INSURED = {"liu": ("110000", "employee", False), "zhao": ("130000", "employee", False),
           "sun": ("130000", "resident", False), "wang": ("120000", "employee", True)}


def expected(holder: str, hospital: str, lines, *, visit="", account=0,
             ytd: medical.YearToDate | None = None) -> medical.Settlement:
    """What the rules say, from the same fixtures: the hospital's catalogue, the holder's policy, the day's terms."""
    h = ref.hospital(hospital)
    policy = ref.policy(*INSURED[holder])
    c = circumstances(h, policy.region, visit=visit)
    claim = [medical.ClaimLine(code, quantity, medical.parse_lines([{"code": code, "quantity": 1, "price": price}])[0]
                         .unit_price_fen) for code, quantity, price in lines]
    return medical.settle(claim, ref.catalogue(h.province), policy, ytd or medical.YearToDate(NOW.year), c,
                    account_available_fen=account)


LINES = ((AMOXICILLIN, 40, "12.50"), (CT, 4, "220.00"), (BLOOD, 2, "25.00"))


@pytest.mark.parametrize(
    ("holder", "hospital", "options", "cross"),
    [
        ("liu", "BJH003", (), False),  # a Beijing employee at a Beijing hospital
        ("zhao", "BJH003", (), True),  # a Hebei card in Beijing: Jing-Jin-Ji 视同备案, the full ratio
        ("zhao", "BJH003", ("--referral",), True),  # referred: still the Jing-Jin-Ji terms (the most favourable)
        ("zhao", "BJH001", ("--emergency",), True),  # an emergency: likewise
        ("sun", "HEH001", (), False),  # a Hebei resident at home
        ("wang", "TJH002", (), False),  # a retired Tianjin employee
        ("wang", "HEH007", (), True),  # …in a level-2 Hebei hospital
    ],
    ids=["local", "cross", "referral", "emergency", "resident", "retired", "retired-cross-l2"],
)
def test_the_split_is_the_insured_policy_on_the_hospital_catalogue(medical_world, holder, hospital, options, cross):
    done = medical_world.ok_settle(holder, hospital, *LINES, options=options)
    visit = "referral" if "--referral" in options else "emergency" if "--emergency" in options else ""
    want = expected(holder, hospital, LINES, visit=visit)
    assert (done["mode"], done["status"], done["cross_region"]) == ("online", "settled", cross)
    assert [done[k] for k in ("total_fen", "fund_fen", "account_fen", "self_fen", "deductible_fen", "ratio_pct")] == \
        [want.total_fen, want.fund_fen, want.account_fen, want.self_fen, want.deductible_fen, want.ratio_pct]
    assert done["items"] == [i.to_json() for i in want.items]
    assert done["insured_node"] == medical_world.cards[holder].node
    assert done["after"] == want.after.to_json()
    assert (done["registration_kind"], done["cut_points"]) == (want.registration_kind, want.cut_points)
    assert (done["registration_kind"] == "jjj_deemed") == cross and done["visit"] == visit
    assert done["confidence"] == want.provenance.confidence and done["illustrative"] == want.provenance.illustrative


def test_inside_jing_jin_ji_a_cross_region_claim_keeps_the_level_ratio(medical_world):
    """视同备案 inside Jing-Jin-Ji (cross_region.csv, secondary source): no points off, whatever the visit.

    The cuts by registration kind, with the switch off, are in test_medical_registrations.py.
    """
    policy = ref.policy("130000", "employee", False)
    level = ref.hospital("BJH003").level
    ratios = {options: medical_world.ok_settle("zhao", "BJH003", (BLOOD, 1, "25.00"), options=options)["ratio_pct"]
              for options in ((), ("--referral",), ("--emergency",))}
    assert set(ratios.values()) == {policy.ratio_pct[level]}


def test_the_deductible_is_crossed_in_the_middle_of_a_claim(medical_world):
    policy = ref.policy("110000", "employee", False)
    deductible = policy.deductible_fen[3]
    blood = ref.catalogue("110000")[BLOOD]
    quantity = deductible // blood.price_fen + 3  # the deductible ends inside this line
    done = medical_world.ok_settle("liu", "BJH003", (BLOOD, quantity, "25.00"), (AMOXICILLIN, 2, "12.50"))
    assert done["deductible_fen"] == deductible
    first, second = done["items"]
    assert first["deductible_fen"] == deductible and first["fund_fen"] > 0
    assert second["deductible_fen"] == 0 and second["fund_fen"] == 2500 * policy.ratio_pct[3] // 100
    assert medical_world.year("liu")["deductible_remaining_fen"]["3"] == 0


def test_a_later_claim_continues_from_the_year_so_far(medical_world):
    first = medical_world.ok_settle("zhao", "HEH001", *LINES)
    second = medical_world.ok_settle("zhao", "HEH001", *LINES)
    want = expected("zhao", "HEH001", LINES, ytd=medical.YearToDate(NOW.year, first["after"]["deductible_paid_fen"],
                                                               first["after"]["fund_paid_fen"]))
    assert (second["fund_fen"], second["deductible_fen"]) == (want.fund_fen, want.deductible_fen)
    year = medical_world.year("zhao")
    assert (year["deductible_paid_fen"], year["fund_paid_fen"], year["claims"]) == (
        want.after.deductible_paid_fen, want.after.fund_paid_fen, 2)


def test_the_personal_account_pays_with_the_pin(medical_world):
    allocation = ref.policy("130000", "employee", False).personal_account_annual_fen
    done = medical_world.ok_settle("zhao", "BJH003", *LINES, options=("--pin", PIN))
    want = expected("zhao", "BJH003", LINES, account=allocation)
    assert done["use_account"] and done["account_fen"] == want.account_fen > 0
    assert done["personal_account_fen"] == allocation - want.account_fen
    he = medical_world.balances("he")
    accounts = medical_world.state()["he"]["accounts"]
    assert he.get("FUND-MEDICAL-ACCOUNTS", 0) == sum(accounts.values()) == allocation - want.account_fen
    assert he["FUND-MEDICAL-POOL"] == -want.fund_fen
    assert he["CLEARING-bj"] == want.fund_fen + want.account_fen  # owed to Beijing's hospital


def test_the_self_pay_from_the_financial_account(medical_world):
    """A resident has no personal account: the PIN takes the self-pay from the card's financial account."""
    before = medical_world.account("sun")
    done = medical_world.ok_settle("sun", "HEH001", *LINES, options=("--pin", PIN, "--self-pay", "account"))
    assert done["self_pay"] == "account" and done["account_fen"] == 0 and done["self_fen"] > 0
    assert medical_world.account("sun") == before - done["self_fen"]
    assert medical_world.balances("he")["CLEARING-he"] == done["total_fen"]
    assert medical_world.medical_log("sun")[0].self_pay_account


def test_the_card_logs_the_settlement_in_ef08(medical_world):
    done = medical_world.ok_settle("zhao", "BJH003", *LINES, options=("--pin", PIN))
    [record] = medical_world.medical_log("zhao")
    assert done["ef08_written"]
    assert (record.kind, record.hospital, record.serial) == (ONLINE, "BJH003", int(done["claim_id"].split("-")[1]))
    assert (record.total_fen, record.fund_fen, record.account_fen, record.self_fen) == (
        done["total_fen"], done["fund_fen"], done["account_fen"], done["self_fen"])
    assert record.account_used and record.cross_region and not record.self_pay_account
    assert record.at == NOW.replace(tzinfo=None)
    assert ONLINE != OFFLINE


def test_items_as_csv(medical_world):
    path = medical_world.tmp / "items.csv"
    path.write_text("code,quantity,price\nXJ01CAA040,2,12.50\n002502010010000,1,25\n", encoding="utf-8")
    code, _, err, done = medical_world.run("medical", "settle", "--reader", medical_world.reader("liu"), "--hospital",
                                           "BJH003", "--items", str(path), "--json")
    assert code == 0, err
    assert [(i["code"], i["quantity"], i["unit_price_fen"]) for i in done["items"]] == [
        (AMOXICILLIN, 2, 1250), (BLOOD, 1, 2500)]


def test_the_human_receipt_masks_the_holder(medical_world):
    code, out, err, _ = medical_world.run("medical", "settle", "--reader", medical_world.reader("liu"), "--hospital",
                                          "BJH003", "--items", str(medical_world.items(*LINES)))
    assert code == 0, err
    assert "刘*" in out and "刘洋" not in out and "BJH003-00000001" in out


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ((("XX0000", 1, "1.00"),), "items[0].code"),
        (((AMOXICILLIN, 1, "1.00"), ("NOPE", 1, "1.00")), "items[1].code"),
        (((AMOXICILLIN, 0, "12.50"),), "items[0].quantity"),
        (((AMOXICILLIN, -2, "12.50"),), "items[0].quantity"),
        (((AMOXICILLIN, 1, "0"),), "items[0].price"),
        (((AMOXICILLIN, 1, "-3.00"),), "items[0].price"),
        (((AMOXICILLIN, 1, "1.005"),), "items[0].price"),
    ],
    ids=["unknown", "unknown-second", "zero-quantity", "negative-quantity", "zero-price", "negative-price",
         "fraction-of-fen"],
)
def test_bad_items_are_refused_and_nothing_is_written(medical_world, lines, field):
    before = medical_world.state()
    code, err = medical_world.settle("liu", "BJH003", *lines)
    assert code == 2 and field in err
    assert medical_world.state() == before
    assert medical_world.query("bj", "SELECT * FROM sequences WHERE name LIKE 'medical_claim:%'") == []
    assert medical_world.medical_log("liu") == []


def test_an_unknown_hospital(medical_world):
    code, err = medical_world.settle("liu", "XXH999", (AMOXICILLIN, 1, "12.50"))
    assert code == 2 and "--hospital" in err


def test_hospitals_and_catalogue(medical_world):
    code, _, _, hospitals = medical_world.run("medical", "hospitals", "--region", "130000", "--json")
    assert code == 0 and hospitals and all(h["region"].startswith("13") for h in hospitals)
    assert set(hospitals[0]) >= {"code", "name", "region", "level"}
    code, _, _, items = medical_world.run("medical", "catalogue", "--region", "110105", "--json")
    assert code == 0 and {i["code"] for i in items} == set(ref.catalogue("110000"))
    assert set(items[0]) >= {"code", "name", "class", "price_fen"}
    code, _, err, _ = medical_world.run("medical", "catalogue", "--region", "440000", "--json")
    assert code == 2 and "--region" in err


def test_claims_lists_every_region(medical_world):
    a = medical_world.ok_settle("liu", "BJH003", *LINES)
    b = medical_world.ok_settle("zhao", "TJH001", *LINES)
    code, _, _, rows = medical_world.run("medical", "claims", "--json")
    assert [r["claim_id"] for r in rows] == [a["claim_id"], b["claim_id"]]
    code, _, _, rows = medical_world.run("medical", "claims", "--card", medical_world.cards["zhao"].number, "--json")
    assert [r["claim_id"] for r in rows] == [b["claim_id"]]
    code, _, _, rows = medical_world.run("medical", "claims", "--hospital", "BJH003", "--json")
    assert [r["claim_id"] for r in rows] == [a["claim_id"]]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("items.csv", "code,quantity,price\n" + "9" * 200_000 + ",1,1.00\n", "not readable as CSV"),
        ("items.json", "[" * 100_000, "is not JSON"),
    ],
    ids=["field-past-the-csv-limit", "json-nested-too-deep"],
)
def test_an_items_file_that_cannot_be_read_is_bad_input(medical_world, name, content, words):
    path = medical_world.tmp / name
    path.write_text(content, encoding="utf-8")
    before = medical_world.state()
    code, _, err, _ = medical_world.run("medical", "settle", "--reader", medical_world.reader("liu"), "--hospital",
                                        "BJH003", "--items", str(path))
    assert code == 2 and err.startswith("error: --items: ") and words in err, err
    assert medical_world.state() == before
