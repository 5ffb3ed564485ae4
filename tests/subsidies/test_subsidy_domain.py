"""The pure rules of subsidy batches: periods, control totals, age bands, and every reason a row is refused."""

from __future__ import annotations

from datetime import date

import attrs
import pytest

from sbcard.domain import subsidies
from sbcard.domain.citizen_id import compute_check_char
from sbcard.domain.errors import InvalidInput

TODAY = date(2026, 11, 22)
GLJT = subsidies.Item("GLJT", "高龄津贴", "民政局", "monthly", 80000, "FUND-GLJT", True)
GDDL = subsidies.Item("GDDLBH", "耕地地力保护补贴", "农业农村局", "yearly", 2000000, "FUND-GDDLBH", True)
LSJZ = subsidies.Item("LSJZ", "临时救助", "民政局", "one_off", 1000000, "FUND-LSJZ", True)


def _cid(seq: int = 123) -> str:
    first17 = f"12010319400101{seq:03d}"
    return first17 + compute_check_char(first17)


CID, OTHER = _cid(123), _cid(125)
CARD, NEW_CARD = "T00000018", "T10000019"


def _row(**changes) -> subsidies.SubsidyRow:
    base = subsidies.SubsidyRow(line=2, seq=1, citizen_id=CID, name="王秀英", card_number="", item="GLJT", period="202610",
                        amount_fen=10000)
    return attrs.evolve(base, **changes)


def _facts(**changes) -> subsidies.Facts:
    base = subsidies.Facts(today=TODAY, batch_region="120103", item=GLJT, registered=True, person_region="120103",
                   registry_name="王秀英", current_card=subsidies.CardFact(CARD, CID, "active", "active"))
    return attrs.evolve(base, **changes)


# ----------------------------------------------------------------------------- periods


@pytest.mark.parametrize(("text", "kind", "expected"), [
    ("202610", "monthly", "202610"), (" 202611 ", "monthly", "202611"), ("2026", "yearly", "2026"),
    ("202601", "one_off", "202601"), ("200001", "monthly", "200001"),
])
def test_subsidy_domain_periods_by_the_items_period_type(text, kind, expected):
    assert subsidies.parse_period(text, kind, TODAY) == expected


@pytest.mark.parametrize(("text", "kind", "words"), [
    ("2026-10", "monthly", "not a month YYYYMM"),
    ("2026", "monthly", "a yearly period?"),
    ("202613", "monthly", "month 13 does not exist"),
    ("202600", "one_off", "month 00 does not exist"),
    ("202610", "yearly", "not a year YYYY"),
    ("202612", "monthly", "has not begun on 2026-11-22"),
    ("2027", "yearly", "has not begun"),
    ("199912", "monthly", "before 2000"),
    ("", "monthly", "not a month"),
])
def test_subsidy_domain_bad_periods_say_why(text, kind, words):
    with pytest.raises(InvalidInput) as bad:
        subsidies.parse_period(text, kind, TODAY)
    assert bad.value.code == "subsidy.bad_period" and words in bad.value.message


def test_subsidy_domain_the_period_a_day_falls_in():
    assert subsidies.period_of(date(2026, 1, 31), "monthly") == "202601"
    assert subsidies.period_of(date(2026, 1, 31), "one_off") == "202601"
    assert subsidies.period_of(date(2026, 1, 31), "yearly") == "2026"


# ----------------------------------------------------------------------------- control totals


def test_subsidy_domain_control_totals_match_to_the_fen():
    assert subsidies.totals_differences(subsidies.ControlTotals(3, 30000), subsidies.ControlTotals(3, 30000)) == []
    [(what, words)] = subsidies.totals_differences(subsidies.ControlTotals(3, 30001), subsidies.ControlTotals(3, 30000))
    assert what == "total" and "¥300.01" in words and "¥0.01 less" in words
    [(what, words)] = subsidies.totals_differences(subsidies.ControlTotals(3, 29999), subsidies.ControlTotals(3, 30000))
    assert "¥0.01 more" in words
    both = subsidies.totals_differences(subsidies.ControlTotals(4, 1), subsidies.ControlTotals(3, 0))
    assert [w for w, _ in both] == ["count", "total"] and "declares 4 rows, the file has 3" in both[0][1]


@pytest.mark.parametrize("text", ["0", "-1", "1.0", "one", "", "１", str(subsidies.MAX_SEQ)])
def test_subsidy_domain_sequence_numbers_are_positive_digits(text):
    with pytest.raises(InvalidInput):
        subsidies.parse_seq(text)


# ----------------------------------------------------------------------------- generation rules


