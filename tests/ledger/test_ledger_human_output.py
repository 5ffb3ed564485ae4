"""`sbcard account …` as a clerk reads it: amounts as the report shows them (¥12,345.60), each
entry's time in Beijing to the second; the JSON keeps fen and ISO times."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time

BANK = "TJ-120103-02"


@pytest.fixture
def card(empty_account_card):
    return empty_account_card


def test_a_deposit_reads_in_the_reports_money_format_and_beijing_time(sbcard, card):
    with freeze_time(dt.datetime(2025, 3, 1, 16, 30, 5, 250000, tzinfo=dt.timezone.utc)):  # 00:30:05 on 2 March
        code, out, err, _ = sbcard("account", "deposit", card, "--amount", "12345.6", "--operator", "tj-op",
                                   "--outlet", BANK)
    assert code == 0, err
    assert "Deposited ¥12,345.60 to account" in out and "balance      ¥12,345.60" in out

    code, out, err, _ = sbcard("account", "show", card)
    assert code == 0, err
    [entry] = [line for line in out.splitlines() if "cash_deposit" in line]
    assert entry.startswith("2025-03-02 00:30:05  cash_deposit  ¥12,345.60")

    _, _, _, data = sbcard("account", "show", card, "--json")
    assert data["balance_fen"] == 1_234_560
    assert data["entries"][0]["at"] == "2025-03-02T00:30:05.250000+08:00" and data["entries"][0]["amount_fen"] == 1_234_560
