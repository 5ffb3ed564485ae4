"""The point of sale's offline rule (pure) and the card's medical log record (DF04/EF08, 32 bytes)."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.chip.medical_log import OFFLINE, ONLINE, MedicalLogRecord
from sbcard.domain import medical
from sbcard.domain.errors import RuleRefused
from sbcard.domain.medical_claim import OfflineCard, offline_settlement

CATALOGUE = {
    "A1": medical.CatalogueItem("110000", "A1", "甲", "A", 1000, 0),
    "B1": medical.CatalogueItem("110000", "B1", "乙", "B", 1000, 10),
    "C1": medical.CatalogueItem("110000", "C1", "丙", "C", 1000, 100),
}
POLICY = medical.Policy("110000", "employee", False, {1: 1000, 2: 1000, 3: 1000}, {1: 90, 2: 80, 3: 50}, 1_000_000, 0,
                  5000, True, "test")
LOCAL = medical.Circumstances(3, False)


@pytest.mark.parametrize(
    ("card", "lines", "used", "new_year", "fund"),
    [
        (OfflineCard(5000, 0, 2025), [("A1", 3)], 1000, False, 1000),  # 3000 - deductible 1000, 50%
        (OfflineCard(5000, 3000, 2025), [("A1", 3)], 4000, False, 1000),
        (OfflineCard(5000, 4000, 2025), [("A1", 3)], 5000, False, 1000),  # exactly the limit
        (OfflineCard(5000, 4900, 2024), [("A1", 3)], 1000, True, 1000),  # a new year: used counts from 0
        (OfflineCard(5000, 0, None), [("A1", 3)], 1000, True, 1000),
        (OfflineCard(0, 0, 2025), [("A1", 1)], 0, False, 0),  # all within the deductible: no fund, no limit needed
        (OfflineCard(0, 0, 2025), [("C1", 9)], 0, False, 0),  # 丙类: the holder pays it all
    ],
    ids=["first", "more", "to-the-limit", "new-year", "no-year", "zero-limit-deductible", "class-c"],
)
def test_offline_split_and_the_cards_new_used_amount(card, lines, used, new_year, fund):
    decision = offline_settlement([medical.ClaimLine(c, q, 1000) for c, q in lines], CATALOGUE, POLICY, card, LOCAL,
                                  year=2025)
    assert (decision.used_fen, decision.new_year, decision.settlement.fund_fen, decision.year) == (
        used, new_year, fund, 2025)
    assert decision.settlement.account_fen == 0
    assert decision.settlement.before == medical.YearToDate(2025, 0, card.used_in(2025))  # the deductible taken as unpaid


@pytest.mark.parametrize(("card", "quantity"), [(OfflineCard(5000, 4500, 2025), 3), (OfflineCard(500, 0, 2025), 3)],
                         ids=["used-up", "small-limit"])
def test_beyond_the_offline_limit_is_refused(card, quantity):
    with pytest.raises(RuleRefused) as e:
        offline_settlement([medical.ClaimLine("A1", quantity, 1000)], CATALOGUE, POLICY, card, LOCAL, year=2025)
    assert e.value.code == "medical.offline.limit"


AT = dt.datetime(2025, 3, 3, 9, 30, 15)


@pytest.mark.parametrize(
    "record",
    [
        MedicalLogRecord(ONLINE, "BJH003", AT, 42, 91000, 12400, 0, account_used=True, cross_region=True),
        MedicalLogRecord(OFFLINE, "HEH1", AT, 99_999_999, 5, 0, 5, self_pay_account=True),
        MedicalLogRecord(ONLINE, "TJH001", AT, 1, 0xFFFFFFFF, 0, 0),
    ],
    ids=["online", "offline-short-code", "max"],
)
def test_the_log_record_is_32_bytes_and_reads_back(record):
    raw = record.to_bytes()
    assert len(raw) == 32 and raw[31] == 0
    assert MedicalLogRecord.parse(raw) == record
    assert record.account_fen == record.total_fen - record.fund_fen - record.self_fen


def test_the_log_record_layout():
    raw = MedicalLogRecord(ONLINE, "BJH003", AT, 42, 91000, 12400, 500, account_used=True,
                           cross_region=True).to_bytes()
    assert raw.hex().upper() == ("01" + b"BJH003".hex().upper() + "20250303093015" + "0000002A" + "00016378"
                                 + "00003070" + "000001F4" + "05" + "00")
    assert MedicalLogRecord.parse(bytes(32)) is None


@pytest.mark.parametrize(
    "fields",
    [dict(kind=4), dict(hospital="BJH0031"), dict(hospital=""), dict(serial=-1), dict(fund_fen=2, self_fen=2)],
    ids=["kind", "long-code", "empty-code", "serial", "parts-exceed-total"],
)
def test_bad_log_records_are_refused(fields):
    base = dict(kind=ONLINE, hospital="BJH003", at=AT, serial=1, total_fen=3, fund_fen=1, self_fen=1)
    with pytest.raises(ValueError):
        MedicalLogRecord(**{**base, **fields})