def test_subsidy_domain_age_bands_give_one_amount_per_age():
    bands = [subsidies.AgeBand("GLJT", None, 80, 89, 10000), subsidies.AgeBand("GLJT", None, 90, 99, 50000),
             subsidies.AgeBand("GLJT", None, 100, None, 80000), subsidies.AgeBand("GLJT", "120000", 80, None, 1000)]
    subsidies.check_bands(bands)
    everywhere = subsidies.bands_for(bands, "GLJT", "110000")
    assert [subsidies.amount_for_age(everywhere, age) for age in (79, 80, 89, 90, 99, 100, 120)] == [
        None, 10000, 10000, 50000, 50000, 80000, 80000]
    assert [b.amount_fen for b in subsidies.bands_for(bands, "GLJT", "120000")] == [1000]  # its own bands win
    assert subsidies.bands_for(bands, "LSJZ", "120000") == []


def test_subsidy_domain_overlapping_age_bands_are_refused():
    with pytest.raises(InvalidInput) as overlap:
        subsidies.check_bands([subsidies.AgeBand("GLJT", None, 80, 90, 1), subsidies.AgeBand("GLJT", None, 90, None, 2)])
    assert "overlap" in overlap.value.message
    with pytest.raises(InvalidInput):
        subsidies.check_bands([subsidies.AgeBand("GLJT", None, 80, None, 1), subsidies.AgeBand("GLJT", None, 100, None, 2)])


def test_subsidy_domain_catalogue_finds_items_by_code_or_name():
    catalogue = subsidies.Catalogue([GLJT, GDDL])
    assert catalogue.find("GLJT") is GLJT and catalogue.find("gljt") is GLJT and catalogue.find("高龄津贴") is GLJT
    assert catalogue.find("养老金") is None and len(catalogue) == 2
    with pytest.raises(InvalidInput):
        subsidies.Catalogue([GLJT, GLJT])


# ----------------------------------------------------------------------------- the row checks


def test_subsidy_domain_a_good_row_is_valid_and_names_the_card_to_pay():
    verdict = subsidies.check_row(_row(citizen_id=" 120103 19400101 123" + CID[-1].lower()), _facts())
    assert verdict.valid and verdict.reason_code is None and verdict.note is None
    assert (verdict.citizen_id, verdict.item, verdict.period, verdict.pay_card) == (CID, "GLJT", "202610", CARD)


def _refused(row: subsidies.SubsidyRow, facts: subsidies.Facts) -> subsidies.Verdict:
    verdict = subsidies.check_row(row, facts)
    assert not verdict.valid and verdict.reason, verdict
    return verdict


@pytest.mark.parametrize(("row", "facts", "code", "words"), [
    (_row(citizen_id="120103194001011234"), _facts(registered=False), "invalid_id", "check character"),
    (_row(citizen_id="12010319400101"), _facts(registered=False), "invalid_id", "18 characters"),
    (_row(citizen_id="120103209901011230"), _facts(registered=False), "invalid_id", None),
    (_row(item="XYZ"), _facts(item=None), "unknown_item", "'XYZ' is not a subsidy item"),
    (_row(period="2026"), _facts(), "bad_period", "高龄津贴 '2026' is not a month YYYYMM"),
    (_row(), _facts(first_line=7), "duplicate_in_batch", "already on line 7"),
    (_row(), _facts(paid_in="TJ-S-20261101-0001"), "already_paid", "in batch TJ-S-20261101-0001"),
    (_row(amount_fen=0), _facts(), "amount_not_positive", "¥0.00 is not positive"),
    (_row(amount_fen=-100), _facts(), "amount_not_positive", "-¥1.00"),
    (_row(amount_fen=80001), _facts(), "amount_over_cap", "over 高龄津贴's cap of ¥800.00"),
    (_row(), _facts(registered=False), "not_registered", "no registry"),
    (_row(), _facts(registered=False, registered_in="Beijing"), "other_region", "registered in Beijing"),
    (_row(), _facts(person_region="120101"), "other_region", "lives in region 120101, not in 120103"),
    (_row(name="王秀"), _facts(), "name_mismatch", "differs from the registry"),
    (_row(name=""), _facts(), "name_mismatch", "no name given"),
    (_row(), _facts(current_card=None), "no_card", "holds no social security card"),
    (_row(card_number="T99999990"), _facts(), "card_mismatch", "not a card of this region"),
    (_row(card_number=CARD), _facts(named_card=subsidies.CardFact(CARD, OTHER, "active", "active")), "card_mismatch",
     "not this person's"),
    (_row(), _facts(current_card=subsidies.CardFact(CARD, CID, "issued")), "card_not_activated", "not activated yet"),
    (_row(), _facts(current_card=subsidies.CardFact(CARD, CID, "active")), "card_not_activated", "no open financial"),
    (_row(), _facts(current_card=subsidies.CardFact(CARD, CID, "lost", "frozen")), "card_lost", "reported lost"),
    (_row(), _facts(current_card=subsidies.CardFact(CARD, CID, "cancelled")), "card_cancelled", "is cancelled"),
    (_row(card_number=CARD), _facts(named_card=subsidies.CardFact(CARD, CID, "cancelled"),
                                    current_card=subsidies.CardFact(CARD, CID, "cancelled")),
     "card_cancelled", "holds no other card"),
    (_row(card_number=CARD), _facts(named_card=subsidies.CardFact(CARD, CID, "replaced"),
                                    current_card=subsidies.CardFact(NEW_CARD, CID, "issued", "active")),
     "card_replaced", f"card {CARD} was replaced; the current card cannot be paid either: card {NEW_CARD} is not "
                      "activated"),
    (_row(), _facts(current_card=subsidies.CardFact(CARD, CID, "active", "frozen")), "account_frozen", "is frozen"),
    (_row(), _facts(current_card=subsidies.CardFact(CARD, CID, "active", "frozen", lost_lapsed=True)), "account_frozen",
     "lapse-losses"),
])
def test_subsidy_domain_every_reason_code(row, facts, code, words):
    verdict = _refused(row, facts)
    assert verdict.reason_code == code
    if words:
        assert words in verdict.reason


