"""The card's status machine, every action against every state (sbcard.domain.lifecycle)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sbcard.domain import lifecycle
from sbcard.domain.errors import InvalidInput, RuleRefused

CST = timezone(timedelta(hours=8))
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=CST)
CARD = "110000011"

STATES = {
    "issued": lifecycle.CardState(CARD, "issued"),
    "active": lifecycle.CardState(CARD, "active"),
    "lost_temporary": lifecycle.CardState(CARD, "lost", "temporary", NOW + timedelta(days=1)),
    "lost_lapsed": lifecycle.CardState(CARD, "lost", "temporary", NOW - timedelta(seconds=1)),
    "lost_formal": lifecycle.CardState(CARD, "lost", "formal"),
    "replaced": lifecycle.CardState(CARD, "replaced"),
    "cancelled": lifecycle.CardState(CARD, "cancelled"),
}

ACTIONS = {
    "activate": lambda s: lifecycle.activate(s, NOW),
    "report_lost_phone": lambda s: lifecycle.report_lost(s, lifecycle.Channel.PHONE, NOW),
    "report_lost_counter": lambda s: lifecycle.report_lost(s, lifecycle.Channel.COUNTER, NOW),
    "confirm_loss": lambda s: lifecycle.confirm_loss(s, NOW),
    "unblock": lambda s: lifecycle.unblock(s, NOW),
    "replace": lambda s: lifecycle.replace(s, NOW),
    "cancel": lambda s: lifecycle.cancel(s, NOW),
}

TEMP = ("lost", "temporary")
FORMAL = ("lost", "formal")
# (action, state) → (status, loss kind) after, or None when refused. A lapsed temporary
# loss is an active card: it may be reported lost again, not confirmed or unblocked.
EXPECTED = {
    "activate": {"issued": ("active", None)},
    "report_lost_phone": {"active": TEMP, "lost_lapsed": TEMP},
    "report_lost_counter": {"active": FORMAL, "lost_lapsed": FORMAL},
    "confirm_loss": {"lost_temporary": FORMAL},
    "unblock": {"lost_temporary": ("active", None), "lost_formal": ("active", None)},
    "replace": {name: ("replaced", None) for name in ("issued", "active", "lost_temporary", "lost_formal", "lost_lapsed")},
    "cancel": {name: ("cancelled", None) for name in STATES if name != "cancelled"},
}


@pytest.mark.parametrize("state_name", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_from_every_state(action: str, state_name: str) -> None:
    expected = EXPECTED[action].get(state_name)
    state = STATES[state_name]
    if expected is None:
        with pytest.raises(RuleRefused) as refused:
            ACTIONS[action](state)
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"CARD: card {CARD} is ")
        assert refused.value.exit_code == 1
    else:
        after = ACTIONS[action](state)
        assert (after.status.value, after.loss_kind and after.loss_kind.value) == expected
        assert after.card_number == CARD


def test_temporary_loss_lapses_after_five_days_to_the_second() -> None:
    lost = lifecycle.report_lost(STATES["active"], lifecycle.Channel.APP, NOW)
    assert lost.loss_expires_at == NOW + timedelta(days=5)
    just_before = NOW + timedelta(days=5) - timedelta(seconds=1)
    assert lost.effective(just_before).status is lifecycle.Status.LOST
    assert lost.effective(NOW + timedelta(days=5)).status is lifecycle.Status.ACTIVE
    assert lifecycle.effective_status({"card_number": CARD, **lost.to_row()}, just_before) == "lost"
    assert lifecycle.effective_status({"card_number": CARD, **lost.to_row()}, NOW + timedelta(days=6)) == "active"


def test_a_confirmed_loss_never_lapses() -> None:
    formal = lifecycle.confirm_loss(lifecycle.report_lost(STATES["active"], lifecycle.Channel.PHONE, NOW), NOW + timedelta(days=4))
    assert formal.loss_expires_at is None
    assert formal.effective(NOW + timedelta(days=3650)).status is lifecycle.Status.LOST


@pytest.mark.parametrize(
    ("state", "action", "words"),
    [
        ("lost_lapsed", "unblock", "is active (its temporary loss lapsed 2024-05-01 09:59); only a lost card"),
        ("lost_temporary", "report_lost_phone", "is temporarily reported lost (lapses 2024-05-02 10:00); only an active"),
        ("lost_formal", "confirm_loss", "is reported lost; only a temporary loss can be confirmed"),
        ("issued", "report_lost_counter", "is issued but not yet activated; only an active card"),
        ("replaced", "replace", "is replaced; only an issued, active or lost card can be replaced"),
        ("cancelled", "cancel", "is cancelled; it cannot be cancelled twice"),
    ],
)
def test_refusals_say_what_the_card_is_and_what_was_needed(state: str, action: str, words: str) -> None:
    with pytest.raises(RuleRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
        ACTIONS[action](STATES[state])


@pytest.mark.parametrize(
    ("before", "after", "change"),
    [
        ("active", "lost_formal", "add"),
        ("lost_temporary", "active", "remove"),
        ("lost_temporary", "lost_formal", None),
        ("lost_formal", "replaced", None),
        ("active", "replaced", "add"),
        ("issued", "cancelled", "add"),
        ("replaced", "cancelled", None),
        ("issued", "active", None),
    ],
)
def test_the_blacklist_follows_the_status(before: str, after: str, change: str | None) -> None:
    assert lifecycle.blacklist_change(STATES[before], STATES[after]) == change


@pytest.mark.parametrize(
    "fields",
    [
        ("lost", None, None),
        ("active", "formal", None),
        ("lost", "temporary", None),
        ("lost", "formal", NOW),
    ],
)
def test_an_inconsistent_state_cannot_exist(fields) -> None:
    with pytest.raises(InvalidInput):
        lifecycle.CardState(CARD, *fields)


def test_rows_round_trip_and_refunds_wait_for_the_clearing_window() -> None:
    lost = STATES["lost_temporary"]
    assert lifecycle.CardState.from_row({"card_number": CARD, **lost.to_row()}) == lost
    assert lifecycle.refund_due_at(NOW) == NOW + timedelta(days=30)
    assert lifecycle.Channel("counter").loss_kind is lifecycle.LossKind.FORMAL
