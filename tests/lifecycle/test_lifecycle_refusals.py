"""Illegal life events: one line on stderr, a non-zero exit, and no change in any database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lifecycle_world import NOW, OUTLET, digests

LOSS_BY_PHONE = ("card", "report-lost", "{card}", "--channel", "phone", "--operator", "BJ-CALL")
LOSS_AT_COUNTER = ("card", "report-lost", "{card}", "--operator", "BJ-C1", "--outlet", OUTLET)
CANCEL = ("card", "cancel", "{card}", "--operator", "BJ-C1", "--reason", "holder died")

# name → (steps before, days later, the refused command, exit code, words in the message)
CASES = {
    "unblock an active card": (
        [], 0, ("card", "unblock", "{card}", "--operator", "BJ-C1"), 1, "is active; only a lost card can be unblocked"),
    "confirm a formal loss": (
        [LOSS_AT_COUNTER], 0, ("card", "confirm-loss", "{card}", "--operator", "BJ-C1"), 1,
        "is reported lost; only a temporary loss can be confirmed"),
    "report a lost card lost": (
        [LOSS_BY_PHONE], 1, LOSS_AT_COUNTER, 1, "is temporarily reported lost (lapses 2025-03-08 09:00)"),
    "confirm a lapsed loss": (
        [LOSS_BY_PHONE], 6, ("card", "confirm-loss", "{card}", "--operator", "BJ-C1"), 1,
        "is active (its temporary loss lapsed 2025-03-08 09:00); only a temporary loss"),
    "unblock a lapsed loss": (
        [LOSS_BY_PHONE], 5, ("card", "unblock", "{card}", "--operator", "BJ-C1"), 1, "its temporary loss lapsed"),
    "cancel twice": ([CANCEL], 0, CANCEL, 1, "is cancelled; it cannot be cancelled twice"),
    "report a cancelled card lost": ([CANCEL], 0, LOSS_AT_COUNTER, 1, "is cancelled; only an active card"),
    "unknown operator": ([], 0, ("card", "unblock", "{card}", "--operator", "NOBODY"), 2, "no operator 'NOBODY'"),
    "finance staff at the counter": (
        [], 0, ("card", "report-lost", "{card}", "--operator", "BJ-F1"), 1, "is a finance operator; this needs"),
    "operator of another region's outlet": (
        [], 0, ("card", "report-lost", "{card}", "--operator", "TJ-C1", "--outlet", OUTLET), 2,
        "no operator 'TJ-C1' in Beijing"),
    "unknown outlet": ([], 0, ("card", "report-lost", "{card}", "--operator", "BJ-C1", "--outlet", "BJ-110105-99"),
                       2, "no outlet BJ-110105-99"),
    "unknown card": ([], 0, ("card", "report-lost", "B00009996", "--operator", "BJ-C1"), 2, "no card B00009996"),
    "malformed card": ([], 0, ("card", "unblock", "B0000001", "--operator", "BJ-C1"), 2, "CARD: a card number has 9"),
    "temporary loss at a counter": (
        [], 0, ("card", "report-lost", "{card}", "--temporary", "--channel", "counter", "--operator", "BJ-C1"), 2,
        "--temporary: a loss reported at a counter is formal"),
    "phone loss at an outlet": (
        [], 0, LOSS_BY_PHONE + ("--outlet", OUTLET), 2, "--outlet: a loss reported by phone is not taken at an outlet"),
    "cancel with a blank reason": (
        [], 0, ("card", "cancel", "{card}", "--operator", "BJ-C1", "--reason", " "), 2, "--reason: empty value"),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_without_a_trace(case: str, sbcard, home, issue, clock) -> None:
    steps, days, command, exit_code, words = CASES[case]
    card = issue("liu")
    for step in steps:
        assert sbcard(*(arg.format(card=card) for arg in step))[0] == 0
    clock.move_to(NOW + timedelta(days=days))
    before = digests(home)

    code, out, err, _ = sbcard(*(arg.format(card=card) for arg in command))

    assert code == exit_code, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err
    assert digests(home) == before


def test_an_issued_card_not_yet_activated_cannot_be_reported_lost(sbcard, home, issue) -> None:
    card = issue("liu", activate=False)
    before = digests(home)
    code, out, err, _ = sbcard(*(arg.format(card=card) for arg in LOSS_AT_COUNTER))
    assert code == 1
    assert "is issued but not yet activated; only an active card can be reported lost" in err
    assert digests(home) == before