def test_subsidy_domain_every_reason_code_is_tested_and_has_words():
    assert set(subsidies.REASON_WORDS) == set(subsidies.Reason)
    assert {subsidies.describe(code) for code in subsidies.Reason} == set(subsidies.REASON_WORDS.values())
    assert subsidies.describe("something_new") == "something_new"


def test_subsidy_domain_a_spreadsheet_number_in_the_id_column_is_explained():
    verdict = _refused(_row(citizen_id="1.2010319400101e+17", number_cells=frozenset({"citizen_id"})),
                       _facts(registered=False))
    assert verdict.reason_code == "invalid_id" and "format the column as text" in verdict.reason


def test_subsidy_domain_a_replaced_or_cancelled_card_pays_the_current_one_and_says_so():
    current = subsidies.CardFact(NEW_CARD, CID, "active", "active")
    for status in ("replaced", "cancelled"):
        verdict = subsidies.check_row(_row(card_number=CARD.lower()),
                              _facts(named_card=subsidies.CardFact(CARD, CID, status), current_card=current))
        assert verdict.valid and verdict.pay_card == NEW_CARD
        assert verdict.note == f"card {CARD} was {status}: paid to the current card {NEW_CARD}"


def test_subsidy_domain_a_lapsed_temporary_loss_counts_as_active():
    card = subsidies.CardFact(CARD, CID, "active", "active", lost_lapsed=True)
    assert subsidies.check_row(_row(card_number=CARD), _facts(named_card=card, current_card=card)).valid


def test_subsidy_domain_names_compare_as_people_write_them():
    assert subsidies.normalise_name(" 买买提•艾力 ") == subsidies.normalise_name("买买提·艾力") == subsidies.normalise_name("买买提．艾力")
    assert subsidies.normalise_name("王 秀英") == "王秀英"
    assert subsidies.normalise_name("ＡＢＣ") == "ABC"
    assert subsidies.check_row(_row(name="王 秀 英"), _facts()).valid


def test_subsidy_domain_the_first_reason_wins():
    # an invalid ID hides everything after it; a duplicate hides the amount and the card
    verdict = _refused(_row(citizen_id="x", amount_fen=0), _facts(registered=False, first_line=3))
    assert verdict.reason_code == "invalid_id"
    verdict = _refused(_row(amount_fen=0), _facts(first_line=3, current_card=None))
    assert verdict.reason_code == "duplicate_in_batch"


def test_subsidy_domain_card_verdict_for_pay_time():
    assert subsidies.card_verdict(subsidies.CardFact(CARD, CID, "active", "active"), CID) == (None, None)
    code, words = subsidies.card_verdict(subsidies.CardFact(CARD, CID, "lost", "frozen"), CID)
    assert code == subsidies.Reason.CARD_LOST and CARD in words


def test_subsidy_domain_file_rejections_name_the_line_and_column():
    error = subsidies.FileRejected("totals", "the trailer declares ¥1.00", file="b.csv", line=9, column="3 (total)")
    assert str(error) == "b.csv line 9, column 3 (total): the trailer declares ¥1.00"
    assert error.code == "subsidy_file.totals" and error.exit_code == 2 and (error.line, error.column) == (9, "3 (total)")
    assert str(subsidies.FileRejected("no_totals", "no control totals", file="b.csv")) == "b.csv: no control totals"
