"""The unattended limits of a kiosk's load (sbcard/domain/kiosk_load.py), at their edges."""

from __future__ import annotations

import pytest

from sbcard.domain.errors import RuleRefused
from sbcard.domain.kiosk_load import MAX_DAY_FEN, MAX_LOAD_FEN, check_unattended_load
from sbcard.domain.purse_load import MAX_BALANCE_FEN


def test_the_limits_sit_under_the_purse_maximum():
    assert 0 < MAX_LOAD_FEN <= MAX_DAY_FEN <= MAX_BALANCE_FEN


@pytest.mark.parametrize("amount, today", [(1, 0), (MAX_LOAD_FEN, 0), (MAX_LOAD_FEN, MAX_DAY_FEN - MAX_LOAD_FEN),
                                           (1, MAX_DAY_FEN - 1)])
def test_within_the_limits(amount, today):
    check_unattended_load(amount, today)


@pytest.mark.parametrize("amount, today, code", [
    (MAX_LOAD_FEN + 1, 0, "kiosk.load_limit"),
    (MAX_LOAD_FEN + 1, MAX_DAY_FEN, "kiosk.load_limit"),  # the per-load cap is named first
    (1, MAX_DAY_FEN, "kiosk.daily_limit"),
    (MAX_LOAD_FEN, MAX_DAY_FEN - MAX_LOAD_FEN + 1, "kiosk.daily_limit"),
])
def test_over_a_limit_is_refused_naming_the_amount(amount, today, code):
    with pytest.raises(RuleRefused) as refused:
        check_unattended_load(amount, today)
    assert (refused.value.code, refused.value.field) == (code, "amount_fen")
